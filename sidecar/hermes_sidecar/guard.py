"""The guard: rejects a semantic match when the two questions differ in something that changes the answer.

Embedding similarity cannot tell "enable 2FA" from "disable 2FA" (they score higher than a true
paraphrase), so every semantic candidate must also pass these lexical checks. Each rule is general
linguistics, not a list of known test questions:

- **negation**: a negator (not, never, non, n't ...) on one side only; a word on one side whose
  negated form (un-, dis-, non-, in-/im-/ir-/il-) is on the other; two words that differ only by an
  opposing prefix (in/ex, up/down, over/under, pre/post); the same phrasal verb with the opposite
  particle (log in / log out); or a pair from a list of common antonyms (open/closed, most/least;
  one magnitude scale across verbs and adjectives: increase/smaller).
- **number**: the quantities must agree, after reading number words ("fifteen" = 15) and converting
  durations to days ("two weeks" = "14 days"), with units that do not contradict (7am is not 7pm).
- **date**: weekdays, months and relative days (today, tomorrow, tonight, weekend) must be equal.
- **direction**: the same names in swapped order around to/from/into ("Word to PDF" / "PDF to Word").
- **entity**: every proper noun, acronym or versioned token on one side (capitalised mid-sentence,
  all caps, letters mixed with digits) must occur on the other side, case-insensitively, or be
  spelled out there ("2FA" = "two-factor authentication").
- **scope**: the people a question is about (me, my colleague, my son, a contractor ...) must agree.
- **edit**: two questions that are the same word for word except for one or two swapped content
  words (delivery/billing, chicken/beef, claim/approve): the swap is what the asker changed on
  purpose, unless it is a spelling variant, an inflection, a derivation of the same word or a
  near-synonym from a general thesaurus (start/begin, register/sign up); likewise one content word
  added to an otherwise identical question narrows it ("a gift" / "a gift card"). Hesitations (um,
  er) are fillers, not content.

``features(text)`` is computed once per text (stored with a cache entry) and ``compare(a, b)``
returns None when reuse is safe, else the name of the rule that refused.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from difflib import SequenceMatcher

_WORD = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*", re.IGNORECASE)
_RAW_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\u2019.\-/]*")

NEGATORS = frozenset(
    [
        "not",
        "non",
        "no",
        "never",
        "without",
        "nobody",
        "nothing",
        "none",
        "neither",
        "nor",
        "cannot",
        "cant",
        "dont",
        "doesnt",
        "didnt",
        "isnt",
        "arent",
        "wasnt",
        "werent",
        "wont",
        "wouldnt",
        "shouldnt",
        "couldnt",
        "hasnt",
        "havent",
        "hadnt",
        "mustnt",
        "neednt",
        "aint",
    ]
)
# Common antonym pairs of help-desk language. Each side may list inflections.
ANTONYMS: tuple[tuple[frozenset[str], frozenset[str]], ...] = tuple(
    (frozenset(a.split("|")), frozenset(b.split("|")))
    for a, b in (
        ("on", "off"),
        ("open|opened|opening", "closed|close|closing|shut"),
        ("enable|enabled|enabling", "disable|disabled|disabling"),
        ("start|starting|begin", "stop|stopping|end|finish"),
        ("allow|allowed|permitted|permit", "ban|banned|forbidden|prohibited|forbid"),
        ("include|includes|included|including", "exclude|excludes|excluded|excluding"),
        ("add|adding", "remove|removing|delete|deleting"),
        ("join|joining|enrol|enroll|enrolling|sign", "leave|leaving|withdraw|withdrawing|quit"),
        ("eat|eating|take|taking|use", "avoid|avoiding"),
        (
            "most|more|best|highest|maximum|max|largest|biggest|longest|oldest|first|earliest",
            "least|less|fewer|worst|lowest|minimum|min|smallest|shortest|youngest|last|latest",
        ),
        # One magnitude scale across verbs and adjectives: "increase my limit" / "a smaller limit".
        (
            "increase|increasing|raise|raising|extend|extending|bigger|larger|higher|longer|more",
            "decrease|decreasing|reduce|reducing|lower|lowering|cut|shorten|smaller|shorter|fewer|less",
        ),
        ("buy|buying|purchase|purchasing", "sell|selling"),
        ("send|sending", "receive|receiving"),
        ("deposit|depositing", "withdraw|withdrawing"),
        ("accept|accepting|approve|approving", "reject|rejecting|decline|declining|deny|denying"),
        ("before", "after"),
        ("above|over", "below|under"),
        ("early|earlier", "late|later"),
        ("safe", "dangerous|unsafe|risky"),
        ("cheap|cheaper|cheapest", "expensive|pricier|dearer"),
        ("fast|faster|fastest|quick|quicker", "slow|slower|slowest"),
        ("pass|passed", "fail|failed"),
        ("win|won", "lose|lost"),
        ("lock|locking", "unlock|unlocking"),
        ("hide|hiding", "show|showing|unhide"),
        ("import|importing", "export|exporting"),
        ("cover|covers|covered", "exclude|excludes|excluded"),
        (
            "pros|advantages|benefits|benefit|upsides|upside",
            "cons|disadvantages|drawbacks|risks|downsides|downside|dangers",
        ),
        ("public", "private|hidden|hide|secret"),
        ("working|works|functioning|properly", "broken|faulty|fault|failing|failed|malfunctioning"),
        ("gain|gains|profit|profits", "loss|losses"),
        ("arrive|arriving|arrival|arrivals", "depart|departing|departure|departures"),
        ("entry|enter|entering|entrance", "exit|exiting"),
        ("easy|easier|easiest", "hard|harder|hardest|difficult"),
        ("strong|stronger", "weak|weaker"),
        ("employed", "unemployed|redundant"),
        ("married", "single|divorced"),
        ("healthy", "unhealthy|harmful"),
        ("win|won|winning", "lose|lost|losing"),
        ("true", "false"),
        ("yes", "no"),
        ("with", "without"),
        ("can", "cannot|cant"),
        ("must|required|mandatory", "optional"),
        ("legal", "illegal"),
        ("inside|indoors|internal|domestic", "outside|outdoors|external|international|abroad"),
        ("upstairs", "downstairs"),
        ("full", "part|empty"),
        ("income", "expenses|expense"),
        ("credit", "debit"),
        ("left", "right"),
        ("north|northern", "south|southern"),
        ("east|eastern", "west|western"),
        ("day|daytime", "night|overnight"),
        ("weekday|weekdays", "weekend|weekends"),
        ("hot|warm", "cold|cool"),
        ("old|older", "new|newer|young|younger"),
        ("import", "export"),
    )
)
# Near-synonyms of everyday request language (a general thesaurus, like the antonyms above; several
# senses per word are fine because only a swap between two otherwise identical questions is judged):
# swapping one for another is rewording, not a change of subject. Phrasal verbs are written with a
# space. Nothing here may also appear as an antonym of another member.
SYNONYMS: tuple[frozenset[str], ...] = tuple(
    frozenset(group.split("|"))
    for group in (
        "start|begin|commence|kick off",
        "end|finish|conclude",
        "stop|halt|cease",
        "change|update|modify|amend|alter|edit|adjust",
        "create|make|set up|establish|build|add",
        "register|sign up|enrol|enroll|join|subscribe",
        "request|order|ask for|apply for",
        "submit|file|lodge|send in|hand in|make",
        "dispute|challenge|contest|query|appeal",
        "mute|silence|quieten|quiet|hush",
        "fast|quick|rapid|speedy|swift",
        "fastest|quickest|speediest|swiftest",
        "big|large|huge",
        "small|little|tiny",
        "buy|purchase|get",
        "get|obtain|receive|acquire",
        "show|display|view|see",
        "find|locate|look up",
        "fix|repair|mend|sort out|resolve",
        "cancel|terminate|call off",
        "delete|remove|erase",
        "help|assist|support",
        "use|utilise|utilize",
        "need|require",
        "allowed|permitted|able|entitled",
        "cost|price|charge|fee",
        "fees|charges|costs|prices",
        "shipping|delivery|postage",
        "parcel|package|order",
        "phone|call|ring|telephone",
        "email|e-mail|mail",
        "choose|select|pick",
        "check|verify|confirm",
        "turn on|switch on|enable|activate",
        "turn off|switch off|disable|deactivate",
        "go up|rise|increase",
        "send|transfer|pay",
        "shop|store",
        "doctor|gp|physician",
        "holiday|vacation|leave",
        "car|vehicle|motor",
        "house|home|property",
        "job|work|employment",
        "cancellation|termination",
        "deadline|due date|cut-off",
        "refund|reimbursement|money back",
    )
)
_SYNONYM_OF: dict[str, frozenset[int]] = {}
for _i, _group in enumerate(SYNONYMS):
    for _w in _group:
        _SYNONYM_OF[_w] = _SYNONYM_OF.get(_w, frozenset()) | {_i}
_SYNONYM_PHRASES = frozenset(w for g in SYNONYMS for w in g if " " in w)
_NEG_PREFIXES = ("un", "dis", "non", "in", "im", "ir", "il", "de", "mis", "anti")
_OPPOSED_PREFIXES = (("in", "ex"), ("im", "ex"), ("up", "down"), ("over", "under"), ("pre", "post"),
                     ("inter", "intra"), ("max", "min"), ("en", "dis"))  # fmt: skip

_UNITS_DAYS = {
    "day": 1.0, "days": 1.0, "week": 7.0, "weeks": 7.0, "fortnight": 14.0, "fortnights": 14.0,
    "month": 30.0, "months": 30.0, "year": 365.0, "years": 365.0, "yr": 365.0, "yrs": 365.0,
}  # fmt: skip
_NUMBER_WORDS = {
    "zero": 0, "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
    "hundred": 100, "thousand": 1000, "million": 1_000_000, "dozen": 12, "half": 0.5, "couple": 2,
    "single": 1, "double": 2, "twice": 2, "once": 1, "first": 1, "second": 2, "third": 3,
}  # fmt: skip
_TIME_WORDS = frozenset(
    [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "mondays",
        "tuesdays",
        "wednesdays",
        "thursdays",
        "fridays",
        "saturdays",
        "sundays",
        "weekend",
        "weekends",
        "weekday",
        "weekdays",
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "today",
        "tonight",
        "tomorrow",
        "yesterday",
        "morning",
        "afternoon",
        "evening",
        "night",
        "midnight",
        "noon",
        "spring",
        "summer",
        "autumn",
        "fall",
        "winter",
        "christmas",
        "easter",
        "overnight",
    ]
)
# Who a question is about, by class: "my son" and "my kid" are the same scope, "my colleague" is not
# "me". First and second person are the default scope and are not listed.
_PEOPLE: dict[str, str] = {
    w: cls
    for cls, ws in {
        "child": "child children kid kids baby babies son sons daughter daughters teenager teenage toddler",
        "partner": "partner wife husband spouse",
        "parent": "parent parents mother mum mom father dad grandparent grandparents",
        "sibling": "brother brothers sister sisters sibling siblings",
        "colleague": "colleague colleagues coworker coworkers employee employees staff",
        "friend": "friend friends neighbour neighbor neighbours neighbors",
        "third": "his her their him them he she they",
        "customer": "customer customers client clients",
        "tenant": "tenant tenants lodger",
        "landlord": "landlord landlords",
        "student": "student students pupil pupils",
        "patient": "patient patients",
        "dog": "dog dogs puppy puppies",
        "cat": "cat cats kitten kittens",
        "contractor": "contractor contractors freelancer freelancers agency temp temps",
        "business": "business company organisation organization employer",
    }.items()
    for w in ws.split()
}
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "am",
        "do",
        "does",
        "did",
        "doing",
        "done",
        "have",
        "has",
        "had",
        "having",
        "i",
        "me",
        "my",
        "we",
        "our",
        "you",
        "your",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "from",
        "by",
        "with",
        "about",
        "as",
        "into",
        "and",
        "or",
        "but",
        "if",
        "then",
        "so",
        "than",
        "too",
        "very",
        "can",
        "could",
        "would",
        "should",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "how",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "whether",
        "any",
        "some",
        "all",
        "each",
        "every",
        "just",
        "also",
        "still",
        "please",
        "hi",
        "hello",
        "hey",
        "thanks",
        "thank",
        "cheers",
        "ok",
        "okay",
        "well",
        "way",
        "there's",
        "what's",
        "how's",
        "it's",
        "i'm",
        "i'd",
        "i've",
        "i'll",
        "let",
        "let's",
        "know",
        "tell",
        "need",
        "want",
        "like",
        "get",
        "got",
        "go",
        "going",
        "able",
        "possible",
        "process",
        "procedure",
        "anyone",
        "anything",
        "something",
        "really",
        "actually",
        "exactly",
        "again",
    ]
)
STOPWORDS = STOPWORDS | frozenset(w.replace("'", "") for w in STOPWORDS)
# Politeness and hedging that never changes an answer.
# The second line: hesitations of dictated or typed-as-spoken questions.
FILLERS = frozenset(
    ["please", "thanks", "thank", "cheers", "hi", "hello", "hey", "kindly", "quick", "question", "quickly",
     "um", "umm", "uh", "uhm", "er", "erm", "hmm", "ah", "oh", "so", "like", "basically", "anyway"]
)  # fmt: skip


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).replace("\u2019", "'")
    return text


def _norm_word(w: str) -> str:
    w = w.lower().replace("'", "")
    return w


def _stem(w: str) -> str:
    for suf in ("ations", "ation", "ings", "ing", "ies", "ied", "ed", "es", "s", "er", "ly"):
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            return w[: -len(suf)] + ("y" if suf in ("ies", "ied") else "")
    return w


@dataclass(frozen=True)
class Features:
    words: tuple[str, ...]  # lower-cased word tokens, apostrophes removed
    negations: int
    quantities: tuple[tuple[float, str, str], ...]  # (value, unit as written, canonical value+unit)
    times: tuple[str, ...]
    entities: tuple[str, ...]  # lower-cased
    people: tuple[str, ...]
    content: tuple[str, ...]  # content words, in order
    spelled: tuple[str, ...] = ()  # words with hyphenated compounds split, for acronyms (2FA)
    direction: tuple[str, str] = ("", "")  # first content word after "from", after "to"/"into"


_UNIT_WORDS = {
    "kg": "kg", "kilo": "kg", "kilos": "kg", "kilogram": "kg", "kilograms": "kg", "g": "g", "gram": "g",
    "grams": "g", "km": "km", "kilometre": "km", "kilometres": "km", "kilometer": "km", "kilometers": "km",
    "mile": "mi", "miles": "mi", "hour": "h", "hours": "h", "hr": "h", "hrs": "h", "minute": "min",
    "minutes": "min", "mins": "min", "gb": "gb", "gigabyte": "gb", "gigabytes": "gb", "mb": "mb",
    "percent": "%", "pc": "%", "pm": "pm", "am": "am",
}  # fmt: skip
# Number words that are quantities only before a unit ("one day"), not alone ("a quick one").
_WEAK_NUMBERS = frozenset({"a", "an", "one", "second", "once", "single", "first", "couple", "double", "half"})


def _is_number(w: str) -> bool:
    return w[:1].isdigit() or (w in _NUMBER_WORDS and w not in _WEAK_NUMBERS)


def _quantities(words: list[str]) -> list[tuple[float, str, str]]:
    """Quantities as (value as written, unit as written, canonical value+unit; durations in days)."""
    out: list[tuple[float, str, str]] = []
    i = 0
    while i < len(words):
        w = words[i]
        nxt_w = words[i + 1] if i + 1 < len(words) else ""
        value: float | None = None
        unit = ""
        m = re.fullmatch(r"(\d+(?:\.\d+)?)(st|nd|rd|th|kg|g|km|gb|mb|tb|k|p|pm|am)?", w)
        if m:
            value = float(m.group(1))
            unit = {"st": "", "nd": "", "rd": "", "th": ""}.get(m.group(2) or "", m.group(2) or "")
        elif w in ("a", "an", "per") and out and i > 0 and _is_number(words[i - 1]):
            i += 2  # "£30 a month", "£30 per month": a rate, not a second quantity
            continue
        elif w in _NUMBER_WORDS and (w not in _WEAK_NUMBERS or nxt_w in _UNITS_DAYS or nxt_w in _UNIT_WORDS):
            value = float(_NUMBER_WORDS[w])
            # "two hundred", "fifty five"
            while i + 1 < len(words) and words[i + 1] in _NUMBER_WORDS and words[i + 1] not in _WEAK_NUMBERS:
                nxt = _NUMBER_WORDS[words[i + 1]]
                value = value * nxt if nxt >= 100 else value + nxt
                i += 1
            nxt_w = words[i + 1] if i + 1 < len(words) else ""
        if value is None:
            i += 1
            continue
        if not unit and nxt_w in _UNITS_DAYS:
            out.append((value, nxt_w.rstrip("s"), f"{value * _UNITS_DAYS[nxt_w]:g}days"))
            i += 1
        elif not unit and nxt_w in _UNIT_WORDS:
            out.append((value, _UNIT_WORDS[nxt_w], f"{value:g}{_UNIT_WORDS[nxt_w]}"))
            i += 1
        else:
            out.append((value, unit, f"{value:g}{unit}"))
        i += 1
    return sorted(out)


# "two-factor", "one-off", "3-pin": a number fused to a word that is not a unit is part of a name.
_FUSED_NUMBER = re.compile(
    r"\b(\d+|one|two|three|four|five|six|seven|eight|nine|ten)-(?!(?:day|week|month|year|hour|minute|mile|"
    r"kilo|km|kg|gb|mb|night|person|people)s?\b)([a-z]+)",
    re.IGNORECASE,
)
# "7am", "2kg", "18-year-old", "9:15": quantities (checked by the number rule), not names.
_QUANTITY_TOKEN = re.compile(
    r"\d+([.:/]\d+)*(st|nd|rd|th|kg|g|km|m|gb|mb|tb|k|p|pm|am)?"
    r"(-(day|week|month|year|hour|minute|night|mile|kg|km|gb|mb|person|people)s?)?(-old)?"
)
_TIME_CANON = {"annual": "yearly", "annually": "yearly", "yearly": "yearly", "weekends": "weekend",
               "weekdays": "weekday"}  # fmt: skip


def _time_word(w: str) -> str | None:
    if w.endswith("s") and w[:-1] in _TIME_WORDS:
        w = w[:-1]
    if w in _TIME_WORDS:
        w = w[:-1] if w.endswith("days") else w
        return _TIME_CANON.get(w, w)
    # a misspelt weekday or month ("Mondys") is still that day
    if len(w) >= 5:
        for t in _TIME_WORDS:
            if len(t) >= 6 and t[0] == w[0] and SequenceMatcher(None, w, t).ratio() >= 0.8:
                return _TIME_CANON.get(t.rstrip("s") if t.endswith("days") else t, t.rstrip("s"))
    return None


@functools.lru_cache(maxsize=4096)
def features(text: str) -> Features:
    """What the rules compare, from one text (pure, so cached: the candidates of hot questions recur on
    every lookup, and extracting features costs about 0.5 ms)."""
    original = _fold(text)
    text = re.sub(r"(\d)\s*/\s*(?=[a-z])", r"\1 per ", original, flags=re.IGNORECASE)
    text = _FUSED_NUMBER.sub(lambda m: m.group(1) + m.group(2), text).replace("%", " percent")
    raw = _RAW_TOKEN.findall(text)
    words = [_norm_word(w) for w in _WORD.findall(text.replace("-", " ").replace("/", " "))]
    letters = [c for c in text if c.isalpha()]
    shouting = bool(letters) and sum(c.isupper() for c in letters) / len(letters) > 0.6
    entities: set[str] = set()
    sentence_start = True
    for tok in raw:
        core = tok.strip(".'\u2019-/")
        if not core:
            continue
        is_cap = core[0].isupper() and core.lower() != "i" and not core.lower().startswith("i'")
        acronym = len(core) >= 2 and core.isupper() and core.isalpha()
        mixed = any(c.isdigit() for c in core) and any(c.isalpha() for c in core)
        plain = re.sub(r"'s$", "", core.lower()).replace("'", "")
        candidate = not shouting and ((is_cap and not sentence_start) or acronym or mixed)
        candidate = (
            candidate and plain not in STOPWORDS and plain not in FILLERS and plain not in ("ok", "okay")
        )
        if candidate and not _QUANTITY_TOKEN.fullmatch(plain):
            entities.add(plain)
        sentence_start = tok.endswith((".", "?", "!", ":", ","))
    negations = sum(1 for w in words if w in NEGATORS)
    quantities = _quantities(words)
    content = [w for w in words if w not in STOPWORDS and w not in NEGATORS]
    spelled = [_norm_word(w) for w in _WORD.findall(original.replace("-", " ").replace("/", " "))]
    return Features(
        words=tuple(words),
        negations=negations,
        quantities=tuple(quantities),
        times=tuple(sorted({t for t in map(_time_word, words) if t})),
        entities=tuple(sorted(entities)),
        people=tuple(sorted({_PEOPLE[w] for w in words if w in _PEOPLE})),
        content=tuple(content),
        spelled=tuple(spelled),
        direction=(_after(words, ("from",)), _after(words, ("to", "into", "onto"))),
    )


def _after(words: list[str], markers: tuple[str, ...]) -> str:
    for i, w in enumerate(words):
        if w in markers:
            for nxt in words[i + 1 : i + 4]:
                if nxt not in STOPWORDS:
                    return _stem(nxt)
    return ""


def _similar_word(a: str, b: str) -> bool:
    """Spelling variant or inflection of the same word."""
    if a == b or _stem(a) == _stem(b):
        return True
    if len(a) >= 4 and len(b) >= 4 and (a.startswith(b) or b.startswith(a)):
        return True
    sa, sb = _stem(a), _stem(b)
    if min(len(sa), len(sb)) >= 4 and (sa.startswith(sb) or sb.startswith(sa)):
        return True  # derivations: quote / quotation
    return len(a) >= 4 and len(b) >= 4 and a[0] == b[0] and SequenceMatcher(None, a, b).ratio() >= 0.8


_DIGITS = {w: str(int(v)) for w, v in _NUMBER_WORDS.items() if v >= 1 and v == int(v) and v < 10}


def _spelled_out(acronym: str, words: tuple[str, ...]) -> bool:
    """An acronym written out: "2FA" = "two-factor authentication", "GP" = "general practitioner"."""
    n = len(acronym)
    if not 2 <= n <= 6 or not acronym.isalnum():
        return False
    initials = [_DIGITS.get(w, w[:1]) for w in words]
    return any("".join(initials[i : i + n]) == acronym for i in range(len(initials) - n + 1))


_PARTICLES = {"in": "out", "out": "in", "on": "off", "off": "on", "up": "down", "down": "up"}


def _particle_flip(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """The same phrasal verb with the opposite particle: "opt in" / "opt out", "log on" / "log off"."""
    pa = {(v, p) for v, p in itertools.pairwise(a) if p in _PARTICLES and v not in STOPWORDS}
    pb = {(v, p) for v, p in itertools.pairwise(b) if p in _PARTICLES and v not in STOPWORDS}
    return any((v, _PARTICLES[p]) in pb and (v, p) not in pb for v, p in pa) or any(
        (v, _PARTICLES[p]) in pa and (v, p) not in pa for v, p in pb
    )


def _order_flip(a: Features, b: Features) -> bool:
    """Two names in swapped order around a direction word: "Word to PDF" / "PDF to Word"."""
    directional = {"to", "into", "from", "for", "over", "onto", "vs", "versus"}
    if not (directional & set(a.words) and directional & set(b.words)):
        return False
    shared = [e for e in a.entities if e in b.entities]

    def pos(f: Features, e: str) -> int:
        first = re.split(r"[-./ ]+", e)[0]
        return f.words.index(first) if first in f.words else -1

    for i, x in enumerate(shared):
        for y in shared[i + 1 :]:
            ax, ay, bx, by = pos(a, x), pos(a, y), pos(b, x), pos(b, y)
            if min(ax, ay, bx, by) >= 0 and (ax < ay) != (bx < by):
                return True
    return False


def _negated_form(a: str, b: str) -> bool:
    for p in _NEG_PREFIXES:
        if (b == p + a or a == p + b) and min(len(a), len(b)) >= 3:
            return True
    for p, q in _OPPOSED_PREFIXES:
        for x, y in ((a, b), (b, a)):
            if x.startswith(p) and y.startswith(q) and x[len(p) :] == y[len(q) :] and len(x) - len(p) >= 3:
                return True
    return False


def _same_quantities(a: Features, b: Features) -> bool:
    """The same numbers: equal after unit conversion ("two weeks" = "14 days"), or equal as written
    with units that do not contradict ("at 18" = "18-year-old", but "7am" is not "7pm")."""
    if Counter(q[2] for q in a.quantities) == Counter(q[2] for q in b.quantities):
        return True
    if len(a.quantities) != len(b.quantities):
        return False
    return all(
        va == vb and (ua == ub or not ua or not ub)
        for (va, ua, _), (vb, ub, _) in zip(a.quantities, b.quantities, strict=True)
    )


def _entity_present(entity: str, other: Features, other_text_words: set[str]) -> bool:
    # Stricter than a typo match of ordinary words: Austria is not Australia.
    parts = re.split(r"[-./ ]+", entity)
    if _spelled_out(entity, other.spelled):
        return True
    return all(
        p in other_text_words
        or any(len(p) >= 6 and SequenceMatcher(None, p, w).ratio() >= 0.9 for w in other_text_words)
        for p in parts
        if p
    )


def compare(a: Features, b: Features) -> str | None:
    """None when b may reuse a's answer; otherwise the name of the rule that refused."""
    wa, wb = set(a.words), set(b.words)
    if (a.negations % 2) != (b.negations % 2):
        return "negation"
    for x in wa - wb:
        for y in wb - wa:
            if _negated_form(x, y):
                return "negation"
    for left, right in ANTONYMS:
        if (wa & left and wb & right and not (wa & right)) or (wb & left and wa & right and not (wb & right)):
            return "negation"
    if _particle_flip(a.words, b.words):
        return "negation"
    if not _same_quantities(a, b):
        return "number"
    if set(a.times) != set(b.times):
        return "date"
    (fa, ta), (fb, tb) = a.direction, b.direction
    if (fa and fa == tb and fa != fb) or (ta and ta == fb and ta != tb):
        return "direction"  # "from savings to current" is not "from current to savings"
    if _order_flip(a, b):
        return "direction"
    for ent in a.entities:
        if not _entity_present(ent, b, wb):
            return "entity"
    for ent in b.entities:
        if not _entity_present(ent, a, wa):
            return "entity"
    if set(a.people) != set(b.people):
        return "scope"
    return _minimal_edit(a, b)


