"""What the rules compare, extracted once per question (pure, cached).

Words are compared by a *key*, one normalisation for every rule: lower case, apostrophes and a
possessive 's removed, the lemma of an inflected noun or verb from LemmInflect's English tables
("taught" -> "teach", "children" -> "child", "employees" -> "employee"; a word that is a lemma itself,
such as "left" or "found", stays), then inflections cut (plural -s/-es/-ies, -ing, -ed, a final -e, a
doubled final consonant). So "keep"/"kept"/"keeping", "GPU's"/"GPUs"/"gpu", "commit"/"committing"
have one key. Negation, edit, direction, scope and entity all use this key.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher

import lemminflect

from hermes_sidecar.guard.lexicon import LEXICON, stopwords

LEX = LEXICON
STOPWORDS = stopwords(LEX)
IGNORABLE = STOPWORDS  # function words, fillers, quantifiers, the modal "may"

WORD = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*", re.IGNORECASE)
# a token with the sentence punctuation right after it ("camera?"), so that the next word starts a sentence
_RAW_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\u2019.\-/]*[?!:,]?")
_EDGE = ".'\u2019-/?!:,"  # what a raw token may carry around its core: quotes, hyphens, punctuation
_ORDINAL_SUFFIXES = ("st", "nd", "rd", "th")
_DIGITS_ORDINAL = re.compile(r"(\d+)(?:st|nd|rd|th)?")  # "3", "21st"
_TOKEN_WITH_PUNCT = re.compile(r"[A-Za-z0-9]+(?:['.][A-Za-z0-9]+)*|[(),;:!?\u2014\u2013-]")

_CTX = LEX.contexts
_DATE_LEFT, _PERIOD_LEFT, _PICK_ONE = _CTX["date-left"], _CTX["period-left"], _CTX["pick-one"]
_HIGH, _LOW = _CTX["compare-high"], _CTX["compare-low"]
_TRANSFER, _STOP_LEFT, _CONTRAST = _CTX["transfer"], _CTX["transfer-stop"], _CTX["contrast"]
ADJUNCT = _CTX["adjunct"]  # prepositions that open a qualifier ("in megabytes", "across all regions")
_ADJUNCT_END, _POSSESSIVE, _UNIT_LEFT = ADJUNCT | _CTX["adjunct-end"], _CTX["possessive"], _CTX["unit-left"]
_BODY_PART = _CTX["body-part"]
_PHRASE_TOKEN = re.compile(r"[A-Za-z0-9]+(?:['.\-][A-Za-z0-9]+)*|[(),;:!?.\u2014\u2013-]")


def fold(text: str) -> str:
    """NFKC, accents on Latin letters dropped ("Châtelier" = "Chatelier", "café" = "cafe"), curly
    apostrophes straightened. Marks on other scripts stay: a Japanese voicing mark (か / が) or a
    Devanagari vowel sign changes the word."""
    out: list[str] = []
    for c in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(c) and out and out[-1].isascii() and out[-1].isalpha():
            continue
        out.append(c)
    return unicodedata.normalize("NFKC", "".join(out)).replace("\u2019", "'")


def norm_word(w: str) -> str:
    w = w.lower()
    if w.endswith("'s") and w not in STOPWORDS:
        w = w[:-2]  # a possessive: "the children's dose" is about children
    return w.replace("'", "")


@functools.lru_cache(maxsize=16384)
def key(w: str) -> str:
    """One form for the inflections of a word (see the module docstring)."""
    w = w.lower()
    if w.endswith("'s"):
        w = w[:-2]
    w = w.replace("'", "")
    if not w.isalpha():
        return w
    return _stem(lemma(w))


def lemma(w: str) -> str:
    """The dictionary form of an inflected noun or verb, from LemmInflect's English tables (in the
    package, nothing downloaded): "taught" -> "teach", "children" -> "child", "using" -> "use". A word
    that is a lemma itself under any part of speech ("left", "data", "found") or has two ("leaves":
    leaf, leave) stays as it is: without the sentence the choice would be a guess."""
    lemmas = lemminflect.getAllLemmas(w)
    if not lemmas or any(w in forms for forms in lemmas.values()):
        return w
    choices = {x for pos in ("NOUN", "VERB") for x in lemmas.get(pos, ())}
    return choices.pop() if len(choices) == 1 else w


@functools.lru_cache(maxsize=16384)
def known(w: str) -> bool:
    """A word LemmInflect's English tables have (a noun, verb, adjective or adverb, or an inflection of
    one): "broiled", "stream". Typos ("aviod") and most names ("iceland") are not."""
    return bool(lemminflect.getAllLemmas(w))


@functools.lru_cache(maxsize=16384)
def lemmas(w: str) -> frozenset[str]:
    """w and every dictionary form LemmInflect gives it: "bacteria" -> {bacteria, bacterium}."""
    return frozenset({w, *(x for forms in lemminflect.getAllLemmas(w).values() for x in forms)})


@functools.lru_cache(maxsize=16384)
def can_be_verb(w: str) -> bool:
    """w is a verb form, or a word LemmInflect does not know: "bought", "share"; not "settings"."""
    found = lemminflect.getAllLemmas(w)
    return not found or "VERB" in found


@functools.lru_cache(maxsize=16384)
def verb_key(w: str) -> str:
    """The key of the verb a participle comes from, even where the participle is a word of its own:
    "used" -> use, "done" -> do, "known" -> know (key keeps those, being lemmas as adjectives)."""
    verbs = lemminflect.getAllLemmas(w).get("VERB", ())
    return key(verbs[0]) if len(verbs) == 1 else key(w)


def positives(superlative: str) -> set[str]:
    """The adjectives and adverbs a superlative is the degree of, from LemmInflect's tables: "best" ->
    good, well; "largest" -> large. Empty for a word the tables lack."""
    lemmas = lemminflect.getAllLemmas(superlative)
    return {x for pos in ("ADJ", "ADV") for x in lemmas.get(pos, ()) if x != superlative}


def _stem(w: str) -> str:
    if len(w) <= 3:
        return w
    for suf, repl in (
        ("ies", "y"),
        ("ied", "y"),
        ("sses", "ss"),
        ("ches", "ch"),
        ("shes", "sh"),
        ("xes", "x"),
    ):
        if w.endswith(suf) and len(w) - len(suf) >= 2:
            return w[: -len(suf)] + repl
    # "-is" is a singular ("analysis", "tennis") in a word the tables know; in one they lack, a plural
    # of "-i" ("satoshis", "kanjis")
    keeps = ("ss", "us", "is") if known(w) or len(w) <= 5 else ("ss", "us")
    for suf in ("ing", "ed", "es", "s"):
        if w.endswith(suf) and len(w) - len(suf) >= 3 and not w.endswith(keeps):
            w = w[: -len(suf)]
            break
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeiouls":
        w = w[:-1]
    return w


def entity_key(token: str) -> str:
    """An entity compared without case, possessive or plural: "GPU's", "GPUs" and "gpu" are one."""
    token = token.replace("\u2019", "'")
    if token.lower().endswith("'s"):
        token = token[:-2]
    token = token.replace("'", "")
    if len(token) >= 3 and token.endswith("s") and token[:-1].isupper():
        token = token[:-1]  # an acronym's plural: GPUs, APIs (NFS stays NFS)
    return token.lower()


@dataclass(frozen=True)
class Features:
    words: tuple[str, ...]  # lower-cased word tokens, apostrophes removed
    negations: int  # negators that are not contrastive ("a local branch (not the remote)")
    halts: int  # those of them that stop or prevent something ("stop X from", "avoid", "prevent")
    not_done: tuple[str, ...]  # verbs a pronoun subject does not do: "I didn't get the code" -> get
    quantities: tuple[tuple[float, str, str], ...]  # (value, unit as written, canonical value+unit)
    times: tuple[str, ...]  # dates: weekdays, months used as dates, relative days, seasons
    entities: tuple[str, ...]  # entity keys
    people: tuple[str, ...]
    content: tuple[str, ...]  # content words, in order
    spelled: tuple[str, ...] = ()  # words with hyphenated compounds split, for acronyms (2FA)
    sources: tuple[str, ...] = ()  # the first content word after each "from"
    targets: tuple[str, ...] = ()  # the first content word after each "to", "into", "onto"
    keys: tuple[str, ...] = ()  # key() of every word, in order
    negated: tuple[tuple[str, str], ...] = ()  # (word, key of its base): unlock, passwordless
    units: tuple[str, ...] = ()  # canonical units named, with or without a number (not durations)
    periods: tuple[str, ...] = ()  # "this month", "per year", "annual"
    quantified: tuple[tuple[str, str], ...] = ()  # (universal|single|article, key of the noun after it)
    depth: tuple[str, ...] = ()  # brief | deep
    formats: tuple[str, ...] = ()  # list | table | prose | code | diagram
    scales: tuple[tuple[str, int], ...] = ()  # (scale, end) of comparisons: ("speed", 1) for "faster"
    transfers: tuple[tuple[str, str], ...] = ()  # (what, where) around to/into: "date to timestamp"
    # (keys before, keys after) to/into/onto: "a digital drawing onto a real canvas"
    transfer_sides: tuple[tuple[frozenset[str], frozenset[str]], ...] = ()
    currencies: tuple[str, ...] = ()  # "$" and "usd" -> dollar, "£" -> pound
    owners: tuple[tuple[str, str], ...] = ()  # (owner or "asker", key of what it owns): "a supplier's claim"
    # qualifiers of the request: (marker, content words, strong); see :func:`_qualifiers`
    qualifiers: tuple[tuple[str, tuple[str, ...], bool], ...] = ()
    cased_units: tuple[str, ...] = ()  # units as written, where case tells them apart: Mb / MB, mW / MW
    romans: tuple[float, ...] = ()  # Roman numerals after a capitalised word: "World War I", "Henry VIII"
    superlatives: tuple[tuple[str, str, bool], ...] = ()  # (superlative, key of its noun, plural)
    sentences: tuple[tuple[str, ...], ...] = ()  # the lower-cased words of each sentence
    ordinals: tuple[tuple[str, float], ...] = ()  # (key of the next word, value): "the first act"
    novice: int = 0  # negations that say the asker has not done it yet: "I've never made any before"
    raw: str = field(default="", compare=False)


def is_number(w: str) -> bool:
    return w[:1].isdigit() or (w in LEX.numbers and w not in LEX.weak_numbers)


SPAN_LEFT = LEX.contexts["span-left"]
FORMAT_PARTS = LEX.contexts["format-part"]
_DRAFT_VERBS = LEX.contexts["draft-verb"]
_ASKING = LEX.contexts["asking"]


def duration(w: str) -> float | None:
    """The days of a duration word ("week" -> 7), None for any other word."""
    unit = LEX.units.get(w)
    return unit[1] if unit and unit[0] == "day" else None


_MONTH_DAYS, _YEAR_DAYS = LEX.units["month"][1], LEX.units["year"][1]


def quantities(words: list[str]) -> list[tuple[float, str, str]]:
    """Quantities as (value as written, unit as written, canonical value+unit; durations in days)."""
    out: list[tuple[float, str, str]] = []
    i, sign = 0, 1.0
    while i < len(words):
        w = words[i]
        if w == "minus" and i + 1 < len(words) and words[i + 1][:1].isdigit():
            i, sign = i + 1, -1.0  # "-20 dB" (written "minus 20" by features) is not "20 dB"
            continue
        nxt_w = words[i + 1] if i + 1 < len(words) else ""
        value: float | None = None
        unit = ""
        m = re.fullmatch(r"(\d+(?:\.\d+)?)([a-z]+)?", w)
        # a number with one letter fused on is a quantity in a unit the table may lack: "2000m" (metres,
        # minutes or millions: the number alone tells "500m" from it), "10x"; "2fa" is a name
        if m and (not m.group(2) or len(m.group(2)) == 1 or m.group(2) in (*_ORDINAL_SUFFIXES, *LEX.units)):
            value = float(m.group(1))
            suffix = m.group(2) or ""
            unit = "" if suffix in _ORDINAL_SUFFIXES else LEX.units.get(suffix, (suffix, 1.0))[0]
        elif w in ("a", "an", "per") and out and i > 0 and is_number(words[i - 1]):
            i += 2  # "£30 a month", "£30 per month": a rate, not a second quantity
            continue
        elif w in ("a", "an") and duration(nxt_w) is not None and i and words[i - 1] in SPAN_LEFT:
            value = 1.0  # "for a week" = "for 7 days"; "twice a week", "calories a day" are rates
        elif (
            w in ("a", "an")
            and nxt_w in _CURRENCY_NAMES
            and i
            and words[i - 1] in SPAN_LEFT
            and (i + 2 >= len(words) or words[i + 2] in STOPWORDS)
        ):
            value = 1.0  # "under a dollar" = "below $1" (not "a dollar store")
        elif w.endswith("ies") and LEX.numbers.get(w[:-3] + "y", 0) >= 20:
            value, unit = float(LEX.numbers[w[:-3] + "y"]), "s"  # "in your thirties" = "in your 30s"
        elif (
            w in LEX.numbers
            and i
            and words[i - 1] == "the"
            and (_names_back(nxt_w) or _pair_named(w, words[:i]))
        ):
            i += 1  # "which is better of the two", "how do the two differ": the things already named
            continue
        elif w in LEX.numbers and (
            w not in LEX.weak_numbers or (nxt_w in LEX.units and nxt_w not in _SHORT_UNITS)
        ):
            # a weak number word takes no short unit: "an hour and a half, am I ..." is no time of day
            value = float(LEX.numbers[w])
            # "two hundred", "fifty five"
            while i + 1 < len(words) and words[i + 1] in LEX.numbers and words[i + 1] not in LEX.weak_numbers:
                nxt = LEX.numbers[words[i + 1]]
                value = value * nxt if nxt >= 100 else value + nxt
                i += 1
            nxt_w = words[i + 1] if i + 1 < len(words) else ""
        if value is None:
            i += 1
            continue
        value, sign = value * sign, 1.0
        days = duration(nxt_w)
        if not unit and days is not None:
            total = value * days
            if days == _MONTH_DAYS and value % 12 == 0:
                total = value / 12 * _YEAR_DAYS  # "12 months" is "a year", not 360 days
            out.append((value, nxt_w.rstrip("s"), f"{total:g}days"))
            i += 1
        elif not unit and nxt_w in LEX.units:
            canon = LEX.units[nxt_w][0]
            out.append((value, canon, f"{value:g}{canon}"))
            i += 1
        else:
            out.append((value, unit, f"{value:g}{unit}"))
        i += 1
    return sorted(out)


# "two-factor", "one-off", "3-pin": a number fused to a word that is not a unit is part of a name.
_FUSED_NUMBER = re.compile(
    r"\b(\d+|one|two|three|four|five|six|seven|eight|nine|ten)-(?!(?:day|week|month|year|hour|minute|mile|"
    r"kilo|km|kg|gb|mb|night|person|people|degree)s?\b)([a-z]+)",
    re.IGNORECASE,
)
# "catch-all", "all-purpose", "all-in-one": a quantifier hyphenated into a word quantifies nothing
_QUANTIFIER_COMPOUND = re.compile(
    r"\b[a-z]+-(?:all|every|each)\b|\b(?:all|every|each)-[a-z]+(?:-[a-z]+)*\b", re.I
)
# "H-1B", "W-2", "I-20": a letter hyphenated to a number is a code, written "H1B" as often
_LETTER_CODE = re.compile(r"\b([A-Za-z])-(\d+[A-Za-z]?)\b")
# "401(k)", "403(b)", "529(c)": a number with a letter in brackets is a name, written "401k" as often
_LETTER_IN_PARENS = re.compile(r"\b(\d+)\(([a-z])\)", re.IGNORECASE)
# "a 35° slope": a degree sign alone is degrees ("35°C" keeps its scale)
_DEGREE_SIGN = re.compile(r"\s?°(?![CFcf]\b)")
# "10 degrees C", "10 °F", "10 degrees celsius": a temperature in its scale, as "10C" is written
_DEGREES_SCALE = re.compile(
    r"\b(\d+(?:\.\d+)?)\s*(?:°\s*|degrees?\s+)(c|f|celsius|centigrade|fahrenheit)\b", re.IGNORECASE
)
# "kJ/in", "lb/in": a unit per inch ("in" after a slash is no preposition, unless "on/in" pairs two)
_PER_INCH = re.compile(r"\b([a-z]{1,4})/in\b", re.IGNORECASE)
# "NexStar+", "Disney+": a plus fused to a name is part of the name, a model of its own
_PLUS_NAME = re.compile(r"\b([A-Za-z][A-Za-z0-9]*)\+(?![\w+])")
# "7am", "2kg", "18-year-old", "9:15": quantities (checked by the number rule), not names.
_QUANTITY_TOKEN = re.compile(
    r"\d+([.:/]\d+)*(st|nd|rd|th|kg|g|km|m|gb|mb|tb|k|p|pm|am|mi|gi|ki|mib|gib|ms|s|h|d|c|f|psi)?"
    r"(-(day|week|month|year|hour|minute|night|mile|kg|km|gb|mb|person|people)s?)?(-old)?"
)


_FUZZY_TIMES: dict[str, tuple[str, ...]] = {}
for _t in sorted({*LEX.weekdays, *LEX.times, *LEX.months.values()} - set(LEX.ambiguous)):
    if len(_t) >= 6:
        _FUZZY_TIMES[_t[0]] = (*_FUZZY_TIMES.get(_t[0], ()), _t)


@functools.lru_cache(maxsize=16384)
def time_word(w: str) -> str | None:
    """A weekday, a relative day or a part of the day, by its canonical name (typos tolerated).
    Months and seasons are read in context by :func:`_times`."""
    if w.endswith("s") and (w[:-1] in LEX.weekdays or w[:-1] in LEX.times):
        w = w[:-1]
    if w in LEX.weekdays or (w in LEX.times and w not in LEX.ambiguous):
        return w
    if len(w) >= 5 and not known(w):  # a misspelt weekday or month ("Mondys") is still that day;
        # a word of its own is not ("string" is no "spring")
        for t in _FUZZY_TIMES.get(w[0], ()):
            # a word that starts with the whole name is another word made from it: "eastern", "summery"
            if (
                abs(len(t) - len(w)) <= 3
                and not w.startswith(t)
                and SequenceMatcher(None, w, t).ratio() >= 0.8
            ):
                return t
    return None


def _day_number(w: str) -> bool:
    """A day of the month as written before its month: "3", "21st" ("a number from 1 to 100 may be
    prime": 100 is no day)."""
    m = _DIGITS_ORDINAL.fullmatch(w)
    return m is not None and 1 <= int(m.group(1)) <= 31


# A time by another name is that time ("summertime" / "summer"): synonyms.txt groups with a time in
# them name it. A name that is no time on its own ("night": "sleep better at night" says no more than
# "sleep better") only matches the time: see :func:`named_times`.
_TIME_NAMES = {
    w: min(times)
    for group in LEX.synonyms
    if (times := group & LEX.times - set(LEX.ambiguous))  # "fall|drop|dip" is no season
    for w in group
}


def time_named(w: str) -> str | None:
    """The time a word names by another name ("night" -> evening), if it does."""
    return _TIME_NAMES.get(w)


def named_times(f: Features) -> set[str]:
    """The times f names, with those only a word of another name for a time gives ("at night")."""
    return set(f.times) | {_TIME_NAMES[w] for w in f.words if w in _TIME_NAMES}


def _times(words: list[str], capitalised: set[str]) -> set[str]:
    out = {_TIME_NAMES.get(t, t) for t in _dates(words, capitalised)}
    if {"saturday", "sunday"} <= out:  # "on saturdays and sundays" is "at weekends"
        out -= {"saturday", "sunday"}
        out.add("weekend")
    return out


_MODAL_NEXT = frozenset({"be", "not", "have", "also", "well", "just", "still"})


def _dates(words: list[str], capitalised: set[str]) -> set[str]:
    out: set[str] = set()
    for i, w in enumerate(words):
        left = words[i - 1] if i else ""
        right = words[i + 1] if i + 1 < len(words) else ""
        if w in LEX.months or (w in LEX.ambiguous and w in LEX.times):
            name = LEX.months.get(w, w)
            if w not in LEX.ambiguous and len(w) > 3:
                out.add(name)
            elif w in capitalised or _day_number(left) or right[:1].isdigit():
                # "the May pay run", "3 March", "March 3": the modal and the verb are lower case
                out.add(name)
            elif left == "this" and w == "may" and right and (right in _MODAL_NEXT or right not in STOPWORDS):
                pass  # "this may sound dumb", "this may be": pronoun and modal ("this may in zone 5" is May)
            elif left in _DATE_LEFT and (left != "the" or (i >= 2 and words[i - 2] in _DATE_LEFT)):
                out.add(name)  # "the" only in "in the fall": "the march of progress" is no date
            continue
        t = time_word(w)
        if t:
            out.add(t)
    return out


def _clock_unit(w: str) -> bool:
    """Hours, minutes, seconds: durations shorter than a day, which the units table keeps apart."""
    return LEX.units.get(w, ("", 0.0))[0] in ("h", "min", "s")


def _periods(words: list[str]) -> set[str]:
    out: set[str] = set()
    for i, w in enumerate(words):
        if w in LEX.periods:
            out.add(LEX.periods[w])
        elif i and words[i - 1] in _PERIOD_LEFT and (duration(w) is not None or _clock_unit(w)):
            out.add(key(w))  # "per week", "per hour"
    return out


_KEEP_FROM, _STOP_ING, _KNOWING = _CTX["keep-from"], _CTX["stop-ing"], _CTX["knowing"]
_STOP_END, _STOP_END_LEFT, _STOP_END_RIGHT = _CTX["stop-end"], _CTX["stop-end-left"], _CTX["stop-end-right"]
_KEEP_AWAY = _CTX["keep-away"]
_HALTING = _CTX["halting"]


def not_knowing(tokens: Sequence[str], i: int) -> bool:
    """tokens[i] negates what the asker knows, within the next three words: "I never really
    understood", "it makes no sense to me", "I'm not sure". A negation of the asker's knowledge, not
    of the request. An article and a word ahead of it make it a judgement: "it is not a good idea"
    (but "I don't have a clue" is knowledge)."""
    if norm_word(tokens[i]) not in LEX.negators:
        return False
    after = [norm_word(t) for t in tokens[i + 1 : i + 4]]
    for j, w in enumerate(after):
        if w in _KNOWING:
            return not any(v in ("a", "an") for v in after[: max(j - 1, 0)])
    return False


# A phrase in quotes: "how do you say 'I don't understand'". Inside a word an apostrophe ends nothing.
_QUOTED = re.compile(r"(?<!\w)['\u2018\"\u201c](.+?)['\u2019\"\u201d](?!\w)")


def _quoted_knowing(text: str) -> int:
    """Negations of knowing inside quotes: "how do you say 'I don't understand' in Japanese" asks about
    the phrase, so its negation counts, though outside quotes it would be the asker's knowledge."""
    count = 0
    for m in _QUOTED.finditer(text):
        toks = _TOKEN_WITH_PUNCT.findall(m.group(1))
        count += sum(1 for i in range(len(toks)) if not_knowing(toks, i))
    return count


def _gerund(w: str) -> bool:
    """An -ing form of a verb ("sticking"), not a word that ends so ("wing", "ceiling", "string")."""
    return w.endswith("ing") and any(v != w for v in lemminflect.getAllLemmas(w).get("VERB", ("",)))


def _halts_from(w: str, after: list[str]) -> bool:
    """ "stop nginx from starting", "block ads from my browser", "keep the dog from digging": a "from"
    after the object halts; after "keep" only before an -ing ("keep the comments from my tutor" keeps
    them)."""
    if "from" not in after:
        return False
    return not w.startswith("keep") or any(_gerund(t) for t in after[after.index("from") + 1 :][:2])


_SUBJECTS = frozenset({"i", "we", "you", "they", "he", "she", "it"})
# a contracted negative auxiliary and its positive: "isnt" -> is, "cant" -> can, "wont" -> will
_AUXILIARIES = _CTX["auxiliary"]
_POSITIVE = {
    w: base
    for w in LEX.negators
    if (base := {"cant": "can", "cannot": "can", "wont": "will"}.get(w, w[:-2])) in _AUXILIARIES
}
_NOT_HEADS = frozenset({"really", "even", "yet", "ever", "actually", "just", "a", "an", "the", "to", "be"})


def _negations(tokens: list[str]) -> tuple[int, int, tuple[str, ...]]:
    """Negators, less the contrastive ones: "(not the remote)", ", not the old one" narrow a noun, and
    less a negator that repeats one in the same list: "no lighter and no matches" negates once, as
    "without matches or a lighter" does. Also how many of them halt something ("stop", "prevent"),
    and the verbs a pronoun subject is said not to do ("I didn't get" -> get)."""
    count = halts = 0
    heads: list[str] = []
    last = -10  # index of the last negator counted
    for i, tok in enumerate(tokens):
        w = norm_word(tok)
        after = [norm_word(t) for t in tokens[i + 2 : i + 6]]  # past the object's first word
        # "stop on a longboard using foot braking" says how to stop, not what: a preposition after it
        nxt_word = norm_word(tokens[i + 1]) if i + 1 < len(tokens) else ""
        stops = w in _STOP_ING and nxt_word not in ADJUNCT and any(_gerund(t) for t in after)
        if stops or (w in _KEEP_FROM and (_halts_from(w, after) or _KEEP_AWAY & set(after[:2]))):
            # "stop nginx from starting", "stop pasta sticking" = "prevent pasta sticking", "keep moths away"
            count += 1
            halts += 1
            continue
        nxt_tok = tokens[i + 1] if i + 1 < len(tokens) else "."
        end_tok = tokens[i + 2] if i + 2 < len(tokens) else "."
        if w in _STOP_END and (
            (i and norm_word(tokens[i - 1]) in _STOP_END_LEFT and not nxt_tok[0].isalnum())
            or (norm_word(nxt_tok) in _STOP_END_RIGHT and not end_tok[0].isalnum())
        ):
            count += 1  # "how do I get it to stop", "how do I stop it": what the question describes, stopped
            halts += 1
            continue
        if w not in LEX.negators:
            continue
        prev = tokens[i - 1] if i else ""
        nxt = norm_word(tokens[i + 1]) if i + 1 < len(tokens) else ""
        before = {norm_word(t) for t in tokens[max(i - 2, 0) : i]}
        if prev in ("(", ",", "-", "\u2014", "\u2013", ";") and nxt in _CONTRAST:
            continue
        if not_knowing(tokens, i):
            continue  # "I never learned any theory", "it makes no sense to me": the asker's knowledge
        if norm_word(prev) in ("and", "or", "nor") and i - last <= 5 and w == norm_word(tokens[last]):
            last = i  # the same negator again in a list: "no lighter and no matches" negates once
            continue  # ("is not charging and won't turn on" negates two things)
        if w == "not" and norm_word(prev) == "or" and (not nxt_tok[0].isalnum() or "whether" in before):
            continue  # a yes-or-no question's tail: "is it safe to eat or not?", "whether or not to"
        if norm_word(prev) in ("and", "or") and i > 1 and _POSITIVE.get(w) == norm_word(tokens[i - 2]):
            continue  # both ways: "what is and isn't included", "what can and can't I bring"
        if (not prev or not prev[0].isalnum()) and nxt in _SUBJECTS and w in _POSITIVE:
            continue  # a negative question opening a clause: "aren't they the same thing?" asks "are they"
        count += 1
        halts += w in _HALTING
        if norm_word(prev) in _SUBJECTS and w not in _HALTING:  # "I didn't get": what was not done
            nxt_words = (norm_word(t) for t in tokens[i + 1 : i + 4])
            head = next((v for v in nxt_words if v.isalpha() and v not in _NOT_HEADS), None)
            if head:
                heads.append(verb_key(head))
        last = i
    return count, halts, tuple(sorted(set(heads)))


_HAVE_DONE = _SUBJECTS | {"ive", "weve", "youve", "have", "has"}


def _novice(tokens: list[str]) -> int:
    """ "never" after its subject with "before" a few words on: "if I've never made any before", "you
    have never done one before". The asker's inexperience, which "for a beginner" says as well."""
    words = [norm_word(t) for t in tokens]
    return sum(
        1
        for i, w in enumerate(words)
        if w == "never" and _HAVE_DONE & set(words[max(i - 2, 0) : i]) and "before" in words[i + 2 : i + 7]
    )


def unprefixed(w: str) -> list[str]:
    """What w negates through a negating prefix, one base per prefix it starts with: "unused" -> "used"
    (callers compare its key or its lemmas). A base needs three letters: "undo" has none."""
    return [w[len(p) :] for p in LEX.negating_prefixes if w.startswith(p) and len(w) - len(p) >= 3]


def _negated(words: list[str]) -> list[tuple[str, str]]:
    """Words with a negating prefix or suffix, and the key of the base they negate."""
    out: list[tuple[str, str]] = []
    for w in words:
        out.extend((w, key(base)) for base in unprefixed(w))
        for s in LEX.negating_suffixes:
            if w.endswith(s) and len(w) - len(s) >= 4:
                out.append((w, key(w[: -len(s)])))
    return out


_FREE_OF = re.compile(r"\b([a-z]{3,})-free\b", re.IGNORECASE)


def _free_of(text: str) -> list[tuple[str, str]]:
    """ "tax-free", "sugar-free": without what the first word names (its base is matched as a prefix,
    so "taxable" and "sugary" have it)."""
    found = (m.group(1).lower() for m in _FREE_OF.finditer(text))
    return [(w + "free", key(w)) for w in found if w not in STOPWORDS]


def _phrase_classes(words: list[str], table: dict[str, str]) -> set[str]:
    text = " " + " ".join(words) + " "
    text = text.replace(" quick question ", " question ")  # a filler phrase, not a request for brevity
    return {cls for phrase, cls in table.items() if f" {phrase} " in text}


_EXPLAIN, _REASON = _CTX["explain"], _CTX["reason"]


def _depth(words: list[str]) -> set[str]:
    """How deep the answer is asked to be: the phrases of depth.txt, "explain" with a why or how a few
    words on ("explain the chemistry of why baking soda is basic"), as "explain why" is, and a unit by
    unit ("week by week", "hour by hour", "mile by mile")."""
    out = _phrase_classes(words, LEX.depth)
    for i, w in enumerate(words):
        if w in _EXPLAIN and _REASON & set(words[i + 1 : i + 6]):
            out.add("deep")
        if words[i + 1 : i + 3] == ["by", w] and w in LEX.units and w not in _SHORT_UNITS:
            out.add("deep")  # "a week-by-week feeding chart", "hour by hour", as "step by step" is
    return out


def _formats(words: list[str]) -> set[str]:
    """The shapes the answer is asked in; a format phrase right after a part of that shape says where,
    not how ("rename a column in a table")."""
    out = set()
    lead = [w for w in words[:4] if w not in LEX.fillers and w not in _ASKING]
    if lead and lead[0] in _DRAFT_VERBS and lead[1:2] != ["off"]:
        # an imperative: "Draft a privacy policy", "can you write a cover letter" ("write off" deducts)
        out.add("draft")
    for phrase, cls in LEX.formats.items():
        n = len(phrase.split())
        for i in range(len(words) - n + 1):
            if " ".join(words[i : i + n]) == phrase and not (i and words[i - 1] in FORMAT_PARTS):
                out.add(cls)
    # "as a week-by-week table", "as a short numbered list": the shape with words that describe it
    for i, w in enumerate(words[:-2]):
        if w == "as" and words[i + 1] in ("a", "an"):
            shape = next((_AS_SHAPE[x] for x in words[i + 3 : i + 6] if x in _AS_SHAPE), None)
            if shape:
                out.add(shape)
    return out


# the nouns of "as a table", "as a list" ...: the format phrases "as a X"
_AS_SHAPE = {
    p.split()[-1]: cls for p, cls in LEX.formats.items() if p.startswith("as a ") and len(p.split()) == 3
}


def noun_after(words: Sequence[str], i: int) -> str:
    """The key of the head noun of the phrase starting after words[i]: the last word before a
    preposition, verb-like word or the end, within four words ("all running containers" -> container).
    A particle after the head ends it too: "take one piece out of the panel" -> piece."""
    head = ""
    for w in words[i + 1 : i + 5]:
        if w in STOPWORDS or w in LEX.negators or (head and w in LEX.particles):
            if head:
                break
            continue
        head = key(w)
        if w.endswith("s") and len(w) > 3:
            break  # a plural noun ends the phrase
    return head


_COLLECTIVE, _QUANTIFIER_IDIOM = _CTX["collective"], _CTX["quantifier-idiom"]
_IDIOM_HEADS, _WHOLE_COMPOUND = frozenset(key(w) for w in _QUANTIFIER_IDIOM), _CTX["whole-compound"]


_IDIOM_PHRASES = frozenset({("the", "way"), ("at", "once")})


def _idiom(w: str, nxt: str) -> bool:
    """w with the word after it is an idiom, not a quantifier: "every so often", "each other", "all
    over", "every time", "a whole number"."""
    return nxt in _QUANTIFIER_IDIOM or (w == "whole" and nxt in _WHOLE_COMPOUND)


def _universal(w: str, nxt: str) -> bool:
    """w quantifies a whole set: "every user", not "every so often" or "each other"."""
    return LEX.quantifiers.get(w) == "universal" and not _idiom(w, nxt)


def _part_of_week(w: str) -> bool:
    """A weekday or a part of the day or week by its exact name ("morning", "weekends", "Mondays"):
    after a quantifier it is a rate, "every morning", not a set."""
    return any(v in LEX.times or v in LEX.weekdays for v in (w, w.removesuffix("s")))


def _quantified(words: list[str]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for i, w in enumerate(words):
        cls = LEX.quantifiers.get(w)
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if cls == "single" and (nxt in LEX.units or is_number(nxt)):
            continue  # "one day" is a quantity
        if cls is None and w in _PICK_ONE and LEX.scales.get(nxt, ("", 0))[0] == "order":
            cls = "single"  # "the last element", "the latest tag": one member picked by its order
        if cls is None and w == "just" and nxt in ("one", "a", "an"):
            continue
        if w == "one" and words[max(i - 2, 0) : i] == ["more", "than"]:
            cls = "several"  # "more than one solution" is "multiple solutions"
        if _idiom(w, nxt) or (cls and noun_after(words, i) in _IDIOM_HEADS):
            continue  # "every so often", "each other", "every single time": no set
        if cls and is_number(nxt) and i + 2 < len(words) and words[i + 2] in LEX.units:
            continue  # "every 17 years", "every 90 minutes", "every 5 km": an interval
        if cls == "universal" and tuple(words[i + 1 : i + 3]) in _IDIOM_PHRASES:
            continue  # "all the way around the quilt", "all at once": how far or when, not a set
        if cls == "universal" and (nxt == "other" or words[i + 1 : i + 3] == ["the", "other"]):
            continue  # "keep all the other seams soldered": the rest of what is named, no set of its own
        if w == "all" and nxt in ("round", "around"):
            continue  # "letters all round the arena": where, not a set
        if w == "one" and i and LEX.quantifiers.get(words[i - 1]) == "universal":
            continue  # the "one" of "each one"
        if cls == "universal" and (
            nxt == "one" or (nxt == "of" and words[i + 2 : i + 3] in (["them"], ["these"], ["those"]))
        ):
            continue  # "each one", "each of them": the things named before it, no set of its own
        if cls and duration(nxt) is None and not _part_of_week(nxt):
            # "each month", "a year", "every morning": a rate or a period, not a set
            out.add((cls, noun_after(words, i)))
        if w in _COLLECTIVE and nxt == "of":
            out.add(("universal", noun_after(words, i + 1)))  # "a full set of airpods": all of them
    return out


def _scales(words: list[str]) -> set[tuple[str, int]]:
    out: set[tuple[str, int]] = set()
    skip = False
    for i, w in enumerate(words):
        if skip:
            skip = False
            continue
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if (w in _HIGH or w in _LOW) and nxt in LEX.scales:
            scale, end = LEX.scales[nxt]
            out.add((scale, end if w in _HIGH else -end))
            skip = True
        elif f"{w} {nxt}" in LEX.scales:
            out.add(LEX.scales[f"{w} {nxt}"])
            skip = True
        elif w in LEX.scales:
            out.add(LEX.scales[w])
    return out


def _left_of(words: list[str], i: int) -> list[str]:
    """Keys of the content words of up to three words before words[i], nearest first, back to a word
    that ends the phrase ("from", "for" ...)."""
    out = []
    for j in range(i - 1, max(0, i - 3) - 1, -1):
        if words[j] in _STOP_LEFT:
            break
        if _counts(words, j):
            out.append(key(words[j]))
    return out


def _counts(words: list[str], j: int) -> bool:
    """words[j] is a content word, or a number word before a unit: "one" in "a one-day event"."""
    w = words[j]
    return w not in STOPWORDS or (w in LEX.numbers and j + 1 < len(words) and words[j + 1] in LEX.units)


def _transfers(words: list[str]) -> set[tuple[str, str]]:
    """(what, where) around each "to"/"into": the content word just before it and the first content
    word after it, "convert a date to a timestamp" -> (date, timestamp)."""
    out: set[tuple[str, str]] = set()
    for i in (i for i, w in enumerate(words) if w in _TRANSFER):
        before, after = _left_of(words, i), noun_after(words, i)
        if before and after:
            out.add((before[0], after))
    return out


def _transfer_sides(words: list[str]) -> set[tuple[frozenset[str], frozenset[str]]]:
    """(keys of where from, keys of where to) around each "to"/"into"/"onto", and each "from" read
    backwards: the content words before it (see :func:`_left_of`) and those of the phrase after it.
    "transfer a digital drawing onto a real canvas" -> ({digital, draw}, {real, canva}); "a selling
    price from cost and margin" -> ({cost, margin}, {sell, price}): what is made from what."""
    out: set[tuple[frozenset[str], frozenset[str]]] = set()
    for i, w in enumerate(words):
        if w not in _TRANSFER and w != "from":
            continue
        after: list[str] = []
        for j in range(i + 1, min(i + 6, len(words))):
            # the sources a "from" names may be several: "from cost and selling price"
            if (words[j] in _STOP_LEFT and not (w == "from" and words[j] == "and")) or words[j] in _TRANSFER:
                break
            if _counts(words, j):
                after.append(key(words[j]))
        before = _left_of(words, i)
        if before and after:
            sides = (frozenset(before), frozenset(after))
            out.add(sides if w != "from" else sides[::-1])
    return out


_OWNER = re.compile(r"\b([A-Za-z]+)['\u2019]s?\s|\b(my|our)\s", re.IGNORECASE)
ASKER_OWNS = frozenset({"my", "our"})  # the words that make a noun the asker's own (rules.py reads them too)


@functools.cache
def _person_keys() -> frozenset[str]:
    return frozenset(key(w) for w, c in LEX.people.items() if c != "business")


def someone(w: str) -> bool:
    """w (a word or its key) names a person, not an organisation: "my neighbor's gutter" is the
    neighbour's, "our company's policy" is ours."""
    return key(w) in _person_keys()


def _owners(text: str) -> set[tuple[str, str]]:
    """(owner, key of each content word it owns) for "X's N" and "my N" / "our N" (owner "asker"),
    up to the next function word: "a supplier's damages claim" -> (supplier, damag), (supplier,
    claim). X owned by the asker ("our company's policy") makes N the asker's too, unless X is a
    person: "my neighbor's gutter" is the neighbour's, and the asker owns only the neighbour."""
    out: set[tuple[str, str]] = set()
    for m in _OWNER.finditer(text):
        owner = "asker" if m.group(2) else key(m.group(1))
        before = text[: m.start()].split()
        if owner != "asker" and before and norm_word(before[-1]) in ASKER_OWNS and not someone(m.group(1)):
            owner = "asker"
        for t in text[m.end() :].split()[:3]:
            w = norm_word(t)
            if not w or w in STOPWORDS or not w.isalpha():
                break
            out.add((owner, key(w)))
            if owner == "asker" and t.lower().endswith("'s") and someone(w):
                break  # "my neighbor's yard": the yard is the neighbour's
    return out


def qualifier_word(w: str) -> bool:
    """A word that can carry a qualifier's content: not a function word, negator or preposition, nor a
    number, duration or date, which the number and date rules compare ("within 14 days" = "within two
    weeks")."""
    return not (
        w in STOPWORDS
        or w in LEX.negators
        or w in ADJUNCT
        or is_number(w)
        or w in LEX.numbers
        or w in LEX.months
        or duration(w) is not None
        or time_word(w) is not None
    )


def _strong_word(w: str) -> bool:
    """A unit that is no duration ("in megabytes", "in Fahrenheit")."""
    unit = LEX.units.get(w)
    return unit is not None and unit[0] != "day" and w not in LEX.ambiguous and w not in LEX.number_units


# depth phrases shaped like qualifiers: an adverb ("briefly"), a prepositional phrase ("in detail",
# "with examples") or a repeated noun around a preposition ("step by step"); not the verbs and
# adjectives ("explain how", "walk me through", "quick"), which a paraphrase may add
_DEPTH_ADJUNCTS = tuple(
    p.split()
    for p in LEX.depth
    if p.endswith("ly")
    or p.split()[0] in ADJUNCT
    or (len(p.split()) == 3 and p.split()[0] == p.split()[2] and p.split()[1] in ADJUNCT)
)


def opens(tokens: list[str], i: int) -> bool:
    """tokens[i] opens a qualifier: a preposition, or "to" before a noun phrase ("sell honey to
    supermarkets", "send it to my bank"), not before a verb ("how to sell", "want to visit")."""
    tok = tokens[i]
    if tok != "to":
        return tok in ADJUNCT
    nxt, after = [*tokens[i + 1 : i + 3], "", ""][:2]
    reciprocal = (nxt in LEX.quantifiers or nxt in LEX.numbers) and after in _RECIPROCAL
    if not nxt[:1].isalpha() or reciprocal:
        return False  # "introduce them to each other" is who meets whom, not a qualifier
    return nxt in _TO_NOUN or not can_be_verb(nxt)


_TO_NOUN = _CTX["contrast"] | _POSSESSIVE  # "to the", "to my": a noun phrase follows
_RECIPROCAL = _CTX["reciprocal"]


_NUMBER_UNIT = re.compile(r"(\d+(?:\.\d+)?)([a-z]+)", re.IGNORECASE)


def fused_unit(word: str) -> tuple[str, str] | None:
    """A number with a unit fused to it, split in two: "15psi" -> ("15", "psi"), "5g" -> ("5", "g");
    None when word is no number followed by letters, or the letters name no unit."""
    m = _NUMBER_UNIT.fullmatch(word)
    return (m.group(1), m.group(2).lower()) if m and m.group(2).lower() in LEX.units else None


def _qualifiers(text: str) -> list[tuple[str, tuple[str, ...], bool]]:
    """The phrases that qualify the whole request, by their form rather than by a word table: a
    prepositional phrase ("in megabytes", "across all regions", "with examples", "to supermarkets"; see
    :func:`opens`), up to punctuation or the next preposition, conjunction or question word; an adverb
    in -ly ("briefly"); a depth phrase built around a preposition ("step by step"). Each is (marker,
    content words, strong): strong when it quantifies universally ("for every user"), names the unit of
    the answer ("in MiB", not "for hours") or asks for a depth ("in detail", "briefly"). A phrase
    attached to a filler ("thanks in advance") qualifies nothing, and a weak one naming the asker's own
    thing ("on my server", "for our team") is context, unless the thing is a part of the body ("on my
    hands": what to wear on them is narrower than what to wear)."""
    # the parts of a hyphenated word stay in one phrase: "for ship-to-ship chat" (its "to" opens none)
    tokens: list[str] = []
    glued: set[int] = set()
    for t in _PHRASE_TOKEN.findall(text):
        for k, part in enumerate(t.split("-") if t[0].isalnum() else [t]):
            if k:
                glued.add(len(tokens))
            # a unit fused to its number is the unit written after it: "at 15psi" = "at 15 psi"
            # (not a single letter: "5g" is as often the network as five grams)
            fused = fused_unit(part)
            if fused and len(fused[1]) > 1:
                tokens.append(fused[0])
                part = fused[1]
            tokens.append(norm_word(part) if part[0].isalnum() else part)
    depth_words = {w for phrase in _DEPTH_ADJUNCTS for w in phrase}
    joined = " " + " ".join(tokens) + " "
    depth_found = [p for p in _DEPTH_ADJUNCTS if f" {' '.join(p)} " in joined]
    out: list[tuple[str, tuple[str, ...], bool]] = []
    for i, tok in enumerate(tokens):
        if opens(tokens, i) and i not in glued and not (i and tokens[i - 1] in LEX.fillers):
            content: list[str] = []
            strong = possessive = False
            for j, w in enumerate(tokens[i + 1 :], i + 1):
                if j not in glued and (not w[0].isalnum() or w in _ADJUNCT_END):
                    break
                unit = tok in _UNIT_LEFT and _strong_word(w)
                strong = strong or unit or _universal(w, tokens[j + 1] if j + 1 < len(tokens) else "")
                # "on my server" is the asker's own thing; "on my hands" narrows what is asked
                body = j + 1 < len(tokens) and tokens[j + 1] in _BODY_PART
                possessive = possessive or (w in _POSSESSIVE and not body)
                if qualifier_word(w):
                    content.append(w)
            phrase = [tok, *content]
            strong = strong or any(p[0] == tok and set(p) <= {*phrase, *STOPWORDS} for p in depth_found)
            if content and (strong or not possessive):
                out.append((tok, tuple(content), strong))
        elif tok.endswith("ly") and len(tok) > 4 and qualifier_word(tok):
            out.append(("-ly", (tok,), tok in depth_words))
    for phrase in depth_found:
        if phrase[0] not in ADJUNCT and len(phrase) > 1:  # "step by step", "line by line"
            out.append(("depth", tuple(w for w in phrase if qualifier_word(w)), True))
    return out


def _after(words: list[str], markers: tuple[str, ...]) -> tuple[str, ...]:
    """The first content word after each marker."""
    out: set[str] = set()
    for i, w in enumerate(words):
        if w in markers:
            nxt = next((v for v in words[i + 1 : i + 4] if v not in STOPWORDS), "")
            if nxt:
                out.add(key(nxt))
    return tuple(sorted(out))


_SHORT_UNITS = frozenset({"am", "pm", "%", "s", "in", "m"})
_DEVICE_UNITS = _CTX["device-unit"]
_UNIT_MODIFIERS = frozenset({"cubic", "square", "sq", "per", "million", "thousand"})
_CURRENCY = dict(pair.split(":") for pair in _CTX["currency"])
# the currencies' names ("dollar", "euros"), not their symbols or codes
_CURRENCY_NAMES = frozenset(w for w in _CURRENCY if w.isalpha() and w.islower() and len(w) > 3)


def _currencies(text: str, words: list[str]) -> set[str]:
    """The currencies a text names, by symbol ("$", "£"), ISO code or unambiguous name ("euros")."""
    return {c for sym, c in _CURRENCY.items() if not sym.isalpha() and sym in text} | {
        _CURRENCY[w] for w in words if w in _CURRENCY
    }


def _device(words: list[str], i: int) -> bool:
    """words[i] names a device, not a unit: "my gas meter" (a content word before it). "cubic meters",
    "in meters" and "3 meters" are units."""
    prev = words[i - 1] if i else ""
    return (
        words[i] in _DEVICE_UNITS
        and prev.isalpha()
        and prev not in STOPWORDS
        and prev not in _UNIT_MODIFIERS
        and prev not in LEX.numbers
    )


def _units(words: list[str], quants: list[tuple[float, str, str]]) -> set[str]:
    # short words with other readings ("am", "in", "m") are units only after a number; "metres" is not
    # durations named without a number are units too ("convert hours to days"), all as "day": a period
    # ("per week" / "per month") is the date rule's, a count of days the number rule's
    named = {
        LEX.units[w][0]
        for i, w in enumerate(words)
        if w in LEX.units and w not in LEX.ambiguous and w not in _SHORT_UNITS and not _device(words, i)
    }
    # a counted duration ("12 months") is compared by its days, by the number rule
    return named | {u for _, u, _ in quants if u and u not in ("day",) and duration(u) is None}


_MIXED_HYPHEN = re.compile(r"\d+[a-z]+-[a-z]+$", re.IGNORECASE)  # "7B-parameter"


def _entity(
    core: str, sentence_start: bool, shouting: bool, entities: set[str], capitalised: set[str]
) -> None:
    is_cap = core[0].isupper() and core.lower() != "i" and not core.lower().startswith("i'")
    if is_cap and not sentence_start and not shouting:
        capitalised.add(core.lower())
    acronym = len(core) >= 2 and core.removesuffix("s").isupper() and core.isalpha()
    mixed = any(c.isdigit() for c in core) and any(c.isalpha() for c in core)
    plain = entity_key(core)
    candidate = not shouting and ((is_cap and not sentence_start) or acronym or mixed)
    # a function word is a name only when capitalised inside a sentence ("in Go", "the May pay run")
    candidate = (
        candidate
        and plain not in LEX.ambiguous
        and (plain not in STOPWORDS or (is_cap and not sentence_start and plain not in LEX.function_words))
    )
    if candidate and not _QUANTITY_TOKEN.fullmatch(plain) and plain not in LEX.units:
        entities.add(plain)


def _cased_units(text: str) -> set[str]:
    """Units written with a capital, as written: "MB" (megabytes) is not "Mb" (megabits)."""
    out = set()
    for tok in WORD.findall(text):
        unit = tok.lstrip("0123456789.")
        if unit.lower() in LEX.units and unit != unit.lower():
            out.add(unit)
    return out


_ROMAN = {"I": 1, "V": 5, "X": 10}


def _roman(token: str) -> float | None:
    if not token or any(c not in _ROMAN for c in token) or len(token) > 5:
        return None
    total = 0
    for i, c in enumerate(token):
        v = _ROMAN[c]
        total += -v if i + 1 < len(token) and _ROMAN[token[i + 1]] > v else v
    return float(total)


_NAMED_PART = _CTX["named-part"]


def _romans(raw: list[str]) -> set[float]:
    """Roman numerals right after a capitalised word ("World War I", "Part II") or, in capitals, after
    a word that names a numbered part ("class IV", "stage II"); "I" alone, or after a function word
    ("Can I", "Do I"), is a pronoun."""
    out = set()
    for prev, tok in itertools.pairwise(raw):
        prev, core = prev.strip(_EDGE), tok.strip(_EDGE)
        value = _roman(core)
        pronoun = core == "I" and prev.lower() in LEX.function_words
        if value is not None and core.isupper() and prev.lower() in _NAMED_PART:
            out.add(value)  # "class IV whitewater", "stage II": a numbered part after a lower-case word
        elif (
            value is not None
            and prev[:1].isupper()
            and not prev.endswith((".", "?", "!"))
            and prev != "I"
            and not pronoun
        ):
            out.add(value)
    return out


def _title_case(raw: list[str]) -> bool:
    """Two function words capitalised inside a sentence ("How To Reset The Router")."""
    titled = 0
    start = True
    for tok in raw:
        core = tok.strip(_EDGE)
        if core and not start and core[0].isupper() and core.lower() in LEX.function_words and core != "I":
            titled += 1
        start = tok.endswith((".", "?", "!", ":", ","))
    return titled >= 2


def plural(w: str) -> bool:
    return len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is"))


_NOT_SUPERLATIVE = LEX.contexts["not-superlative"]


def _superlatives(words: list[str]) -> set[tuple[str, str, bool]]:
    """The superlatives and the nouns they pick, as (superlative, key, plural): "the cheapest filament"
    -> (cheapest, filament, False), "the largest lakes" -> (largest, lake, True); (best, "", False)
    when none follows ("which movie is the best?")."""
    out = set()
    for i, w in enumerate(words):
        named = w in LEX.scales and (w.endswith("est") or w in ("best", "worst"))
        # any "the ...est" ("the lightest tent"), but for the words that only end like one
        formed = (
            i and words[i - 1] == "the" and len(w) >= 6 and w.endswith("est") and w not in _NOT_SUPERLATIVE
        )
        if not (named or formed):
            continue
        if i + 1 == len(words):
            out.add((w, "", False))  # "which movie is the best?": the set is named before it
        elif words[i + 1] not in STOPWORDS:  # "the best way to", "the best of them" pick no noun
            out.add((w, key(words[i + 1]), plural(words[i + 1])))
    return out


_PERSON_THING = _CTX["person-thing"]


def _names_back(nxt: str) -> bool:
    """A number word after "the" with nxt after it counts nothing new but the things already named: at
    the end ("better of the two"), before a function word ("are the two the same") or a verb that is no
    noun ("how do the two differ"); "the two sides" counts sides and "just the two of us" people."""
    if not nxt or (nxt in STOPWORDS and nxt not in LEX.units and nxt != "of"):
        return True
    found = lemminflect.getAllLemmas(nxt)
    return "VERB" in found and "NOUN" not in found


def _pair_named(w: str, before: list[str]) -> bool:
    """ "the two" after the question has named two things with "vs", "and" or "or": "EPUB vs MOBI: how
    do the two formats differ" counts the two already named."""
    return w == "two" and bool({"vs", "versus", "and", "or"} & set(before))


def _noun_only(w: str) -> bool:
    """A word LemmInflect's tables know as a noun and nothing else: "car", "house" (not "sleep", "get")."""
    return set(lemminflect.getAllLemmas(w)) == {"NOUN"}


def _people(words: list[str]) -> list[str]:
    """The classes of people a question is about (people.txt), and "age" for someone named by age alone:
    "a 10 year old", "should a 2 year old sleep" (not "a 10 year old car": a noun after it is the
    thing). Whether that is a child or the asker ("can a 16-year-old ..." / "can I ... at 16"), only
    the other side tells. A person's word after "to" with a noun phrase after it is a verb: "how to
    parent a mesh to an armature" names no parent."""
    out = [
        c
        for prev, w, nxt in zip(["", *words], words, [*words[1:], ""], strict=False)
        if nxt not in _PERSON_THING  # "student loan", "child care": a thing, not a person
        and not (prev == "to" and nxt in _TO_NOUN)
        for c in [LEX.people.get(w) or LEX.people.get(w.removesuffix("s"))]
        if c
    ]
    for i, (n, unit, old) in enumerate(zip(words, words[1:], words[2:], strict=False)):
        nxt = words[i + 3] if i + 3 < len(words) else ""
        if unit in ("year", "years") and old == "old" and is_number(n) and not _noun_only(nxt):
            out.append("age")
    return out


def _ordinals(words: list[str]) -> set[tuple[str, float]]:
    """Weak ordinal words with the word they number ("the first act", "Newton's second law"): alone
    they are no quantity ("first, open the file"), but two of them before one noun are two things."""
    return {
        (key(nxt), float(LEX.numbers[w]))
        for w, nxt in itertools.pairwise(words)
        if w in LEX.weak_numbers and w.endswith(_ORDINAL_SUFFIXES) and nxt not in STOPWORDS
    }


_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")
# A plea for help after the question asks nothing more: "... after lying to my partner? please help",
# "Should I open a Roth IRA? Please advise.", "How do I remove a stripped screw? Any tips?", "What is
# the ideal gas law? Please answer.", "why did my soap seize?? help" (a bare "help" only after a mark)
_PLEA = re.compile(
    r"(?:[\s,.;:!?-]*\b(?:(?:please|pls|plz)\s+(?:help(?:\s+me)?|advise|answer)|help\s+(?:please|pls|plz)|any\s+(?:tips|advice|ideas|suggestions))|[,.;:!?-]+\s*help(?:\s+me)?)[\s.!?]*$",
    re.I,
)


def _sentences(text: str) -> list[tuple[str, ...]]:
    return [tuple(WORD.findall(x.lower())) for x in _SENTENCE_END.split(text.strip()) if WORD.search(x)]


# "w/" is "with"; "w/o" and "w/out" are "without"
_WITH_SHORT = re.compile(r"(?<![\w/])w/(o(?:ut)?)?(?![\w/])", re.IGNORECASE)
_DOTTED_ACRONYM = re.compile(r"\b(?:[A-Za-z]\.){2,}(?![A-Za-z0-9])")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_NEGATIVE = re.compile(r"(?<![\w.)\]-])[-\u2212](?=\d)")  # a minus sign, not a range's or a name's hyphen


@functools.lru_cache(maxsize=4096)
def features(text: str) -> Features:
    """What the rules compare, from one text (pure, so cached: the candidates of hot questions recur on
    every lookup)."""
    original = _WITH_SHORT.sub(lambda m: "without" if m.group(1) else "with", _PLEA.sub("", fold(text)))
    original = _DOTTED_ACRONYM.sub(lambda m: m.group(0).replace(".", ""), original)  # "U.S." = "US"
    original = _LETTER_CODE.sub(r"\1\2", _LETTER_IN_PARENS.sub(r"\1\2", original))  # "401(k)", "H-1B"
    original = _PLUS_NAME.sub(r"\1plus", original)  # "NexStar+" is "NexStar Plus", another model
    text = _THOUSANDS.sub("", original)  # "1,000" is one number
    text = re.sub(r"(\d)\s*/\s*(?=[a-z])", r"\1 per ", text, flags=re.IGNORECASE)
    text = _PER_INCH.sub(
        lambda m: m.group(0) if m.group(1).lower() in STOPWORDS else m.group(1) + "/inch", text
    )
    text = _FUSED_NUMBER.sub(lambda m: m.group(1) + m.group(2), text).replace("%", " percent")
    text = _DEGREES_SCALE.sub(lambda m: m.group(1) + ("F" if m.group(2)[0] in "fF" else "C"), text)
    text = _DEGREE_SIGN.sub(" degrees", text)  # "a 35° slope"; "35°C" keeps its scale
    # "-20 dB", "-15°C" (or a Unicode minus): a sign, which the hyphen split below would drop
    text = _NEGATIVE.sub("minus ", text)
    text = _QUANTIFIER_COMPOUND.sub(lambda m: m.group(0).replace("-", ""), text)  # "catch-all" is one word
    raw = _RAW_TOKEN.findall(text.replace("\n", ". "))  # a new line starts a sentence
    words = [norm_word(w) for w in WORD.findall(text.replace("-", " ").replace("/", " "))]
    letters = [c for c in text if c.isalpha()]
    shouting = bool(letters) and sum(c.isupper() for c in letters) / len(letters) > 0.6
    # Title Case Questions capitalise function words too ("How To Reset The Router"): capitals then
    # mark no names either
    shouting = shouting or _title_case(raw)
    entities: set[str] = set()
    capitalised: set[str] = set()  # words written with a capital inside a sentence
    sentence_start = True
    for tok in raw:
        core = tok.strip(_EDGE)
        if not core:
            continue
        # "7B-parameter", "Wi-Fi": the parts of a hyphenated token are judged one by one
        hyphenated = ("-" in core and not core[:1].isdigit()) or _MIXED_HYPHEN.match(core)
        for part in core.split("-") if hyphenated else [core]:
            if part:
                _entity(part, sentence_start, shouting, entities, capitalised)
        sentence_start = tok.endswith((".", "?", "!", ":", ","))
    quants = quantities(words)
    content = [w for w in words if w not in STOPWORDS and w not in LEX.negators]
    spelled = [norm_word(w) for w in WORD.findall(original.replace("-", " ").replace("/", " "))]
    tokens = _TOKEN_WITH_PUNCT.findall(original)
    negations, halts, not_done = _negations(tokens)
    negations += _quoted_knowing(original)
    return Features(
        words=tuple(words),
        negations=negations,
        halts=halts,
        not_done=not_done,
        quantities=tuple(quants),
        times=tuple(sorted(_times(words, capitalised))),
        entities=tuple(sorted(entities)),
        people=tuple(sorted(_people(words))),
        content=tuple(content),
        spelled=tuple(spelled),
        sources=_after(words, ("from",)),
        targets=_after(words, ("to", "into", "onto")),
        keys=tuple(key(w) for w in words),
        negated=tuple(_negated(words) + _free_of(original)),
        units=tuple(sorted(_units(words, quants))),
        periods=tuple(sorted(_periods(words))),
        quantified=tuple(sorted(_quantified(words))),
        depth=tuple(sorted(_depth(words))),
        formats=tuple(sorted(_formats(words))),
        scales=tuple(sorted(_scales(words))),
        transfers=tuple(sorted(_transfers(words))),
        transfer_sides=tuple(_transfer_sides(words)),
        owners=tuple(sorted(_owners(original))),
        currencies=tuple(sorted(_currencies(original, words))),
        qualifiers=tuple(_qualifiers(text)),
        cased_units=tuple(sorted(_cased_units(original))) if not shouting else (),
        romans=tuple(sorted(_romans(raw))) if not shouting else (),
        superlatives=tuple(sorted(_superlatives(words))),
        sentences=tuple(_sentences(original)),
        ordinals=tuple(sorted(_ordinals(words))),
        novice=_novice(tokens),
        raw=original,
    )