def _edit_word(w: str) -> bool:
    """A content word for the minimal-edit rule; numbers, units and dates have their own rules."""
    return not (
        w in STOPWORDS
        or w in FILLERS
        or w in NEGATORS
        or _is_number(w)
        or w in _NUMBER_WORDS
        or w in _UNITS_DAYS
        or w in _UNIT_WORDS
        or _time_word(w) is not None
    )


def _minimal_edit(a: Features, b: Features) -> str | None:
    """A question kept word for word except for one or two swapped content words ("change my delivery
    address" / "change my billing address"): the swap is what the asker changed on purpose. A true
    paraphrase restructures the question; a near repeat swaps no content word (typos, inflections,
    fillers and function words do not count)."""
    wa, wb = list(a.words), list(b.words)
    sm = SequenceMatcher(None, wa, wb, autojunk=False)
    if sm.ratio() < 0.7:
        return None
    ops = sm.get_opcodes()
    for tag, i1, i2, j1, j2 in ops:
        if tag in ("insert", "delete") and sm.ratio() >= 0.85 and len(ops) <= 3:
            # one content word added next to a kept noun narrows what is asked about ("a gift" /
            # "a gift card"), unless it is a filler or an inflection
            added = [w for w in (wa[i1:i2] or wb[j1:j2]) if _edit_word(w)]
            if len(added) == 1 and len(wa[i1:i2] or wb[j1:j2]) == 1:
                return "edit"
        if tag != "replace" or i2 - i1 > 3 or j2 - j1 > 3:
            continue
        left = [w for w in _phrases(wa[i1:i2]) if _edit_word(w)]
        right = [w for w in _phrases(wb[j1:j2]) if _edit_word(w)]
        left = [w for w in left if not any(_similar_word(w, v) or _synonyms(w, v) for v in right)]
        right = [w for w in right if not any(_similar_word(w, v) or _synonyms(w, v) for v in left)]
        if left and right:
            return "edit"
    return None


def _phrases(words: list[str]) -> list[str]:
    """Words with the known phrasal verbs joined ("sign", "up" -> "sign up")."""
    out: list[str] = []
    i = 0
    while i < len(words):
        pair = " ".join(words[i : i + 2])
        if pair in _SYNONYM_PHRASES:
            out.append(pair)
            i += 2
        else:
            out.append(words[i])
            i += 1
    return out


def _synonym_groups(w: str) -> frozenset[int]:
    """Groups of a word or of its base form ("filing" -> file, "submitting" -> submit)."""
    stem = _stem(w)
    forms = (w, stem, stem + "e", stem[:-1] if len(stem) > 3 and stem[-1] == stem[-2] else stem)
    return frozenset().union(*(_SYNONYM_OF.get(f, frozenset()) for f in forms))


def _synonyms(a: str, b: str) -> bool:
    return bool(_synonym_groups(a) & _synonym_groups(b))


def compare_context(a: Features, b: Features) -> str | None:
    """The facts of two earlier conversations must agree before their last turns may share an answer:
    the same quantities, dates, entities and people. Wording may differ ("six months" = "6 months")."""
    if not _same_quantities(a, b):
        return "number"
    if set(a.times) != set(b.times):
        return "date"
    wa, wb = set(a.words), set(b.words)
    if any(not _entity_present(e, b, wb) for e in a.entities) or any(
        not _entity_present(e, a, wa) for e in b.entities
    ):
        return "entity"
    if set(a.people) != set(b.people):
        return "scope"
    return None


def near_duplicate(a: str, b: str) -> bool:
    """The same text up to typos, case and punctuation ("chnage the email adress" / "change the email
    address"). Subword embeddings score such typos low, so a near duplicate may be served below the
    similarity threshold; it still has to pass :func:`compare` like any candidate."""
    x = " ".join(_WORD.findall(_fold(a).lower()))
    y = " ".join(_WORD.findall(_fold(b).lower()))
    return bool(x) and SequenceMatcher(None, x, y, autojunk=False).ratio() >= 0.9
