"""The guard's rules: named functions in one registry, run in order; the first that vetoes names the
refusal (``compare``), and ``cache.guard.verifier.overrule`` may name any of them.

Each rule gets the features of the cached question and of the new one and answers True when reusing
the cached answer would change the answer. Rules are symmetric: ``rule(a, b) == rule(b, a)``.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from difflib import SequenceMatcher

from hermes_sidecar.guard.features import (
    ADJUNCT,
    ASKER_OWNS,
    LEX,
    STOPWORDS,
    WORD,
    Features,
    can_be_verb,
    duration,
    features,
    fold,
    fused_unit,
    is_number,
    key,
    known,
    lemmas,
    named_times,
    not_knowing,
    noun_after,
    opens,
    plural,
    positives,
    qualifier_word,
    someone,
    time_named,
    time_word,
    unprefixed,
    verb_key,
)

Rule = Callable[[Features, Features], bool]
REGISTRY: dict[str, Rule] = {}


def rule(name: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        if name in REGISTRY:
            raise ValueError(f"guard rule {name!r} is registered twice")
        REGISTRY[name] = fn
        return fn

    return register


def _both_ways(a: Features, b: Features, check: Callable[[Features, Features], bool]) -> bool:
    return check(a, b) or check(b, a)


# -- negation ------------------------------------------------------------------------------------


def _polarity(mine: Features, other: Features) -> int:
    """Negators (a misspelt one too), plus words negated by an affix whose base the other side has
    ("unlock" against "lock", "passwordless" against "password", "tax-free" against "taxable")."""
    other_keys, other_words = set(other.keys), set(other.words)
    other_negated, other_text = {n for n, _ in other.negated}, " ".join(other.words)

    def has(w: str, base: str) -> bool:
        if w.endswith("free"):  # "tax-free" against "taxable"
            free = w not in other_negated and f"{w[:-4]} free" not in other_text
            return free and any(k.startswith(base) for k in other_keys)
        return (base in other_keys or verb_key(base) in other_keys) and w not in other_words

    # a negator misspelt where the other side spells it right ("aviod" / "avoid") still negates
    misspelt = sum(
        1
        for v in set(mine.words) - other_words
        if v not in LEX.negators
        and len(v) >= 4
        and not known(v)
        and any(w in LEX.negators and _typo(w, v) for w in other_words)
    )
    if _keeps(other) and not _keeps(mine):
        kept = _negated_losses(mine)
    else:  # a harm avoided that the other side, negating nothing, does not name
        kept = 0 if other.negations or _shields(other) else _negated_losses(mine, unnamed_in=other)
    kept += mine.halts if _remedy(other) and not _remedy(mine) else 0
    # "can I use the app without a card" asks "do I need a card to use the app": that "without" is
    # kept, once, however else it was ("without ruining the rest" / "need to pull ... but keep the rest")
    if (
        "without" in mine.words
        and "without" not in other.words
        and _NEED & set(other.words) - set(mine.words)
    ):
        kept = max(kept, 1)
    zero = 1 if _zero_for_no(mine, other) else 0
    shield = 1 if _shields(mine) and not _shields(other) and other.negations > mine.negations else 0
    novice = mine.novice if "before" not in other.words else 0  # "never done it before" / "a beginner"
    return (
        mine.negations
        - kept
        - novice
        + zero
        + shield
        + misspelt
        + sum(1 for w, base in mine.negated if has(w, base))
    )


_PROTECT_FROM = LEX.contexts["protect-from"]
_NEED = LEX.contexts["need"]
_REMEDY = LEX.contexts["remedy"]


def _remedy(f: Features) -> bool:
    """f asks for a remedy ("any fix?", "how do I repair it"): against "stop X from", "prevent X" or
    "avoid X" that is the same request, the halting negator its verb."""
    return bool(_REMEDY & set(f.words))


def _shields(f: Features) -> bool:
    """f keeps something away: "safe from SQL injection", "protect my files against deletion". Against
    "prevent SQL injection" that is the same negation; against a question that negates nothing it adds
    none ("protect my house from embers" / "make my home resistant to embers")."""
    return any(
        w in _PROTECT_FROM and {"from", "against"} & set(f.words[i + 1 : i + 8])
        for i, w in enumerate(f.words)
    )


def _same_period(mine: Features, other: Features) -> Counter[str]:
    """mine's "one week" where the other side says "the same week": "several exams in one week" /
    "multiple exams in the same week". One period, and no number."""
    same = {key(p) for s, p in itertools.pairwise(other.words) if s == "same" and duration(p) is not None}
    return Counter(q[2] for q in mine.quantities if q[0] == 1.0 and q[1] and key(q[1]) in same)


def _zero_for_no(mine: Features, other: Features) -> bool:
    """mine says "zero" where the other side says "no": "I have zero credit history" / "I have no
    credit history". The zero is a negation there, and no quantity."""
    return (
        "zero" in mine.words and "no" in other.words and "no" not in mine.words and "zero" not in other.words
    )


_LOSS, _LOSS_PARTICLE, _KEEP = LEX.contexts["loss"], LEX.contexts["loss-particle"], LEX.contexts["keep"]


def _keeps(f: Features) -> bool:
    """f says something is kept: "keep", "intact", "while still feeding"; not "keep ... from", which
    halts ("keep the paper from tearing" is "without tearing the paper"). Any "from" within five words,
    wider than the negation count's "from" before an -ing (features._halts_from): reading it that way
    was measured on every bench pair and lost a paraphrase ("keep a safe distance from a nest") while
    refusing no trap."""
    w = f.words
    kept = any(
        x in _KEEP and not (x.startswith("keep") and "from" in w[i + 1 : i + 6]) for i, x in enumerate(w)
    )
    return kept or any(x in ("while", "but", "and") and y == "still" for x, y in itertools.pairwise(f.words))


def _negated_losses(f: Features, unnamed_in: Features | None = None) -> int:
    """Negators of a verb of losing or harming, which keep the thing instead: "without damaging the
    heating elements", "without cutting out the wet food", "don't want to take the driftwood out". With
    ``unnamed_in``, only those whose verb that side does not name: "how to cut wig bangs without
    ruining them" asks what "the right way to trim a wig's fringe" asks, but not what "can trimming
    ruin a wig" asks."""
    named = {verb_key(w) for w in unnamed_in.words} if unnamed_in is not None else set()
    count = 0
    for i, w in enumerate(f.words):
        if w not in LEX.negators:
            continue
        for j in range(i + 1, min(i + 5, len(f.words))):
            v = f.words[j]
            if v in _LOSS or (v in _LOSS_PARTICLE and {"out", "off", "away"} & set(f.words[j + 1 : j + 4])):
                count += verb_key(v) not in named
                break
    return count


def _opposed_prefix(a: Features, b: Features) -> bool:
    wa, wb = set(a.words), set(b.words)
    for x in wa - wb:
        for y in wb - wa:
            for p, q in LEX.opposed_prefixes:
                for u, v in ((x, y), (y, x)):
                    if (
                        u.startswith(p)
                        and v.startswith(q)
                        and u[len(p) :] == v[len(q) :]
                        and len(u) - len(p) >= 3
                    ):
                        return True
    return False


def _antonym(a: Features, b: Features) -> bool:
    wa, wb = set(a.words), set(b.words)
    for left, right in LEX.antonyms:
        if (wa & left and wb & right and not wa & right and not wb & left) or (
            wb & left and wa & right and not wb & right and not wa & left
        ):
            return True
    return False


_STATE_VERBS = LEX.contexts["state-verb"]


def _particles(f: Features) -> set[tuple[str, str]]:
    """(verb, particle) pairs: "log on" -> (log, on); a state after a copula takes the word before it,
    "the heater is on" -> (heater, on)."""
    out = set()
    for i, (v, p) in enumerate(itertools.pairwise(f.words)):
        if p not in LEX.particles:
            continue
        if v in _STATE_VERBS and i and f.words[i - 1] not in STOPWORDS:
            out.add((f.words[i - 1], p))
        elif v not in STOPWORDS:
            out.add((v, p))
    return out


def _particle_flip(a: Features, b: Features) -> bool:
    """The same phrasal verb with the opposite particle: "opt in" / "opt out", "log on" / "log off"; the
    same thing in the opposite state: "when the heater is on" / "... is off"."""
    pa, pb = _particles(a), _particles(b)
    return any((v, LEX.particles[p]) in pb and (v, p) not in pb for v, p in pa) or any(
        (v, LEX.particles[p]) in pa and (v, p) not in pa for v, p in pb
    )


@rule("negation")
def negation(a: Features, b: Features) -> bool:
    """A negation on one side only (a negator, or a negating affix on a word the other side has), an
    opposed prefix (import/export), an antonym, or a phrasal verb with the opposite particle."""
    if _polarity(a, b) % 2 != _polarity(b, a) % 2:
        return True
    if _both_ways(a, b, _other_not_done) or _negation_moved(a, b) or _negation_across(a, b):
        return True
    if _both_ways(a, b, _knowing_denied):
        return True
    return _opposed_prefix(a, b) or _antonym(a, b) or _particle_flip(a, b)


def _negated_heads(f: Features) -> Counter[str]:
    """The key of the first content word after each negator: "isn't cold" -> cold."""
    out: Counter[str] = Counter()
    for i, w in enumerate(f.words):
        if w in LEX.negators:
            nxt = next(
                (v for v in f.words[i + 1 : i + 4] if v not in STOPWORDS and v not in LEX.negators), ""
            )
            if nxt:
                out[key(nxt)] += 1
    return out


def _negation_moved(a: Features, b: Features) -> bool:
    """The same words and as many negations, but another thing negated: "my freezer is working but the
    fridge isn't cold" / "my freezer isn't working but the fridge is cold", "fill but not drain" /
    "drain but not fill"."""
    if sorted(key(w) for w in a.content) != sorted(key(w) for w in b.content):
        return False
    ha, hb = _negated_heads(a), _negated_heads(b)
    return bool(ha) and sum(ha.values()) == sum(hb.values()) and ha != hb


_KNOWING = LEX.contexts["knowing"]


def _negation_across(a: Features, b: Features) -> bool:
    """The same thing negated on each side, but on the other side of a change: "convert a pectin jam
    recipe to a no-pectin one" / "convert a no-pectin jam recipe to use pectin"."""
    heads = _negated_heads(a)
    if not (a.transfers and b.transfers and heads) or heads != _negated_heads(b):
        return False

    def sides(f: Features) -> list[bool]:
        to = max(i for i, w in enumerate(f.words) if w in _TRANSFER)
        return sorted(i > to for i, w in enumerate(f.words) if w in LEX.negators)

    return sides(a) != sides(b)


def _knowing_denied(a: Features, b: Features) -> bool:
    """a says the asker does not know what b says the asker knows: "how to freestyle when I don't know
    the song" / "... when I know the song". Alone, a negation of knowing is the asker's state and
    changes no answer ("I never really understood X, can you explain it")."""
    denied_b = _denied(b)
    return any(w in b.words and w not in denied_b for w in _denied(a))


def _denied(f: Features) -> set[str]:
    """The knowing verbs f negates: "I don't know the song" -> know."""
    return {
        v
        for i in range(len(f.words))
        if not_knowing(f.words, i)
        for v in f.words[i + 1 : i + 4]
        if v in _KNOWING
    }


def _other_not_done(a: Features, b: Features) -> bool:
    """Both sides say the asker did not do something, but not the same thing, and what a says was not
    done b says was: "I didn't get the code" / "I got a code I didn't ask for"."""
    if not (a.not_done and b.not_done):
        return False
    done_b = {verb_key(w) for w in b.words}
    return any(v in done_b and v not in b.not_done for v in a.not_done)


# -- number --------------------------------------------------------------------------------------


def _soft_values(f: Features) -> set[float]:
    """Values of the weak number words of f, which count as quantities only before a unit: an ordinal
    ("Newton's second law") or "one" ("the one I bought"); and of its Roman numerals ("World War I")."""
    return {LEX.numbers[w] for w in f.words if w in LEX.weak_numbers} | set(f.romans)


_CURRENCY_SYMBOLS = "".join(
    sorted(re.escape(w) for w in (p.split(":")[0] for p in LEX.contexts["currency"]) if len(w) == 1)
)
_MONEY = re.compile(rf"[{_CURRENCY_SYMBOLS}]\s?(\d+(?:[.,]\d+)*)")


def _money(f: Features) -> set[float]:
    """The amounts f writes after a currency symbol: "a £20 discount" -> 20."""
    return {float(m.group(1).replace(",", "")) for m in _MONEY.finditer(f.raw)}


def _fused_elsewhere(mine: Features, other: Features) -> Counter[str]:
    """mine's bare numbers that the other side writes fused to the word next to them: "a 4 stroke
    outboard" / "a 4-stroke outboard" (a number hyphenated to a word is part of a name there), "cat 6"
    / "Cat6"."""
    bare = Counter(q[2] for q in mine.quantities if not q[1])
    if not bare:
        return bare
    theirs = set(other.words)
    fused = [n for n, w in itertools.pairwise(mine.words) if is_number(n) and n + w in theirs]
    fused += [n for w, n in itertools.pairwise(mine.words) if is_number(n) and w + n in theirs]  # "cat 6"
    # a number word: "three card poker" / "three-card poker" (read as "threecard")
    spelled = {q[0]: q[2] for q in mine.quantities if not q[1]}
    fused += [
        spelled[LEX.numbers[n]]
        for n, w in itertools.pairwise(mine.words)
        if n in LEX.numbers and n + w in theirs and LEX.numbers[n] in spelled
    ]
    return Counter(fused) & bare


def same_quantities(a: Features, b: Features) -> bool:
    """The same numbers: equal after unit conversion ("two weeks" = "14 days"), or equal as written
    with units that do not contradict ("at 18" = "18-year-old", but "7am" is not "7pm"); a bare number
    one side writes as a weak word on the other ("2nd law" / "second law") is the same number."""
    ca, cb = Counter(q[2] for q in a.quantities), Counter(q[2] for q in b.quantities)
    ca, cb = (
        ca - _same_period(a, b) - _fused_elsewhere(a, b),
        cb - _same_period(b, a) - _fused_elsewhere(b, a),
    )
    if _zero_for_no(a, b):
        ca -= Counter({"0": 1})
    if _zero_for_no(b, a):
        cb -= Counter({"0": 1})
    if ca == cb:
        return True
    bare = {q[2]: q[0] for q in (*a.quantities, *b.quantities) if not q[1]}
    only_a = [c for c in (ca - cb).elements() if bare.get(c) not in _soft_values(b)]
    only_b = [c for c in (cb - ca).elements() if bare.get(c) not in _soft_values(a)]
    if not (only_a or only_b):
        return True
    if len(a.quantities) != len(b.quantities):
        return False
    # a share against an amount of money is never the same number: "a 20% discount" / "a £20 discount"
    money_a, money_b = _money(a), _money(b)
    if any(
        (ua == "%" and vb in money_b) or (ub == "%" and va in money_a)
        for (va, ua, _), (vb, ub, _) in zip(a.quantities, b.quantities, strict=True)
    ):
        return False
    return all(
        va == vb
        and (
            ua == ub
            or (not ua and (_droppable(ub, b, a) or _spelled_unit(vb, ub, b, a)))
            or (not ub and (_droppable(ua, a, b) or _spelled_unit(va, ua, a, b)))
        )
        for (va, ua, _), (vb, ub, _) in zip(a.quantities, b.quantities, strict=True)
    )


def _spelled_unit(value: float, unit: str, mine: Features, other: Features) -> bool:
    """The other side writes the number with a word the fused letter abbreviates, a word mine does not
    have: "14k gold" / "14 karat gold" (but not "QuickFish 3i ice shelter" / "QuickFish 3 ice ...")."""
    bare = {written for v, u, written in other.quantities if v == value and not u}
    return any(
        n in bare and len(w) > len(unit) and w.startswith(unit) and w.isalpha() and w not in mine.words
        for n, w in itertools.pairwise(other.words)
    )


def _droppable(unit: str, f: Features, other: Features) -> bool:
    """A unit a bare number on the other side may leave unsaid ("at 18" / "18-year-old", "2kg" / "2").
    A suffix the unit table lacks, fused to the number, changes it ("500m" CPU is half a core, not
    500), unless the other side writes it apart ("401k" / "401(k)")."""
    if unit == "%":  # "the top 10 values" / "the top 10% of values": a share is no count
        return bool(_PERCENT_WORDS & set(other.words))
    fused = any(w.endswith(unit) and is_number(w[: -len(unit)]) for w in f.words)
    if unit == "s" and any(w in _AGE_BOUNDS and n[:1].isdigit() for w, n in itertools.pairwise(f.words)):
        return True  # "under-16s" / "under 16": the people of an age, not seconds
    return not fused or unit in LEX.units or unit in other.words


_AGE_BOUNDS = LEX.contexts["age-bound"]
_PERCENT_WORDS = LEX.contexts["percent"]


_START = LEX.contexts["start"]


def _counted(f: Features) -> set[tuple[str, str]]:
    """(number, key of the noun it counts): "3 chunks" -> ("3", chunk)."""
    return {(n, key(w)) for n, w in itertools.pairwise(f.words) if is_number(n)}


def _count_vs_size(a: Features, b: Features) -> bool:
    """The same number counting a noun on one side and sizing it on the other: "split a list into 3
    chunks" / "into chunks of 3", "3 batches" / "batches of 3"."""
    sized = {
        (n, key(w))
        for w, of, n in zip(b.words, b.words[1:], b.words[2:], strict=False)
        if of == "of" and is_number(n)
    }
    counted = _counted(a)
    return bool(counted & sized) and not counted & _counted(b)


_ZERO_LED = re.compile(r"(?<![\d.:/,])\b0\d+\b(?![.:/,]?\d)")


def _zero_led(a: Features, b: Features) -> bool:
    """A number a writes with a leading zero that b writes without: "cone 06" / "cone 6" (another
    cone), "size 00" / "size 0". Not a time or a date ("06:00" = "6:00")."""
    numbers_b = set(re.findall(r"(?<![\d.:/])\d+(?![.:/]?\d)", b.raw))
    return any((n.lstrip("0") or "0") in numbers_b and n not in numbers_b for n in _ZERO_LED.findall(a.raw))


def _first_period_as_start(a: Features, b: Features) -> bool:
    """a's only quantities are "the first day of ..." or "the first year of ...", b's none, and b says
    start or begin instead: "nervous about the first day of school" / "anxiety about starting school"."""
    if b.quantities or not a.quantities or not _START & set(b.words):
        return False
    firsts = {noun for noun, value in a.ordinals if value == 1.0}
    return bool(firsts) and all(q[0] == 1.0 and key(q[1]) in firsts for q in a.quantities)


def _after_how_many(f: Features) -> list[str]:
    """The word after each "how many" / "how much" of f ("" at the end of the text)."""
    w = [*f.words, ""]
    return [w[i + 2] for i in range(len(w) - 2) if w[i] == "how" and w[i + 1] in ("many", "much")]


def _per(f: Features) -> set[tuple[str, float]]:
    """The units a rate is per: the first unit or duration within two words after "per" ("per audio
    hour" -> hour)."""
    out = set()
    for i, w in enumerate(f.words):
        if w != "per":
            continue
        unit = next((LEX.units[n] for n in f.words[i + 1 : i + 3] if n in LEX.units), None)
        if unit is not None:
            out.add(unit)
    return out


def _asked_units(f: Features) -> set[tuple[str, float]]:
    """The units a "how many" / "how much" question counts in: "how many hours a week" -> hours."""
    return {LEX.units[w] for w in _after_how_many(f) if w in LEX.units and w not in LEX.ambiguous}


def _multiplied(f: Features) -> dict[str, float]:
    """The nouns f counts with a weak number word ("one", "half", "single", "double", "full", "whole"):
    "single crust" -> {crust: 1}."""
    return {
        key(n): _MULTIPLIERS[w]
        for w, n in itertools.pairwise(f.words)
        if w in _MULTIPLIERS and n not in STOPWORDS and n.isalpha()
    }


_MULTIPLIERS: dict[str, float] = {
    **{w: LEX.numbers[w] for w in LEX.contexts["multiplier"]},
    **dict.fromkeys(LEX.contexts["multiplier-whole"], 1.0),
}


def _unit_counts(f: Features) -> Counter[str]:
    """How often f names each of its units ("board feet in a cubic foot" -> ft twice), fused to its
    number or not ("15psi" as "15 psi")."""
    named = (fused[1] if (fused := fused_unit(w)) else w for w in f.words)
    return Counter(LEX.units[w][0] for w in named if w in LEX.units and LEX.units[w][0] in f.units)


_UNIT_KIND = LEX.contexts["unit-kind"]


def _unit_kind_added(a: Features, b: Features) -> bool:
    """a picks a kind of a unit that b names plainly: "grams in a troy ounce" / "grams in an ounce",
    "an imperial gallon" / "a gallon"."""
    kinds = {
        (k, LEX.units[u][0]) for k, u in itertools.pairwise(a.words) if k in _UNIT_KIND and u in LEX.units
    }
    return any(
        k not in b.words and any(LEX.units.get(w, ("",))[0] == unit for w in b.words) for k, unit in kinds
    )


def _fraction_added(times: dict[str, float], other: Features, times_other: dict[str, float]) -> bool:
    """One side takes a fraction of a thing ("a half rack of spare ribs"; ``times`` is its
    :func:`_multiplied`) that the other side names whole, with no multiplier ("a rack of spare ribs")."""
    return any(v < 1 and noun in other.keys and noun not in times_other for noun, v in times.items())


@rule("number")
def number(a: Features, b: Features) -> bool:
    """Other quantities, or other units (8 pounds / 8 kilograms, MB / MiB, MB / Mb, Celsius /
    Fahrenheit, square feet / square metres). A unit only one side names ("how many hours of sleep")
    is left to the qualifier check of ``scope``."""
    if not same_quantities(a, b) and not _both_ways(a, b, _first_period_as_start):
        return True
    if _both_ways(a, b, _zero_led):
        return True
    if _both_ways(a, b, _count_vs_size):
        return True
    if any(x != y and x.lower() == y.lower() for x in a.cased_units for y in b.cased_units):
        return True  # case tells the units apart: Mbps (megabits) / MBps (megabytes)
    ca, cb = _unit_counts(a), _unit_counts(b)
    if ca - cb and cb - ca:
        # one unit for another, counted so that a unit named twice on one side counts ("board feet in a
        # cubic meter" / "board feet in a cubic foot"); a unit on one side only is a qualifier
        return True
    if a.currencies and b.currencies and a.currencies != b.currencies:
        return True  # "$500,000" / "£500,000"
    if _both_ways(a, b, _unit_kind_added):
        return True
    asked_a, asked_b = _asked_units(a), _asked_units(b)
    if asked_a and asked_b and not asked_a & asked_b:
        return True  # "how many hours a week" / "how many days a week"
    per_a, per_b = _per(a), _per(b)
    if per_a and per_b and not per_a & per_b:
        return True  # "$1.25 per audio hour" / "$1.25 per audio minute"
    # one noun counted by another multiplier word: "a single-crust pie" / "a double-crust pie"
    times_a, times_b = _multiplied(a), _multiplied(b)
    if any(noun in times_b and times_b[noun] != value for noun, value in times_a.items()):
        return True
    if _fraction_added(times_a, b, times_b) or _fraction_added(times_b, a, times_a):
        return True  # "a rack of ribs" / "a half rack of ribs"
    # one noun numbered differently: "the first act" / "the second act", "First Amendment" / "Second"
    nth_b = dict(b.ordinals)
    return any(noun in nth_b and nth_b[noun] != value for noun, value in a.ordinals)


# -- date ----------------------------------------------------------------------------------------


_TIME_BEFORE, _TIME_AFTER = LEX.contexts["time-before"], LEX.contexts["time-after"]


def _anchors(f: Features, markers: frozenset[str]) -> set[str]:
    """The first content word or number after each marker: "before April 2024" -> april."""
    out = set()
    for i, w in enumerate(f.words):
        if w in markers:
            nxt = next((v for v in f.words[i + 1 : i + 4] if v not in STOPWORDS or is_number(v)), "")
            if nxt:
                out.add(key(nxt))
    return out


def _before_against_after(a: Features, b: Features) -> bool:
    """The same date with "before" on one side and "from" / "after" / "since" on the other."""
    return bool(_anchors(a, _TIME_BEFORE) & _anchors(b, _TIME_AFTER) - _anchors(b, _TIME_BEFORE))


_PAST_HABIT, _STILL_NOW = LEX.contexts["past-habit"], LEX.contexts["still-now"]


def _past_habit(a: Features, b: Features) -> bool:
    """a asks what was done once ("did parkrun use to show course records"), b whether it is still done
    ("does parkrun still show course records"): the same verb, two times."""
    w = a.words
    verbs = {key(w[i + 2]) for i in range(len(w) - 2) if w[i] in _PAST_HABIT and w[i + 1] == "to"}
    return bool(verbs & set(b.keys)) and not _PAST_HABIT & set(b.words) and bool(_STILL_NOW & set(b.words))


_AT_FIRST, _AT_PRESENT = LEX.contexts["at-first"], LEX.contexts["at-present"]


def _first_against_present(a: Features, b: Features) -> bool:
    """a asks what a thing was at first ("what name was pothos originally described under"), b what it
    is now ("what's the current name for pothos"); a question that names both times asks both."""
    wa, wb = set(a.words), set(b.words)
    return bool(wa & _AT_FIRST and wb & _AT_PRESENT and not wa & _AT_PRESENT and not wb & _AT_FIRST)


@rule("date")
def date(a: Features, b: Features) -> bool:
    """Other dates (weekdays, months used as dates, relative days, seasons) or another period ("this
    month" / "this year"). A month that is a modal or a verb ("May I", "fall back") is no date, and a
    time one side names another way is the same time ("in one evening" / "on the same night")."""
    if set(a.times) - named_times(b) or set(b.times) - named_times(a):
        return True
    if _both_ways(a, b, _before_against_after):
        return True  # "before April 2024" / "from April 2024"
    if _both_ways(a, b, _past_habit):
        return True  # "did it use to show records" / "does it still show records"
    if _both_ways(a, b, _first_against_present):
        return True  # "the name it was originally given" / "its current name"
    return bool(a.periods and b.periods and set(a.periods) != set(b.periods))


# -- direction -----------------------------------------------------------------------------------


def _order_flip(a: Features, b: Features) -> bool:
    """Two names in swapped order around a direction word: "Word to PDF" / "PDF to Word"."""
    directional = {"to", "into", "from", "for", "over", "onto", "vs", "versus"}
    if not (directional & set(a.words) and directional & set(b.words)):
        return False
    shared = [e for e in a.entities if e in b.entities]

    def pos(f: Features, e: str) -> int:
        first = re.split(r"[-./ ]+", e)[0]
        return f.words.index(first) if first in f.words else -1

    def between(f: Features, i: int, j: int) -> set[str]:
        return set(f.words[min(i, j) + 1 : max(i, j)])

    def same_way(x: str, y: str) -> bool:
        """Both sides move between x and y the same way, only written in another order: "get to Val
        Thorens from Geneva" / "from Geneva to Val Thorens"."""
        kx, ky = key(re.split(r"[-./ ]+", x)[0]), key(re.split(r"[-./ ]+", y)[0])
        return any(
            ({kx, ky} <= (src | dst)) and not {kx, ky} <= src and not {kx, ky} <= dst
            for src, dst in set(a.transfer_sides) & set(b.transfer_sides)
        )

    for i, x in enumerate(shared):
        for y in shared[i + 1 :]:
            ax, ay, bx, by = pos(a, x), pos(a, y), pos(b, x), pos(b, y)
            # the direction word joins the two names on one side at least ("PLA to PETG"); a "for"
            # elsewhere ("PLA and PETG for parts") gives them no roles
            swapped = min(ax, ay, bx, by) >= 0 and (ax < ay) != (bx < by)
            if swapped and directional & (between(a, ax, ay) | between(b, bx, by)) and not same_way(x, y):
                return True
    return False


def _source_becomes_target(a: Features, b: Features) -> bool:
    """ "from savings to current" / "from current to savings": a's source is b's target only."""
    return any(s in b.targets and s not in b.sources for s in a.sources)


def _transfer_flip(a: Features, b: Features) -> bool:
    """ "convert a date to a timestamp" / "convert a timestamp to a date"."""
    ta, tb = set(a.transfers), set(b.transfers)
    return any((y, x) in tb and (x, y) not in tb for x, y in ta if x != y)


def _sides_flip(a: Features, b: Features) -> bool:
    """Words moved across "to"/"into"/"onto": "transfer a digital drawing onto a real canvas" /
    "transfer a real canvas painting into a digital file". A word on the same side of both stays. What
    comes back may stand further on than the phrase after the "into": "turn a fresh salsa recipe into
    one that's safe for canning" / "turn a canning salsa recipe into a fresh salsa"."""
    # only for one "into" a side, with no "from" read backwards
    one = len(a.transfer_sides) == len(b.transfer_sides) == 1 and "from" not in a.words + b.words
    late_a = set(a.keys) - _before_transfer(a) if one else set()
    for before_a, after_a in a.transfer_sides:
        for before_b, after_b in b.transfer_sides:
            there = (before_a & after_b) - before_b
            back = (after_a & before_b) - after_b
            if there and (back or (before_b - before_a - after_b) & late_a - before_a):
                return True
    return False


def _target_moved(a: Features, b: Features) -> bool:
    """Each side's one destination stands before the other's "to": "convert 0600 Zulu to local time in
    Chicago in winter" / "convert 0600 local Chicago time in winter to Zulu"."""
    if len(a.targets) != 1 or len(b.targets) != 1 or a.targets == b.targets:
        return False
    return a.targets[0] in _before_transfer(b) and b.targets[0] in _before_transfer(a)


def _before_transfer(f: Features) -> set[str]:
    """The keys of f's words before its first "to"/"into"/"onto"."""
    i = next((i for i, w in enumerate(f.words) if w in _TRANSFER), len(f.words))
    return set(f.keys[:i])


def _owner_swap(a: Features, b: Features) -> bool:
    """The asker's thing on one side, someone else's on the other, and that someone named on both:
    "a supplier's damages claim against us" / "our damages claim against a supplier"."""
    mine_b = {n for o, n in b.owners if o == "asker"}
    owners_b = {o for o, _ in b.owners}
    for owner, noun in a.owners:
        if owner == "asker" or (owner in mine_b and not (someone(owner) and owner in owners_b)):
            continue  # "the router's admin page" / "my router admin page": the owner is the asker's;
            # but "my neighbor's gutter ... my yard" / "my gutter ... my neighbor's yard" swaps them
        if noun in mine_b and owner in b.keys and (owner, noun) not in b.owners:
            return True
    return False


def _to_asker(a: Features, b: Features) -> bool:
    """b's asker is given something ("accept tickets a friend transferred to me") where a's asker gives
    to another person ("transfer my tickets to a friend"), or to what gives on b's side ("lend money to
    my company" / "my company lending money to me")."""
    return _given_to_me(b) and not _given_to_me(a) and any(someone(t) or t in b.keys for t in a.targets)


def _given_to_me(f: Features) -> bool:
    return ("to", "me") in itertools.pairwise(f.words)


_REFLEXIVE_OTHER = LEX.contexts["reflexive-other"]
_REFLEXIVE = _REFLEXIVE_OTHER | LEX.contexts["reflexive"]


def _reflexive_swap(a: Features, b: Features) -> bool:
    """The asker does something to someone in a ("How should I introduce the keynote speaker?"), and
    that someone does it to themselves in b ("How should a keynote speaker introduce themselves?")."""
    if _REFLEXIVE & set(a.words) or not _ASKER & set(a.words):
        return False
    return any(
        w in _REFLEXIVE_OTHER and i and b.words[i - 1] not in STOPWORDS and key(b.words[i - 1]) in a.keys
        for i, w in enumerate(b.words)
    )


def _comparison_flip(a: Features, b: Features) -> bool:
    """Opposite ends of one comparison scale: "the fastest" / "the slowest", "most recent" / "oldest"."""
    ends_a: dict[str, set[int]] = {}
    ends_b: dict[str, set[int]] = {}
    for s, e in a.scales:
        ends_a.setdefault(s, set()).add(e)
    for s, e in b.scales:
        ends_b.setdefault(s, set()).add(e)
    return any(len(ea) == 1 and ends_b.get(s, ea) == {-e for e in ea} for s, ea in ends_a.items())


def _reordered(ka: list[str], kb: list[str]) -> bool:
    """The same words in another order."""
    return ka != kb and sorted(ka) == sorted(kb)


def _swapped_blocks(ka: list[str], kb: list[str]) -> tuple[list[str], list[str]] | None:
    """Where kb is ka with two blocks of words swapped ("X then M then Y" / "Y then M then X"), the
    two blocks in ka's order; None otherwise."""
    if not _reordered(ka, kb):
        return None
    lo = next(i for i, (x, y) in enumerate(zip(ka, kb, strict=True)) if x != y)
    hi = len(ka) - next(i for i, (x, y) in enumerate(zip(ka[::-1], kb[::-1], strict=True)) if x != y)
    wa, wb = ka[lo:hi], kb[lo:hi]
    for lx in range(1, len(wa)):
        for ly in range(1, len(wa) - lx + 1):
            x, y, mid = wa[:lx], wa[len(wa) - ly :], wa[lx : len(wa) - ly]
            if wb == y + mid + x:
                return x, y
    return None


_PLACE_KEY = {w: min(group) for group in LEX.places for w in group}


def _place_key(w: str) -> str:
    """The key of a word, one for every name of a place ("Australia" = "Australian": places.txt)."""
    return _PLACE_KEY.get(w) or key(w)


def _role_swap(a: Features, b: Features) -> bool:
    """The same content words with two of them, or two phrases, swapped around the same frame, when the
    frame gives them roles: "replace butter with oil" / "replace oil with butter", "replace a gas stove
    with an induction hob" / "replace an induction hob with a gas stove", "a landlord sue a tenant" /
    "a tenant sue a landlord", "my UK licence in Australia" / "my Australian licence in the UK" (a place
    by any of its names). A frame of joiners only ("a hub and a switch") keeps the question."""
    # an intensifier on one side only changes no role: "download so much faster than upload"
    ka = [_place_key(w) for w in a.content if w not in _INTENSIFIERS]
    kb = [_place_key(w) for w in b.content if w not in _INTENSIFIERS]
    swap = _swapped_blocks(ka, kb)
    if swap is None:
        return False
    x, y = swap

    def frame(f: Features, first: str, second: str) -> list[str] | None:
        """The words between the nearest first ... second (a word may also occur in a sentence of
        context before the question)."""
        keys = [_place_key(w) for w in f.words]
        spans = [
            (j - i, i, j)
            for i, k in enumerate(keys)
            if k == first
            for j in range(i + 1, len(keys))
            if keys[j] == second
        ]
        if not spans:
            return None
        _, i, j = min(spans)
        # articles do not count: "fire a contractor" = "fire an employer"
        return [w for w in f.words[i + 1 : j] if w not in ("a", "an", "the") and w not in _INTENSIFIERS]

    fa, fb = frame(a, x[-1], y[0]), frame(b, y[-1], x[0])
    if fa is None or fb is None:
        return False
    if _QUESTION_WORDS & {*fa, *fb}:
        return False  # one of them in a sentence of context: "my toddler may have an ear infection, what
        # are the signs?" / "what are the signs of an ear infection in a toddler"
    if fa != fb and fa[-1:] != fb[-1:] and set(fa[-1:] + fb[-1:]) <= ADJUNCT:
        # each block keeps its own preposition: "more awake at night than in the morning" / "... in
        # the morning than at night"
        fa, fb = fa[:-1], fb[:-1]
    if fa != fb:  # "the disease given a positive test" / "a positive test given I have the disease"
        fa, fb = [w for w in fa if w not in STOPWORDS], [w for w in fb if w not in STOPWORDS]
    return bool(fa) and fa == fb and bool(set(fa) - _JOINERS)


_OTHER_OWNER = LEX.contexts["other-owner"]


def _determiner_swap(a: Features, b: Features) -> bool:
    """The same words with the asker's "my" and another determiner swapped: "Does pet insurance cover
    my dog injuring another dog?" / "... another dog injuring my dog?"."""
    swap = _swapped_blocks(list(a.words), list(b.words))
    if swap is None or len(swap[0]) != 1 or len(swap[1]) != 1:
        return False
    pair = {swap[0][0], swap[1][0]}
    return bool(pair & ASKER_OWNS and pair & _OTHER_OWNER)


def _subject_object_swap(a: Features, b: Features) -> bool:
    """ "Who influenced Debussy?" / "Who did Debussy influence?": the same words, but an auxiliary
    after the question word makes the name the subject on one side only."""
    # the question may follow a shared heading: "rock paper scissors: what does rock beat"
    qa = next((i for i, w in enumerate(a.words) if w in _QUESTION_WORDS), None)
    qb = next((i for i, w in enumerate(b.words) if w in _QUESTION_WORDS), None)
    if qa is None or qb is None or a.words[:qa] != b.words[:qb]:
        return False
    if not _reordered([key(w) for w in a.content], [key(w) for w in b.content]):
        return False
    aux_a = len(a.words) > qa + 1 and a.words[qa + 1] in _QUESTION_AUX
    aux_b = len(b.words) > qb + 1 and b.words[qb + 1] in _QUESTION_AUX
    return aux_a != aux_b


_QUESTION_WORDS, _QUESTION_AUX = LEX.contexts["question-word"], LEX.contexts["question-aux"]
_WHAT, _POLAR = LEX.contexts["what"], LEX.contexts["polar"]
_REQUEST_MODALS = frozenset({"can", "could", "would", "will"})
_TRANSFER = LEX.contexts["transfer"]
_JOINERS = LEX.contexts["joiner"]
_INTENSIFIERS = LEX.contexts["intensifier"]
_OBJECT_FORM = {"i": "me", "we": "us", "he": "him", "they": "them"}


_BE = LEX.contexts["passive"]


def _verbs_after(f: Features, subject: str) -> set[str]:
    """Keys of the first content word within three words after each ``subject`` ("I owe", "I have to
    pay"), unless the verb is passive ("may I be asked", "am I owed"): then the subject is its object."""
    out = set()
    for i, w in enumerate(f.words):
        if w != subject:
            continue
        j = next((j for j in range(i + 1, min(i + 4, len(f.words))) if f.words[j] not in STOPWORDS), None)
        if j is not None and not _BE & {*f.words[max(0, i - 2) : i], *f.words[i + 1 : j]}:
            out.add(key(f.words[j]))
    return out


_OBJECT_PREPOSITIONS = LEX.contexts["object-preposition"]


def _verbs_before(f: Features, obj: str) -> set[str]:
    """Keys of the word before each ``obj``, and of the verb before a preposition there: "swims towards
    me" -> swim."""
    out = set()
    for i, w in enumerate(f.words):
        if i and w == obj:
            out.add(key(f.words[i - 1]))
            if i > 1 and f.words[i - 1] in _OBJECT_PREPOSITIONS:
                out.add(key(f.words[i - 2]))
    return out


def _pronoun_role_swap(a: Features, b: Features) -> bool:
    """The same verb with a pronoun as its subject on one side and as its object on the other: "Do I
    owe my ex child support?" / "Does my ex owe me child support?", "Can I claim my parents?" / "Can
    my parents claim me?"."""
    for subject, obj in _OBJECT_FORM.items():
        if subject not in a.words or obj not in b.words:
            continue
        done_by = _verbs_after(a, subject) - _verbs_after(b, subject)
        done_to = _verbs_before(b, obj) - _verbs_before(a, obj)
        if done_by & done_to:
            return True
    return False


_ASKER = frozenset({"i", "we"})
_BENEFICIARY = LEX.contexts["beneficiary"]
_POSSESSIVE = LEX.contexts["possessive"]
_BODY_PART = LEX.contexts["body-part"]


def _doers(f: Features, verb: str) -> set[str]:
    """Who does ``verb``: a pronoun right before it ("I bought"), or someone of the asker's right
    before it ("my roommate bought"; not "mouth pipetting", "oil change", "my eq settings": a word
    that can only be a noun does nothing, nor does an -ing word ending the phrase: "my tempo setting")."""
    out = set()
    for i, k in enumerate(f.keys):
        if not i or k != verb:
            continue
        w, nxt = f.words[i], f.words[i + 1] if i + 1 < len(f.words) else ""
        gerund = w.endswith("ing") and (not nxt or nxt in STOPWORDS)
        if f.words[i - 1] in _ASKER or (
            i > 1 and f.words[i - 2] in _POSSESSIVE and can_be_verb(w) and not gerund
        ):
            out.add(f.words[i - 1])
    return out


def _for_someone(f: Features, w: str) -> bool:
    """``w`` is who something is for, with or to ("a case for my daughter", "lend it to my brother")."""
    for i, x in enumerate(f.words):
        if x == w:
            j = i - 1 if i and f.words[i - 1] in _POSSESSIVE else i
            if j and f.words[j - 1] in _BENEFICIARY:
                return True
    return False


def _helped_asker(f: Features) -> bool:
    """The asker is who something is for, with or to: "moves in with me", "lends it to us"."""
    return any(x in _BENEFICIARY and y in ("me", "us") for x, y in itertools.pairwise(f.words))


def _asker_swap(a: Features, b: Features) -> bool:
    """The asker does something on one side, and someone both sides name does it on the other: "I
    bought the router my roommate and I share" / "My roommate bought the router we share". Who paid
    decides who owes whom. Someone the thing is for ("a case for my daughter" / "my daughter needs a
    case") is not a swap."""
    for verb in set(a.keys) & set(b.keys):
        if not verb.isalpha() or verb in STOPWORDS:
            continue
        by_a, by_b = _doers(a, verb), _doers(b, verb)
        if not by_a & _ASKER or by_b & _ASKER:
            continue
        # "a case for my daughter" / "my daughter needs a case" is no swap, but "I move in with my
        # partner" / "my partner moves in with me" is: the asker took the other's place
        others = {
            w for w in by_b - STOPWORDS if w in a.words and (_helped_asker(b) or not _for_someone(a, w))
        }
        if others - by_a:
            return True
    return False


_CONDITION = LEX.contexts["condition"]


def _condition_doers(f: Features) -> dict[str, str]:
    """Who does the verb of each condition clause: "if i cancel" -> {cancel: i}, "if the artist
    cancels" -> {cancel: artist}."""
    out: dict[str, str] = {}
    w = f.words
    for i, x in enumerate(w[:-2]):
        if x not in _CONDITION:
            continue
        if w[i + 1] in _ASKER:
            out[verb_key(w[i + 2])] = "i"
        elif (
            (w[i + 1] in _ARTICLES or w[i + 1] in _POSSESSIVE)
            and i + 3 < len(w)
            and w[i + 2] not in STOPWORDS
        ):
            out[verb_key(w[i + 3])] = w[i + 2]
    return out


def _condition_doer_swap(a: Features, b: Features) -> bool:
    """The same condition done by the asker on one side and by someone else on the other: "do I lose
    my deposit if I cancel" / "... if the artist cancels"."""
    da, db = _condition_doers(a), _condition_doers(b)
    return any(da[v] == "i" and db[v] != "i" and can_be_verb(v) for v in da.keys() & db.keys())


def _adjacent_swap(a: Features, b: Features) -> bool:
    """The same words with two of them swapped: two neighbouring content words ("feed my dog cat food" /
    "feed my cat dog food"), or two further apart where one is a content word or a negator ("can a
    creature without wings catch a creature with wings" / "... with wings catch a creature without
    wings"), a word or two on one side only left out. Two words joined by "and" / "or" (and articles)
    swap and keep the question."""
    wa, wb = a.words, b.words
    if len(wa) != len(wb) or sum(x != y for x, y in zip(wa, wb, strict=True)) != 2:
        # a word or two on one side only, the rest the same words: "alpine ski boots in touring
        # bindings" / "touring boots in alpine bindings", "how do shops choose which brands to stock"
        # / "how do brands choose which shops to supply"
        only_a, only_b = set(wa) - set(wb), set(wb) - set(wa)
        if len(only_a) > 2 or len(only_b) > 2:
            return False
        wa, wb = tuple(w for w in wa if w not in only_a), tuple(w for w in wb if w not in only_b)
    if len(wa) != len(wb) or wa == wb:
        return False
    diff = [i for i, (x, y) in enumerate(zip(wa, wb, strict=True)) if x != y]
    if len(diff) != 2:
        return False
    i, j = diff
    if not (wa[i] == wb[j] and wa[j] == wb[i]):
        return False
    if j == i + 1:
        return wa[i] not in STOPWORDS and wa[j] not in STOPWORDS
    if all(w in _JOINERS for w in wa[i + 1 : j]):
        return False
    return any(w not in STOPWORDS or w in LEX.negators for w in (wa[i], wa[j]))


def _lemma_swap(a: Features, b: Features) -> bool:
    """Two words swapped by their verbs, each in the other's form: "dehydrate frozen fruit" / "freeze
    dehydrated fruit", "smoke cured ham" / "cure smoked ham", "round a flat-backed book" / "flatten a
    round-backed book" (an article between them)."""
    if len(a.words) != len(b.words):
        return False
    diff = [i for i, (x, y) in enumerate(zip(a.words, b.words, strict=True)) if x != y]
    if len(diff) != 2 or diff[1] - diff[0] > 2:
        return False
    i, j = diff
    if any(w in STOPWORDS for w in (a.words[i], a.words[j], b.words[i], b.words[j])):
        return False
    if any(w not in _ARTICLES for w in a.words[i + 1 : j]):
        return False  # "rent or buy" / "buy or rent" names the same two choices
    ka, kb = [verb_key(a.words[k]) for k in diff], [verb_key(b.words[k]) for k in diff]
    return ka[0] != ka[1] and all(x == y or _similar_word(x, y) for x, y in zip(ka, kb[::-1], strict=True))


def _passive_flip(a: Features, b: Features) -> bool:
    """The same verb between the same two things, active on a's side and passive with "by" on b's: "A
    holding B" / "A held by B" (A holds B against B holds A)."""
    active = {
        (x, verb_key(v), y)
        for x, v, y in zip(a.words, a.words[1:], a.words[2:], strict=False)
        if y != "by" and v not in STOPWORDS and can_be_verb(v)
    }
    return any(
        by == "by" and (x, verb_key(v), y) in active
        for x, v, by, y in zip(b.words, b.words[1:], b.words[2:], b.words[3:], strict=False)
    )


def _away_from(a: Features, b: Features) -> bool:
    """b turns away from what a turns to, with the same verb: "practice facing the mirror" / "practice
    facing away from the mirror"."""
    for i in range(1, len(b.words) - 2):
        if b.words[i] != "away" or b.words[i + 1] != "from":
            continue
        verb, thing = b.words[i - 1], noun_after(b.words, i + 1)
        for j, w in enumerate(a.words[:-1]):
            if w == verb and noun_after(a.words, j) == thing and "away" not in a.words:
                return True
    return False


def _role_collapsed(a: Features, b: Features) -> bool:
    """One word of a replaced by another word a already has, everything else the same: the doer or the
    thing changed to one the question names elsewhere. "when lending a painting to a gallery, what
    does the lender pay" / "..., what does the gallery pay"."""
    wa, wb = a.words, b.words
    if len(wa) != len(wb):
        return False
    diff = [i for i, (x, y) in enumerate(zip(wa, wb, strict=True)) if x != y]
    if len(diff) != 1:
        return False
    x, y = wa[diff[0]], wb[diff[0]]
    if x in STOPWORDS or y in STOPWORDS or _similar_word(x, y):
        return False
    return y in wa and x not in wb


@rule("direction")
def direction(a: Features, b: Features) -> bool:
    """The same things in the other direction (from savings to current / from current to savings; a
    date to a timestamp / a timestamp to a date; butter for oil / oil for butter; to a friend / to me),
    or the other end of a comparison (faster/slower)."""
    return (
        _both_ways(a, b, _source_becomes_target)
        or _order_flip(a, b)
        or _role_swap(a, b)
        or _determiner_swap(a, b)
        or _subject_object_swap(a, b)
        or _both_ways(a, b, _pronoun_role_swap)
        or _both_ways(a, b, _asker_swap)
        or _both_ways(a, b, _transfer_flip)
        or _both_ways(a, b, _sides_flip)
        or _target_moved(a, b)
        or _both_ways(a, b, _owner_swap)
        or _both_ways(a, b, _to_asker)
        or _both_ways(a, b, _reflexive_swap)
        or _both_ways(a, b, _comparison_flip)
        or _adjacent_swap(a, b)
        or _lemma_swap(a, b)
        or _both_ways(a, b, _passive_flip)
        or _both_ways(a, b, _away_from)
        or _both_ways(a, b, _role_collapsed)
        or _excess_flipped(a, b)
        or _both_ways(a, b, _condition_doer_swap)
        or _cause_swapped(a, b)
    )


_DOING_AUX = LEX.contexts["doing-aux"]


def _subject_first(f: Features) -> bool:
    """f opens with an auxiliary of doing and its subject ("can tattoos ...", "does the sun ..."), the
    subject its first content word."""
    w = [x for x in f.words if x not in _ARTICLES]
    return len(w) > 2 and w[0] in _DOING_AUX and bool(f.content) and w[1] == f.content[0]


def _cause_swapped(a: Features, b: Features) -> bool:
    """Two things swapped around another verb: what one does to the other against what the other does
    to it ("can tattoos cause eczema" / "can eczema damage a tattoo", "can stretch marks ruin a tattoo"
    / "can a tattoo hide stretch marks"). A passive ("... be triggered by tattoos") or a verb with "from"
    ("can hair loss result from stress") keeps the question."""
    if {"by", "from"} & {*a.words, *b.words}:
        return False  # "be triggered by", "result from": the verb turns the roles round itself
    if not (_subject_first(a) and _subject_first(b)):
        return False  # "can cats eat tuna" / "is tuna okay to feed my cat": no doer on the other side
    ka, kb = [_place_key(w) for w in a.content], [_place_key(w) for w in b.content]
    for i in range(1, len(ka) - 1):
        x = ka[:i]
        if kb[-i:] != x:
            continue
        for j in range(1, len(ka) - i):
            y, mid_a = ka[-j:], ka[i:-j]
            mid_b = kb[j:-i]
            if kb[:j] == y and x != y and 0 < len(mid_a) <= 2 and 0 < len(mid_b) <= 2 and mid_a != mid_b:
                return True
    return False


_EXCESS = LEX.contexts["excess"]


def _opposite(x: str, y: str) -> bool:
    """Antonyms, or the two ends of one scale ("warm" / "cold")."""
    sx, sy = LEX.scales.get(x), LEX.scales.get(y)
    if sx and sy and sx[0] == sy[0] and sx[1] != sy[1]:
        return True
    return any((x in left and y in right) or (x in right and y in left) for left, right in LEX.antonyms)


def _excess_flipped(a: Features, b: Features) -> bool:
    """Opposite states after "too": "how to cool down a pool that's too warm" / "how to warm up a pool
    that's too cold". Each side names both ends (the remedy names the other one), so the antonym check
    of ``negation``, which wants each end on one side only, cannot tell them apart."""
    too_a = {w for x, w in itertools.pairwise(a.words) if x in _EXCESS}
    too_b = {w for x, w in itertools.pairwise(b.words) if x in _EXCESS}
    return any(_opposite(x, y) for x in too_a for y in too_b)


# -- entity --------------------------------------------------------------------------------------

_DIGITS = {w: str(int(v)) for w, v in LEX.numbers.items() if 1 <= v < 10 and v == int(v)}


def _spelled_out_spans(acronym: str, words: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The runs of words that write an acronym out: "2FA" -> ("two", "factor", "authentication")."""
    n = len(acronym)
    if not 2 <= n <= 6 or not acronym.isalnum():
        return []
    initials = [_DIGITS.get(w, w[:1]) for w in words]
    return [words[i : i + n] for i in range(len(initials) - n + 1) if "".join(initials[i : i + n]) == acronym]


def _spelled_out(acronym: str, words: tuple[str, ...]) -> bool:
    """An acronym written out: "2FA" = "two-factor authentication", "GP" = "general practitioner"."""
    return bool(_spelled_out_spans(acronym, words))


def _shortened(abbr: str, words: Iterable[str]) -> bool:
    """A short form of one long word: its first letter, then its other letters in order ("EQ" =
    "equalizer", "DB" = "database", "pw" = "password"); a word at least twice as long."""
    if not (2 <= len(abbr) <= 4 and abbr.isalpha()):
        return False
    letters = re.compile(".*".join(abbr))
    return any(w[0] == abbr[0] and len(w) >= 2 * len(abbr) + 2 and letters.match(w) for w in words)


_NUMERONYM = re.compile(r"([a-z])(\d{1,2})([a-z])")


def _numeronym(entity: str, words: set[str]) -> bool:
    """ "k8s" = "kubernetes", "i18n" = "internationalisation": first letter, count, last letter."""
    m = _NUMERONYM.fullmatch(entity)
    if not m:
        return False
    first, count, last = m.group(1), int(m.group(2)), m.group(3)
    return any(len(w) == count + 2 and w[0] == first and w[-1] == last for w in words)


def _acronym_words(f: Features, other: Features) -> set[str]:
    """The words of f that the other side's acronyms shorten: "Family Tree Maker" against "FTM"."""
    return {w for o in other.entities for span in _spelled_out_spans(o, f.spelled) for w in span}


_ROMAN_NUMERALS = ("i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x")


def _roman_for_number(entity: str) -> set[str]:
    """A name ending in a number from 1 to 10, written with a Roman numeral instead: "ww1" -> wwi."""
    m = re.fullmatch(r"([a-z]+)(\d+)", entity)
    if not m or not 1 <= int(m.group(2)) <= len(_ROMAN_NUMERALS):
        return set()
    return {m.group(1) + _ROMAN_NUMERALS[int(m.group(2)) - 1]}


def _entity_present(entity: str, other: Features) -> bool:
    # Stricter than a typo match of ordinary words: Austria is not Australia.
    words = set(other.words) | set(other.keys) | set(other.entities)
    if _spelled_out(entity, other.spelled) or _numeronym(entity, words) or _shortened(entity, other.words):
        return True
    if any(_numeronym(o, {entity}) for o in other.entities):
        return True
    if any(entity in group and group & words for group in LEX.places):
        return True  # "England" / "English", "the UK" / "Britain"
    if any(x + y == entity for x, y in itertools.pairwise(other.words)):
        return True  # written apart: "4-stroke" / "4 stroke", "WiFi" / "wi fi"
    if any(w.startswith(entity) and w[len(entity) :].isdigit() for w in other.entities):
        return True  # the name's number glued on there: "WD-40" (wd, 40) / "wd40"
    if _roman_for_number(entity) & words or any(entity in _roman_for_number(o) for o in other.entities):
        return True  # "WW1" / "WWI"
    parts = [p for p in re.split(r"[-./ ]+", entity) if p]
    return all(
        p in words
        or key(p) in words
        or any(len(p) >= 6 and SequenceMatcher(None, p, w).ratio() >= 0.9 for w in words)
        for p in parts
    )


def _qualifies_shared(entity: str, f: Features, other: Features) -> bool:
    """The name, a word, stands right before a name both sides give: the maker of a product
    ("Microsoft Word" / "Word", "Google Sheets" / "Sheets"); "2048-bit RSA" / "4096-bit RSA" is a
    version."""
    return entity.isalpha() and any(
        w == entity and nxt in f.entities and _entity_present(nxt, other)
        for w, nxt in itertools.pairwise(f.words)
    )


_VARIANT = LEX.contexts["variant"]


def _variant_named(a: Features, b: Features) -> bool:
    """a picks a variant of a thing b names plainly: "an improved clinch knot" / "a clinch knot"."""
    return any(
        v in _VARIANT and v not in b.words and key(n) in b.keys and n not in STOPWORDS
        for v, n in itertools.pairwise(a.words)
    )


_FIRST_VERSION = LEX.contexts["first-version"]


def _first_against_version(a: Features, b: Features) -> bool:
    """a asks about the first version of a thing ("the original grainfather") that b names with a
    version a lacks ("the grainfather G30 v3"). Without a version on the other side "original" only
    describes ("reset to its original settings" / "reset its settings")."""
    first = any(
        v in _FIRST_VERSION and key(n) in b.keys and n not in STOPWORDS
        for v, n in itertools.pairwise(a.words)
    )
    return first and any(any(c.isdigit() for c in e) and not _entity_present(e, a) for e in b.entities)


_NEWEST, _BEFORE_NEWEST = LEX.contexts["newest"], LEX.contexts["before-newest"]


def _newest_against_before(a: Features, b: Features) -> bool:
    """a asks about the newest version of a thing, b about one before it: "what changed in the latest
    edition" / "... in the previous edition"."""
    newest = {key(n) for v, n in itertools.pairwise(a.words) if v in _NEWEST and n not in STOPWORDS}
    return any(v in _BEFORE_NEWEST and key(n) in newest for v, n in itertools.pairwise(b.words))


@rule("entity")
def entity(a: Features, b: Features) -> bool:
    """A name on one side (a proper noun, an acronym, a versioned token such as v2 or 7B) that the
    other side does not have, compared without case, possessive or plural (GPU's = GPUs = gpu); a
    maker's name before a product both name is no other name ("Microsoft Word" / "Word"); a word that
    picks a variant ("improved", "legacy") before a thing both name is another thing, and so is "the
    original" one against a version ("the original grainfather" / "the grainfather G30 v3")."""
    if _both_ways(a, b, _variant_named) or _both_ways(a, b, _first_against_version):
        return True
    if _both_ways(a, b, _newest_against_before):
        return True
    missing_b = [e for e in a.entities if not _entity_present(e, b)]
    missing_a = [e for e in b.entities if not _entity_present(e, a)]
    if missing_b and b.entities:  # words an acronym of the other side shortens: "Family Tree Maker" / "FTM"
        missing_b = [e for e in missing_b if e not in _acronym_words(a, b)]
    if missing_a and a.entities:
        missing_a = [e for e in missing_a if e not in _acronym_words(b, a)]
    # a maker named on one side only; a maker on each side is another product ("Google Maps" / "Apple Maps")
    if not missing_a and all(_qualifies_shared(e, a, b) for e in missing_b):
        missing_b = []
    if not missing_b and all(_qualifies_shared(e, b, a) for e in missing_a):
        missing_a = []
    # a name added to a question that names nothing else ("scale a deployment" / "... in k8s") is
    # context; a name swapped or added next to another name is another question
    return bool(missing_a and (missing_b or a.entities)) or bool(missing_b and (missing_a or b.entities))


# -- scope ---------------------------------------------------------------------------------------


def _quantifier_conflict(a: Features, b: Features) -> bool:
    """a: the whole set (or several of it), b: one member. "all pods" / "a pod", "every account" / "my
    account", "the whole booking" / "one leg of it", "several sensors" / "one sensor"."""
    universal_b = {n for c, n in b.quantified if c == "universal"}
    # a set both quantify alike is no conflict: "on each line" / "on each line"
    universal_a = {n for c, n in a.quantified if c == "universal"} - universal_b
    several_a = {n for c, n in a.quantified if c == "several"}
    single_b = any(c == "single" for c, _ in b.quantified)
    if several_a & set(b.keys) and single_b and not any(c == "several" for c, _ in b.quantified):
        return True  # "one sensor" / "several sensors"
    if not universal_a or (universal_b and not universal_a & {n for c, n in b.quantified if c == "single"}):
        return False  # another set quantified on both sides, unless a's set is one member on b's
    if "" in universal_a and b.quantified:
        return True  # "a file" / "a directory and everything in it"
    singles_b = {n for c, n in b.quantified if c in ("single", "article")}
    if any(c == "single" for c, _ in b.quantified) or universal_a & singles_b:
        return True
    # the noun itself in the singular on the other side, with no quantifier ("my checking account")
    singular_b = {key(w) for w in b.words if not w.endswith("s")}
    return bool(universal_a & singular_b - {""})


def _positives(superlative: str) -> set[str]:
    """The plain forms a superlative may come from: biggest -> big, best -> good or well, from
    LemmInflect's tables; by its ending for a word they lack: "zoomiest" -> zoomy."""
    plain = positives(superlative)
    if plain:
        return plain
    stem = superlative.removesuffix("est")
    out = {stem, stem + "e"}
    if len(stem) > 2 and stem[-1] == stem[-2]:
        out.add(stem[:-1])
    if stem.endswith("i"):
        out.add(stem[:-1] + "y")
    return out


def _positive_before(superlative: str, noun: str, f: Features) -> bool:
    """f names the noun with the plain form of the superlative: "a big lake" against "the biggest lake"."""
    plain = _positives(superlative)
    return any(w in plain and key(n) == noun for w, n in itertools.pairwise(f.words))


def _member_of_set(a: Features, b: Features) -> bool:
    """a: one member picked by its order or by a superlative, b: the set it is picked from, with no
    pick, or several picked where a picks one. "Which of the supported versions is the latest?" /
    "Which versions are still supported?", "the cheapest filament for X" / "filaments suitable for
    X", "the largest lake" / "the largest lakes", "the biggest lake" / "a big lake"."""
    best, theirs = {(k, p) for _, k, p in a.superlatives}, {(k, p) for _, k, p in b.superlatives}
    heads = {k for k, _ in best}
    if not any(w in LEX.scales for w in b.words) and any(
        plural(w) and (key(w) in heads or ("" in heads and any(_similar_word(w, v) for v in a.content)))
        for w in b.content
    ):
        return True
    if any((k, not plural) in theirs and (k, plural) not in theirs for k, plural in best if k):
        return True
    if not theirs and any(_positive_before(sup, k, b) for sup, k, _ in a.superlatives if k):
        return True
    picked = {n for c, n in a.quantified if c == "single"}
    if not picked or not any(s == "order" for s, _ in a.scales) or any(s == "order" for s, _ in b.scales):
        return False
    # "the latest version" picks a version; "the latest" alone picks from the set the question names
    alone = any(LEX.scales.get(n, ("", 0))[0] == "order" for n in picked)
    return any(plural(w) and key(w) in a.keys and (alone or key(w) in picked) for w in b.content)


_RECOMMEND = frozenset({"best", "worst"})


def _superlative_added(a: Features, b: Features) -> bool:
    """a picks the extreme members of a thing b asks about as a whole: "how do you solve the very
    hardest sudokus" / "how do you solve sudoku". "best" and "worst" ask for a recommendation, which
    the plain question asks for as well ("the best glue for paper" / "what glue for paper"), and one
    extreme value is what a plain question of one asks ("the smallest font size I can use" / "what font
    size is readable")."""
    if b.superlatives:
        return False
    return any(
        sup not in _RECOMMEND
        and (many or plural(noun))
        and any(_similar_word(w, noun) for w in b.content)
        and not _positive_before(sup, noun, b)
        for sup, noun, many in a.superlatives
    )


@functools.lru_cache(maxsize=65536)
def _akin(w: str, v: str) -> bool:
    """w and v say the same: a spelling, an inflection, a near-synonym, one unit ("MB" / "megabytes"),
    one class of people ("children" / "kids")."""
    if _similar_word(w, v) or _synonyms(w, v):
        return True
    unit, person = LEX.units.get(w), LEX.people.get(w)
    return (unit is not None and unit == LEX.units.get(v)) or (
        person is not None and person == LEX.people.get(v)
    )


def _unmatched(words: Iterable[str], other: Features) -> set[str]:
    """The words with no counterpart in ``other``: not one of its content words, an inflection, a typo
    or a near-synonym of one, nor another name for a time it names."""
    theirs = {w for w in other.words if qualifier_word(w)}
    times = named_times(other)  # "at night" / "overnight"
    slips = {v for v in other.words if len(v) >= 4 and v not in theirs}  # "ususally" is no qualifier
    return {
        w
        for w in words
        if w not in theirs
        and not any(_akin(w, v) for v in theirs)
        and time_named(w) not in times
        and not any(
            w[0] == v[0] and 3 * min(len(w), len(v)) >= 2 * max(len(w), len(v)) and _typo(w, v) for v in slips
        )
    }


def _added(f: Features, other: Features) -> list[tuple[str, tuple[str, ...], bool]]:
    """The qualifiers of f none of whose words the other side has; a name alone ("in k8s") is left to
    the entity rule, which takes a name added to a question that names nothing else as context."""
    return [
        q
        for q in f.qualifiers
        if not set(q[1]) <= set(f.entities) and len(_unmatched(q[1], other)) == len(set(q[1]))
    ]


_ONLY = frozenset({"only"})  # not "just": "I just started", "just wondering"


def _only_narrows(a: Features, b: Features) -> bool:
    """b keeps every content word of a, adds "only" and a word naming which: "back up my
    phone photos" / "back up only my favourite phone photos", "block in-app purchases" / "block in-app
    purchases only in one game"."""
    if not (_ONLY & set(b.words)) or _ONLY & set(a.words):
        return False
    ka, kb = set(a.keys) - STOPWORDS, set(b.keys) - STOPWORDS - _ONLY
    return bool(ka) and ka <= kb and bool(_unmatched((w for w in b.content if w not in _ONLY), a))


def _counting(f: Features) -> bool:
    """f asks for a count or an amount: "how many moons", "how much protein"."""
    return bool(_after_how_many(f))


def _count_narrowed(a: Features, b: Features) -> bool:
    """Both sides ask how many, and a qualifier (a name too) on one side is unmatched on the other: the
    count is of another set. "How many species of bears are there?" / "... live in North America?",
    "How many moons are in the solar system?" / "How many moons does Mars have?"."""
    if not (_counting(a) and _counting(b)):
        return False
    return any(
        len(_unmatched(q[1], o)) == len(set(q[1])) and not any(_entity_present(w, o) for w in q[1])
        for f, o in ((a, b), (b, a))
        for q in f.qualifiers
    )


def unmatched_qualifier(a: Features, b: Features) -> bool:
    """A qualifier of the request on one side that the other side does not match: a prepositional
    phrase, an -ly adverb or a depth phrase whose every content word is missing from the other side.
    Paraphrases substitute words, so each side keeps words the other lacks; a trap adds a qualifier and
    changes nothing else ("disk usage" / "disk usage in bytes", "what is a mutex" / "briefly, what is
    a mutex"), or swaps it for another of the same kind ("in MB" / "in blocks"). A strong qualifier
    (a universal quantifier, a unit, a depth) refuses even next to other rewording ("check disk usage"
    / "see how much disk is used in megabytes")."""
    if not (a.qualifiers or b.qualifiers):
        return False
    qa, qb = _added(a, b), _added(b, a)
    if not (qa or qb):
        return False
    if any(strong for _, _, strong in (*qa, *qb)):
        return True
    xa = _unmatched((w for w in a.words if qualifier_word(w)), b)
    xb = _unmatched((w for w in b.words if qualifier_word(w)), a)
    rest_a = xa.difference(*(words for _, words, _ in qa))
    rest_b = xb.difference(*(words for _, words, _ in qb))
    if (qa and not rest_a and not xb) or (qb and not rest_b and not xa):
        return True  # a qualifier added, nothing else changed
    # one qualifier swapped for another opened by the same preposition, nothing else changed
    return bool(not rest_a and not rest_b and {m for m, _, _ in qa} & {m for m, _, _ in qb})


_EVERYWHERE = LEX.contexts["everywhere"]
_PLACE_OPENERS = frozenset({"in", "at", "on", "from"})


def _everywhere_against_place(a: Features, b: Features) -> bool:
    """a asks about everywhere ("worldwide", "anywhere"), b about the place its qualifier names, which a
    does not: "the history of origami worldwide" / "... in Japan", "tea ceremonies globally" / "tea
    ceremonies in Kyoto"."""
    if not (_EVERYWHERE & set(a.words)) or _EVERYWHERE & set(b.words):
        return False
    return any(m in _PLACE_OPENERS and not set(words) & set(a.words) for m, words, _ in b.qualifiers)


def _named_member(a: Features, b: Features) -> bool:
    """a: one member named by a word before its noun ("the team slide of a pitch deck"), b: the set,
    the noun in the plural without that word ("the slides of a pitch deck")."""
    plural_b = {key(w) for w in b.content if plural(w)}
    if not plural_b:
        return False
    for det, mod, noun, nxt in zip(a.words, a.words[1:], a.words[2:], (*a.words[3:], ""), strict=False):
        if det != "the" or plural(noun) or key(noun) not in plural_b or not _edit_word(mod):
            continue
        if nxt and nxt not in STOPWORDS:
            continue  # not the head: "the medal level system" names no level
        if key(mod) not in b.keys and not any(_akin(mod, v) for v in b.content):
            return True
    return False


def _one_against_any(a: Features, b: Features) -> bool:
    """One member named as one on a's side, any member on b's: "drop rows with NaN in a specific
    column" / "... in any column". "any" before a plural asks for some ("any tips"), and is left out."""
    single = {n for c, n in a.quantified if c == "single"}
    return any(
        w == "any" and nxt.isalpha() and not plural(nxt) and noun_after(b.words, i) in single
        for i, (w, nxt) in enumerate(itertools.pairwise(b.words))
    )


def _one_against_many(a: Features, b: Features) -> bool:
    """One member named as one on a's side, the same noun in the plural on b's with no pick: "the
    single most important metric to track" / "what metrics should I track"."""
    single = {n for c, n in a.quantified if c == "single"} - {""}
    single -= {key(w) for w in a.content if plural(w)}  # "my final wages": one pick of a plural
    if not single or any(c == "single" for c, _ in b.quantified):
        return False
    return any(plural(w) and key(w) in single for w in b.content)


def _all_against_some(a: Features, b: Features) -> bool:
    """a: every member of a set, b: some of the same set. "Are all mushrooms with gills poisonous?" /
    "Are some mushrooms with gills poisonous?"."""
    universal_a = {n for c, n in a.quantified if c == "universal"} - {""}
    if not universal_a or any(c == "universal" for c, _ in b.quantified):
        return False
    return any(w == "some" and noun_after(b.words, i) in universal_a for i, w in enumerate(b.words))


def _all_against_kind(a: Features, b: Features) -> bool:
    """a: every member of a set, b: one kind of it, named by a word before the noun a does not have.
    "Are all sharks dangerous?" / "Are bull sharks dangerous?", "list all the ballroom dances" / "list
    the standard ballroom dances"."""
    universal_a = {n for c, n in a.quantified if c == "universal"} - {""}
    if not universal_a or any(c != "article" for c, _ in b.quantified):
        return False
    for i, noun in enumerate(b.words):
        if not (plural(noun) and key(noun) in universal_a):
            continue
        mods = list(itertools.takewhile(_edit_word, reversed(b.words[max(i - 2, 0) : i])))
        if _unmatched(mods, a):
            return True
    return False


def _set_for_member(a: Features, b: Features) -> bool:
    """a: every member of a set the other side never names, b: something named in its place, with no
    quantifier over a set. "all repairs" / "fixing the boiler", "each layer of the Earth" / "the
    Earth's crust", "all the binary heap operations" / "inserting into a binary heap"."""
    universal_a = {n for c, n in a.quantified if c == "universal"}
    if not universal_a or "" in universal_a or universal_a & set(b.keys):
        return False
    if any(c == "universal" for c, _ in b.quantified):
        return False
    if _unmatched(b.content, a):
        return True
    # nothing named in its place, and nothing else changed: a breakdown by member added ("the disk
    # usage of a folder" / "of each subfolder in a folder")
    return bool(b.content) and _unmatched(a.content, b) <= {w for w in a.content if key(w) in universal_a}


_TOTAL, _SHARE = LEX.contexts["total"], LEX.contexts["share"]


def _shares(f: Features) -> bool:
    return any(w in _SHARE and duration(n) is None for w, n in itertools.pairwise((*f.words, "")))


def _item_joined(a: Features, b: Features) -> bool:
    """b joins one more item to a word of a with "and" / "or", and changes nothing else: "the solar
    eclipses in 2026" / "all the eclipses in 2026, solar and lunar", "lock a road bike" / "lock a road
    or mountain bike". The answer covers both where a asks about one."""
    theirs = set(a.keys)
    joins = [i for i, w in enumerate(b.words) if w in ("and", "or")]
    listed = [items for items in (_listed(b.words, i, theirs) for i in joins) if items]
    more = sum(w in ("and", "or") for w in a.words) < len(joins) and any(
        key(w) not in theirs and w not in STOPWORDS for i in joins for w in b.words[max(i - 3, 0) : i + 5]
    )  # an "and" a lacks, with a word beside it that a has not
    if not (listed or more):  # the cheap test first: the word matching below is the costly part
        return False
    if _unmatched((w for w in a.content if qualifier_word(w)), b):
        return False  # a rewording: usually found on a's side first
    added = _unmatched((w for w in b.content if qualifier_word(w)), a)
    if not added or len(added) > 3:
        return False
    if any(added <= items for items in listed):
        return True
    return more and any(_beside(b.words, i, added) for i in joins)


def _listed(words: tuple[str, ...], i: int, theirs: set[str]) -> set[str]:
    """The items a list ending in the "and" / "or" at i adds to a word the other side has (the keys in
    theirs): "a ring doorbell" / "ring doorbells, cameras and the alarm" -> {cameras, alarm}; empty when
    the list does not follow such a word or ends in a word the other side has."""
    nxt = next((w for w in words[i + 1 :] if w not in ("a", "an", "the")), "")
    if not nxt or nxt in STOPWORDS or key(nxt) in theirs:
        return set()
    items = {nxt}
    for w in reversed(words[:i]):
        if w in STOPWORDS:
            return set()
        if key(w) in theirs:
            return items
        items.add(w)
    return set()


def _beside(words: tuple[str, ...], i: int, added: set[str]) -> bool:
    """The added words are the item the "and" / "or" at i joins, right next to it: before it ("the
    bow grip" / "the stance and bow grip"), after it ("speakers" / "speakers and subwoofer"), both
    ("a health and welfare LPA" / "an LPA"), or after the word both items share ("draw weight" / "draw
    weight and draw length"), which :func:`_listed` does not see. Words further off are rewording
    ("why does my dog eat grass" / "what makes dogs chew and eat grass")."""
    rest = words[i + 1 :]
    rest = rest[1:] if rest[:1] and rest[0] in _ARTICLES else rest
    k = len(added)
    if i >= 2 and rest[:1] == words[i - 2 : i - 1] and set(rest[1 : k + 1]) == added:
        return True  # "draw weight and draw length"
    kept_after = bool(rest) and rest[0] not in STOPWORDS  # "setup and how to use it" adds a question
    kept_before = i > 0 and words[i - 1] not in STOPWORDS
    for lo in range(min(k, i) + 1):  # lo of the added words before the "and", the rest after it
        if (lo == k and not kept_after) or (lo == 0 and not kept_before):
            continue  # the other item must be one both sides name
        if set(words[i - lo : i]) | set(rest[: k - lo]) == added:
            return True
    return False


def _total_vs_share(a: Features, b: Features) -> bool:
    """a: the whole amount, b: a share of it ("India's total GDP" / "India's GDP per capita", "for both
    cats altogether" / "for each cat", "the total interest" / "the interest of a single payment")."""
    total_a, total_b = bool(_TOTAL & set(a.words)), bool(_TOTAL & set(b.words))
    single_b = any(c == "single" for c, _ in b.quantified) and not any(c == "single" for c, _ in a.quantified)
    return total_a and not total_b and ((_shares(b) and not _shares(a)) or single_b)


def _member_asked(a: Features, b: Features) -> bool:
    """a asks whether one thing is so, b what is: "Does my new car warranty cover the battery?" / "What
    does my new car warranty cover?", "Is electricity included in the berth fee?" / "What's included in
    the berth fee?". b's answer is the set a asks about one member of."""
    if not (a.words and b.words) or a.words[0] not in _POLAR or b.words[0] not in _WHAT:
        return False
    if _QUESTION_WORDS & set(a.words) or "how" in a.words:
        return False  # a question inside: "Can you explain what a p-value is?"
    if a.words[1:2] == ("you",) and a.words[0] in _REQUEST_MODALS:
        return False  # a request: "Could you explain the rule of thirds?"
    return bool(_unmatched(a.content, b)) and not _unmatched(b.content, a)


_EVERYTHING = frozenset({"everything", "anything"})


def _everything_for_member(a: Features, b: Features) -> bool:
    """a asks about everything where b names one thing, the rest kept: "Does the warranty cover
    everything?" / "Does the warranty cover the battery?"."""
    if not _EVERYTHING & set(a.words) or _EVERYTHING & set(b.words):
        return False
    rest_a = [w for w in a.content if w not in _EVERYTHING]
    return bool(rest_a) and not _unmatched(rest_a, b) and bool(_unmatched(b.content, a))


def _total_vs_named_part(a: Features, b: Features) -> bool:
    """a: the whole amount, b: one named part of it: "the total cost of a stepparent adoption" / "the
    court fees for a stepparent adoption"."""
    if not _TOTAL & set(a.words) or _TOTAL & set(b.words):
        return False
    heads = {nxt for w, nxt in itertools.pairwise(a.words) if w in _TOTAL}
    return any(
        _edit_word(mod) and _unmatched((mod,), a) and any(_akin(noun, h) for h in heads)
        for mod, noun in itertools.pairwise(b.words)
    )


def _classes(f: Features, other: Features) -> set[str]:
    """f's classes of people, someone named by age alone taken as the child the other side names ("a
    10 year old" / "a ten-year-old kid"), and as no one else otherwise ("a 16-year-old" / "I at 16").
    An organisation ("the company", "employers") is whose rules apply, not whom the answer is about
    ("what happens to my pension if I leave my job" / "... if I change employers"), unless a side names
    the asker's own ("my employer" / "my boss"): then it is someone the asker deals with."""
    out = set(f.people) - {"age"}
    if not (_own_business(f) or _own_business(other)):
        out.discard("business")
    return out | ({"child"} & set(other.people)) if "age" in f.people else out


def _own_business(f: Features) -> bool:
    """f names the asker's own employer or company: "my employer", "our company's blog"."""
    return any(p in ASKER_OWNS and LEX.people.get(w) == "business" for p, w in itertools.pairwise(f.words))


def _other_people(a: Features, b: Features) -> bool:
    """Someone else a question is about on one side only ("my son" / "me"). A pronoun ("help him
    relax") on one side only is no one new when a person or animal is named on both ("my dog")."""
    pa, pb = _classes(a, b), _classes(b, a)
    pa |= {_COUNTERPART[c] for c in _askers(a) if _COUNTERPART.get(c) in pb}
    pb |= {_COUNTERPART[c] for c in _askers(b) if _COUNTERPART.get(c) in pa}
    if pa == pb:
        return False
    return not (pa ^ pb == {"third"} and (pa & pb) - {"third"})


_COUNTERPART = dict(pair.split(":") for pair in LEX.contexts["counterpart"])


def _askers(f: Features) -> set[str]:
    """The classes of the people the asker has ("my landlord"): the asker is their counterpart."""
    mine = {n for o, n in f.owners if o == "asker"}
    return {c for w in f.words if (c := LEX.people.get(w)) and key(w) in mine}


def _compounds_unquantified(f: Features, other: Features) -> Features:
    """f less the sets its quantifiers open where the other side writes the quantifier and the word after
    it as one hyphenated word: "all grain brews" / "all-grain beer" is one kind of brewing, no set."""
    if not f.quantified:
        return f
    w = f.words
    drop = {
        (LEX.quantifiers[x], noun_after(w, i))
        for i, (x, y) in enumerate(itertools.pairwise(w))
        if x in LEX.quantifiers and x + y in other.words
    }
    return replace(f, quantified=tuple(q for q in f.quantified if q not in drop)) if drop else f


@rule("scope")
def scope(a: Features, b: Features) -> bool:
    """Another scope: who it is about (me / my daughter), how much of a set (one / all, a namespace /
    all namespaces, a total / a share of it), how deep (briefly / in depth, one sentence / step by
    step, just the number / and why) or in what shape (bullet points / an essay), or a qualifier of the
    request on one side only (see :func:`unmatched_qualifier`: "in megabytes", "across all regions",
    "with examples")."""
    if _other_people(a, b):
        return True
    a, b = _compounds_unquantified(a, b), _compounds_unquantified(b, a)
    if _both_ways(a, b, _quantifier_conflict) or _both_ways(a, b, _member_of_set):
        return True
    if _both_ways(a, b, _total_vs_share) or _both_ways(a, b, _named_member) or _both_ways(a, b, _item_joined):
        return True
    if _both_ways(a, b, _total_vs_named_part) or _both_ways(a, b, _member_asked):
        return True
    if _both_ways(a, b, _everything_for_member) or _both_ways(a, b, _one_against_any):
        return True
    if _both_ways(a, b, _one_against_many) or _both_ways(a, b, _superlative_added):
        return True
    if _both_ways(a, b, _set_for_member) or _both_ways(a, b, _all_against_some):
        return True
    if _both_ways(a, b, _all_against_kind) or _count_narrowed(a, b) or _both_ways(a, b, _only_narrows):
        return True
    if _both_ways(a, b, _everywhere_against_place):
        return True
    depth = set(a.depth) ^ set(b.depth)
    if {"brief", "deep"} <= set(a.depth) | set(b.depth) and depth:
        return True
    if _both_ways(a, b, _brief_against_more):
        return True  # "just the number" / "..., and why that distance"
    if set(a.formats) != set(b.formats):
        return True  # "list the planets" / "... in a table": the answer's shape is part of the request
    return unmatched_qualifier(a, b) or _phrase_added(a, b)


_BRIEF_MORE = LEX.contexts["brief-more"]


def _brief_against_more(a: Features, b: Features) -> bool:
    """a asks for a brief answer; b, not brief, asks how, why or where after words both share ("what
    does vo2 max mean, one line" / "what does vo2 max mean, how is it estimated", "the main seaweeds,
    just names" / "..., with how to cook each"). A question that opens with "how" asks only that ("how
    do I tare a scale" / "the command to tare a scale, just the command")."""
    if "brief" not in a.depth or "brief" in b.depth:
        return False
    shared = set(a.words) - STOPWORDS
    wb = b.words
    return any(
        w in _BRIEF_MORE and wb.count(w) > a.words.count(w) and shared & set(wb[:i]) for i, w in enumerate(wb)
    )


_PHRASE_OPENERS = LEX.contexts["added-phrase"] | ADJUNCT


def _phrase_added(a: Features, b: Features) -> bool:
    """One side is the other word for word with one phrase put in after its first word, opened by a
    preposition or a conjunction and naming more than a name: "what does motorhome insurance cover" /
    "... when I'm abroad", "how can I give to charity" / "... from my pension", "what should I check
    before buying a used rc car" / "... on the motor ...". Nothing else changed, so any opener counts,
    not only a qualifier's (:func:`unmatched_qualifier`); as there, a name alone ("in k8s") and the
    asker's own thing after a qualifier's opener ("on my server") are context, and "to" opens a phrase
    only as :func:`opens` reads it (not before a verb, nor in "to each other")."""
    wa, wb = list(a.words), list(b.words)
    ops = [op for op in SequenceMatcher(None, wa, wb, autojunk=False).get_opcodes() if op[0] != "equal"]
    if len(ops) != 1 or ops[0][0] not in ("insert", "delete"):
        return False
    _, i1, i2, j1, j2 = ops[0]
    span, longer = (wa[i1:i2], a) if i2 > i1 else (wb[j1:j2], b)
    if not (i1 or j1) or span[0] not in _PHRASE_OPENERS:
        return False
    if span[0] == "to" and not opens(span, 0):
        return False  # "learn guitar" / "learn to play the guitar", "introduce them to each other"
    if span[0] in ADJUNCT and _POSSESSIVE & set(span[1:2]) and not _BODY_PART & set(span[2:3]):
        return False  # the asker's own thing, as for a qualifier: "find large files on my server"
    names = set(longer.entities)
    return any(_edit_word(w) and w not in names and key(w) not in names for w in span[1:])


# -- edit ----------------------------------------------------------------------------------------

_SYNONYM_OF: dict[str, frozenset[int]] = {}
for _i, _group in enumerate(LEX.synonyms):
    for _w in _group:
        _SYNONYM_OF[_w] = _SYNONYM_OF.get(_w, frozenset()) | {_i}
_SYNONYM_PHRASES = frozenset(w for g in LEX.synonyms for w in g if " " in w)


def _synonym_groups(w: str) -> frozenset[int]:
    """Groups of a word or of its base form ("filing" -> file, "submitting" -> submit)."""
    k = key(w)
    forms = (w, k, k + "e", k + "y")
    return frozenset().union(*(_SYNONYM_OF.get(f, frozenset()) for f in forms))


def _synonyms(a: str, b: str) -> bool:
    """Near-synonyms, or the same end of one comparison scale ("most" / "largest")."""
    if a in LEX.scales and LEX.scales.get(a) == LEX.scales.get(b):
        return True
    return bool(_synonym_groups(a) & _synonym_groups(b))


# British spellings to American ones, by ending: tyre/tire, colour/color, centre/center, fibre/fiber,
# organise/organize, catalogue/catalog, haemoglobin/hemoglobin. Only patterns whose other reading is no
# English word ("filled" / "filed" is why -ll- is not here).
_AMERICAN = tuple(
    (re.compile(p), r)
    for p, r in (
        (r"yre(s?)$", r"ire\1"),
        (r"(?<=[a-z]{3})our(s|ed|ing|ite|ites|able)?$", r"or\1"),
        (r"(?<=[a-z]{2})([bt])re(s?)$", r"\1er\2"),
        (r"(?<=[a-z]{3})is(e|es|ed|ing|ation|ations)$", r"iz\1"),
        (r"ogue(s?)$", r"og\1"),
        (r"(?<=[a-z])ae(?=[a-z])", "e"),
        (r"(?<=[a-z]{2})s(y|ier|iest|iness)$", r"z\1"),  # cosy / cozy
        (r"^sulph", "sulf"),  # sulphur / sulfur, sulphate / sulfate
    )
)


@functools.lru_cache(maxsize=16384)
def _american(w: str) -> str:
    for pattern, repl in _AMERICAN:
        w = pattern.sub(repl, w)
    return w


def _similar_word(a: str, b: str) -> bool:
    """Spelling variant, inflection or derivation of the same word."""
    if a == b or key(a) == key(b) or _numeronym(a, {b}) or _numeronym(b, {a}) or lemmas(a) & lemmas(b):
        return True
    if b in _roman_for_number(a) or a in _roman_for_number(b):
        return True  # "ww1" / "wwi"
    if len(a) >= 4 and len(b) >= 4 and _american(a) == _american(b):
        return True
    if len(a) >= 4 and len(b) >= 4 and (a.startswith(b) or b.startswith(a)):
        return True
    ka, kb = key(a), key(b)
    if min(len(ka), len(kb)) >= 4 and (ka.startswith(kb) or kb.startswith(ka)):
        return True  # derivations: quote / quotation
    if len(ka) >= 6 and len(ka) == len(kb) and {ka[-2:], kb[-2:]} == {"or", "er"} and ka[:-2] == kb[:-2]:
        return True  # an agent noun spelt either way: "restrictors" / "restricters", "adviser" / "advisor"
    if min(len(a), len(b)) == 3 and known(a) != known(b) and _undoubled(a, b):
        return True  # a short word with its double letter typed once: "a coin rol" / "a coin roll"
    return len(a) >= 4 and len(b) >= 4 and a[0] == b[0] and _typo(a, b)


def _undoubled(a: str, b: str) -> bool:
    """One of a double letter of the longer word dropped gives the shorter ("roll" / "rol")."""
    short, long = sorted((a, b), key=len)
    return len(long) == len(short) + 1 and any(
        long[i] == long[i + 1] and long[:i] + long[i + 1 :] == short for i in range(len(long) - 1)
    )


# neighbouring keys on a QWERTY keyboard, for a slip of the finger
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEAR_KEYS = {
    c: {r[j] for r in _ROWS[max(0, i - 1) : i + 2] for j in range(len(r)) if abs(j - row.index(c)) <= 1} - {c}
    for i, row in enumerate(_ROWS)
    for c in row
}


def _slip(a: str, b: str) -> bool:
    """One slip of the finger: a letter dropped, doubled or added, two letters swapped, or a letter
    typed as a key next to it ("aviod" / "avoid", "recieve" / "receive", "tomorow" / "tomorrow")."""
    if len(a) > len(b):
        a, b = b, a
    if len(b) - len(a) == 1:
        return any(b[:i] + b[i + 1 :] == a for i in range(len(b)))
    if len(a) != len(b):
        return False
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    if len(diff) == 1:
        return b[diff[0]] in _NEAR_KEYS.get(a[diff[0]], ())
    return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]


def _typo(a: str, b: str) -> bool:
    """a and b are close enough to be one word misspelt ("definately", "aviod"), or spelt two ways
    ("aluminum" / "aluminium"). Two words the dictionary both has, or both lacks (names mostly), count
    only when one slip of the finger turns one into the other: "debit" / "debt" typed in haste, but
    "beats" / "breaths" are two words, and "ireland" / "iceland" is no slip (r and c are not
    neighbours), "kubernets" / "kubernetes" is."""
    if SequenceMatcher(None, a, b).ratio() < 0.8:
        return False
    return known(a) != known(b) or _slip(a, b)


def _edit_word(w: str) -> bool:
    """A content word for the edit rule; numbers, units and dates have their own rules."""
    return not (
        w in STOPWORDS
        or w in LEX.negators
        or is_number(w)
        or w in LEX.numbers
        or w in LEX.units
        or w in LEX.months
        or time_word(w) is not None
    )


def _swap_word(w: str) -> bool:
    """A word that changes the question when another takes its place: a content word, or a unit
    replaced by a word that is not a unit ("what Hz should the crossover be" / "what dB ...")."""
    return _edit_word(w) or w in LEX.units


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


def _joined(words: list[str], other: set[str]) -> list[str]:
    """Two adjacent words joined where the other side writes them as one ("hand written" /
    "handwritten", "log in" / "login")."""
    out: list[str] = []
    for w in words:
        if out and out[-1] + w in other:
            out[-1] += w
        else:
            out.append(w)
    return out


_COORDINATORS = frozenset({"and", "or", "plus", "nor"})


def _joined_item(span: list[str], against: list[str], other: list[str]) -> bool:
    """span joins one more item on ("and disposal rules") where the other side has no content word
    (nothing, or "of" for "for"), and nothing on the other side says the same."""
    added = [w for w in span if _edit_word(w)]
    if not added or len(span) > 4 or span[0] not in _COORDINATORS or any(_edit_word(w) for w in against):
        return False
    return not any(_similar_word(w, v) or _synonyms(w, v) for w in added for v in other)


_FEELING = LEX.contexts["feeling"]


def _request_added(a: Features, b: Features) -> bool:
    """b asks a's question and then, in a sentence of its own, for something more ("What is a left
    join? Show me an example query"). A closing thanks ("Thanks in advance!") asks for nothing."""
    sa, sb = a.sentences, b.sentences
    if len(sb) <= len(sa) or not sa:
        return False
    n = len(sa)
    rest = sb[n:] if sb[:n] == sa else sb[:-n] if sb[-n:] == sa else None
    # a sentence opened by a filler ("Thanks in advance") asks for nothing, nor one that says what the
    # asker does not know ("I never really understood it") or how the asker feels ("kinda worried")
    asks = [
        x for x in rest or () if x[0] not in LEX.fillers and not any(not_knowing(x, i) for i in range(len(x)))
    ]
    return any(_edit_word(w) and w not in LEX.fillers and w not in _FEELING for x in asks for w in x)


_SECOND_QUESTION = LEX.contexts["second-question"]


def _question_joined(a: Features, b: Features) -> bool:
    """b asks one of a's sentences word for word and joins another question on with "and" ("What pests
    attack brassicas? Just name them" / "What pests attack brassicas, and how do I control each one?")."""
    for x in b.sentences:
        for y in a.sentences:
            n = len(y)
            if n >= 3 and len(x) > n + 2 and x[:n] == y and x[n] == "and" and x[n + 1] in _SECOND_QUESTION:
                return True
    return False


_PART_LINKS = LEX.contexts["part-link"]
_ATTRIBUTES = frozenset(key(w) for w in LEX.contexts["attribute"])


_ARTICLES = ("the", "a", "an")


def _asks_more(wa: list[str], wb: list[str], other: Features) -> bool:
    """wb is wa word for word with two or more content words put in after its first word ("a grocery
    list for a week of dinners" / "..., organized by store aisle, plus the recipe for each night"): the
    asker narrowed or extended the question on purpose. Words ahead of the question are a preamble
    ("sorry to bother you but ..."); an acronym the other side writes out adds nothing, nor how the asker
    feels ("kinda worried")."""
    ops = [op for op in SequenceMatcher(None, wa, wb, autojunk=False).get_opcodes() if op[0] != "equal"]
    if len(ops) != 1 or ops[0][0] != "insert" or ops[0][1] == 0:
        return False
    _, _, _, j1, j2 = ops[0]
    added = [
        w
        for w in wb[j1:j2]
        if _edit_word(w) and w not in LEX.fillers and w not in _FEELING and not _spelled_out(w, other.spelled)
    ]
    return len(added) >= 2


def _part_of(span: list[str], other: list[str], before: str, seq: Sequence[str] = ()) -> bool:
    """An added head ahead of a kept noun phrase: "the crust for", "the haemoglobin result on", "(the)
    left ventricle of the" (not an attribute of the whole: "how much is the cost of a passport" = "how
    much is a passport"; nor a word the other side has elsewhere: "my account password" / "the
    password of my account"), unless the other side has it only inside the kept phrase ("the case for a
    case bound book" / "a case bound book"). ``before``: the kept word just ahead of the span; ``seq``:
    the whole side the span is in."""
    if span and span[-1] in _ARTICLES:
        span = span[:-1]
    if len(span) > 1 and span[0] in ("just", "only"):
        span = span[1:]  # "clean just the gravel in my fish tank": the part alone
    if not (
        2 <= len(span) <= 4 and (span[0] in _ARTICLES or before in _ARTICLES) and span[-1] in _PART_LINKS
    ):
        return False
    kept, mine = Counter(key(w) for w in other), Counter(key(w) for w in seq or span)
    return any(_edit_word(w) and key(w) not in _ATTRIBUTES and kept[key(w)] < mine[key(w)] for w in span[:-1])


_NAMED_PART = LEX.contexts["named-part"]


def _named_part(span: list[str], before: str) -> bool:
    """A kind word and its letter or number after a kept word: "Medicare" / "Medicare Part A"."""
    return (
        bool(before)
        and len(span) == 2
        and span[0] in _NAMED_PART
        and ((len(span[1]) == 1 and span[1].isalpha()) or span[1].isdigit())
    )


def _part_added(op: tuple[str, int, int, int, int], wa: list[str], wb: list[str]) -> bool:
    """The opcode adds (to either side) a part ahead of a noun phrase both keep (see :func:`_part_of`),
    or a named part after one (:func:`_named_part`)."""
    tag, i1, i2, j1, j2 = op
    if tag in ("equal", "replace"):
        return False
    seq, at, end, kept = (wa, i1, i2, wb) if i2 > i1 else (wb, j1, j2, wa)
    before = seq[at - 1] if at else ""
    return _part_of(seq[at:end], kept, before, seq) or _named_part(seq[at:end], before)


@rule("edit")
def edit(a: Features, b: Features) -> bool:
    """:func:`_edited`, read both ways round: which question was stored first must not change the
    decision ("tips for reversing a horse trailer" / "... a horsebox" was served one way only)."""
    return _both_ways(a, b, _edited)


def _edited(a: Features, b: Features) -> bool:
    """A question kept word for word except for one or two swapped content words ("change my delivery
    address" / "change my billing address"), one added word next to a kept noun ("a gift" / "a gift
    card"), one more item joined on ("the eigenvalues" / "the eigenvalues and eigenvectors"), one more
    request in a sentence of its own or joined on with "and how" (:func:`_question_joined`), two or more
    content words asked for after the question's first word (:func:`_asks_more`), or one content word
    dropped and another put in elsewhere ("ground beef" / "a beef steak"): the change is what the asker
    made on purpose. A paraphrase restructures the question; a near repeat swaps no content word (typos,
    inflections, synonyms, fillers do not count)."""
    if _both_ways(a, b, _request_added) or _both_ways(a, b, _question_joined):
        return True
    wa, wb = _joined(list(a.words), set(b.words)), _joined(list(b.words), set(a.words))
    if _asks_more(wa, wb, a) or _asks_more(wb, wa, b):
        return True
    sm = SequenceMatcher(None, wa, wb, autojunk=False)
    # words changed only in number or tense count as kept: "what designs are on" / "what design is on"
    opcodes = sm.get_opcodes()
    inflected = [op for op in opcodes if _inflected(op, wa, wb)]
    ops = [op for op in opcodes if op not in inflected]
    ratio = sm.ratio() + sum(i2 - i1 + j2 - j1 for _, i1, i2, j1, j2 in inflected) / max(len(wa) + len(wb), 1)
    changed = [op for op in ops if op[0] != "equal"]
    # a part of the whole added ("an apple pie" / "the crust for an apple pie"); when it is the only
    # change, however long it is against the rest ("Beethoven's Fifth" / "the first movement of ...")
    if (len(changed) == 1 or ratio >= 0.7) and any(_part_added(op, wa, wb) for op in changed):
        return True
    if ratio < 0.7:
        return _short_swap(wa, wb, changed)
    for tag, i1, i2, j1, j2 in ops:
        if tag == "equal":
            continue
        if _joined_item(wa[i1:i2], wb[j1:j2], wb) or _joined_item(wb[j1:j2], wa[i1:i2], wa):
            return True  # another item asked for: "the eigenvalues" / "the eigenvalues and eigenvectors"
        span = wa[i1:i2] or wb[j1:j2]
        other = b if i2 > i1 else a
        # an article or the asker's possessive before the added word: "keep my hands warm" / "keep warm"
        kept = [w for w in wa[i1:i2] + wb[j1:j2] if w not in _ARTICLES and w not in _POSSESSIVE]
        if tag == "replace" and len(kept) <= 1:
            # an article changed with the word added: "on a work permit" / "on an open work permit"
            span, other, tag = kept, (b if set(kept) & set(wa[i1:i2]) else a), "insert"
        # an acronym of words the other side writes out adds nothing: "cost per acquisition (CPA)"
        added = (
            [w for w in span if _edit_word(w) and not _spelled_out(w, other.spelled)]
            if tag != "replace"
            else []
        )
        if added == ["them"] and any(plural(w) for w in (wb if i2 == i1 else wa)[: max(i1, j1)]):
            added = []  # the things already named, as an object: "before freezing" / "before freezing them"
        # a word put between two kept words, however short the question: "famous magicians" / "famous
        # british magicians", "a charity raffle" / "an online charity raffle"
        inside = tag != "replace" and max(i1, j1) > 0 and (i2 < len(wa) if i2 > i1 else j2 < len(wb))
        if added and (ratio >= 0.85 or inside) and len(ops) <= 3 and len(added) == 1 and len(kept) == 1:
            return True  # "when moving" / "when moving the kitchen"
        if tag != "replace" or _long_span(wa[i1:i2]) or _long_span(wb[j1:j2]):
            continue
        # a word the other side keeps elsewhere was moved, not swapped ("a hub and a switch" / "a switch
        # and a hub"); the direction rule judges moves across a role word
        left, right = _unexplained(
            [w for w in _phrases(wa[i1:i2]) if _swap_word(w) and w not in wb],
            [w for w in _phrases(wb[j1:j2]) if _swap_word(w) and w not in wa],
        )
        if left and right:
            return True
    return sm.ratio() >= 0.75 and _scattered_swap(wa, wb)  # the swap check reads inflections itself


def _long_span(span: list[str]) -> bool:
    """More than three words, not counting function words: "corn on the cob" is two."""
    return sum(w not in STOPWORDS for w in span) > 3


# forms of one function word, and prepositions of place that ask the same: "at the finals" / "in the finals"
_FORMS = (
    frozenset({"is", "are", "was", "were", "am", "be"}),
    frozenset({"do", "does", "did"}),
    frozenset({"has", "have", "had"}),
    frozenset({"a", "an", "the"}),
    frozenset({"at", "in"}),
)


def _inflected(op: tuple[str, int, int, int, int], wa: list[str], wb: list[str]) -> bool:
    """A replaced span whose words are the other side's, word for word, in another number or tense:
    "designs are" / "design is"."""
    tag, i1, i2, j1, j2 = op
    return (
        tag == "replace"
        and i2 - i1 == j2 - j1
        and all(
            any({x, y} <= forms for forms in _FORMS)
            if x in STOPWORDS or y in STOPWORDS
            else _similar_word(x, y)
            for x, y in zip(wa[i1:i2], wb[j1:j2], strict=True)
        )
    )


def _short_swap(wa: list[str], wb: list[str], changed: Sequence[tuple[str, int, int, int, int]]) -> bool:
    """A short question whose one change is a thing of one or two words put in place of another, two
    or more content words kept around it: "eye contact tips for presentations" / "body language tips
    for presentations", "origami crane instructions" / "origami frog instructions" (too short for the
    ratio the longer swaps need)."""
    if len(changed) != 1 or changed[0][0] != "replace":
        return False
    _, i1, i2, j1, j2 = changed[0]
    # an article changed with the thing counts for nothing: "for a juniper bonsai" / "for an azalea ..."
    out = [w for w in wa[i1:i2] if w not in _ARTICLES]
    put = [w for w in wb[j1:j2] if w not in _ARTICLES]
    if not (1 <= len(out) <= 2 and 1 <= len(put) <= 2 and len(wa) - (i2 - i1) >= 2):
        return False
    kept = [w for w in wa[:i1] + wa[i2:] if _edit_word(w)]
    left, right = _unexplained(
        [w for w in out if _swap_word(w) and w not in wb], [w for w in put if _swap_word(w) and w not in wa]
    )
    return len(kept) >= 2 and len(left) == len(out) and len(right) == len(put)


def _scattered_swap(wa: list[str], wb: list[str]) -> bool:
    """One content word dropped and another put in at a different place, the rest kept ("ground beef"
    / "a beef steak"): the thing asked about changed, though no single span was replaced."""
    pa, pb = _phrases(wa), _phrases(wb)
    left, right = _unexplained(
        [w for w in pa if _swap_word(w) and w not in pb], [w for w in pb if _swap_word(w) and w not in pa]
    )
    return len(left) == 1 and len(right) == 1


def _unexplained(left: list[str], right: list[str]) -> tuple[list[str], list[str]]:
    """The words only one side has, less those the other side's words explain: a unit for a unit is
    the number rule's ("in kg" / "in kilograms", "in kg" / "in lb"), and a spelling variant,
    inflection or near-synonym is the same word."""
    if any(w in LEX.units for w in left) and any(w in LEX.units for w in right):
        left, right = [w for w in left if w not in LEX.units], [w for w in right if w not in LEX.units]
    left = [
        w for w in left if not any(_similar_word(w, v) or _synonyms(w, v) or _unaffixed(w, v) for v in right)
    ]
    right = [
        w for w in right if not any(_similar_word(w, v) or _synonyms(w, v) or _unaffixed(w, v) for v in left)
    ]
    return left, right


def _unaffixed(x: str, y: str) -> bool:
    """One word is the other with a negating prefix: "unused" / "use" (whose negation the negation rule
    weighs: "unused tickets" / "tickets I didn't use")."""
    return any(lemmas(base) & lemmas(v) for u, v in ((x, y), (y, x)) for base in unprefixed(u))


# -- the public decisions ------------------------------------------------------------------------

RULES: tuple[str, ...] = tuple(REGISTRY)


def compare(a: Features, b: Features, rules: tuple[str, ...] = RULES) -> str | None:
    """None when b may reuse a's answer; otherwise the name of the first rule that refused. A word one
    side hyphenates and the other writes as one is read as one word on both (see
    :func:`_hyphens_joined`)."""
    a, b = _hyphens_joined(a, b), _hyphens_joined(b, a)
    for name in rules:
        if REGISTRY[name](a, b):
            return name
    return None


_HYPHENATED = re.compile(r"\b([a-z]+)-([a-z]+)\b", re.IGNORECASE)


def _hyphens_joined(f: Features, other: Features) -> Features:
    """f read again with each hyphenated word that the other side writes as one word joined: "Wi-Fi"
    against "wifi", so that swapping the two is seen ("my Wi-Fi is fast but Ethernet slow" / "my ethernet
    is fast but wifi slow") and neither side has a word the other lacks."""
    if "-" not in f.raw:
        return f  # most questions: no regex pass on the hot path
    theirs = set(other.words)

    def join(m: re.Match[str]) -> str:
        one = m.group(1) + m.group(2)
        return one if one.lower() in theirs else m.group(0)

    text = _HYPHENATED.sub(join, f.raw)
    return f if text == f.raw else features(text)


def _people(a: Features, b: Features) -> bool:
    return _classes(a, b) != _classes(b, a)


def compare_context(a: Features, b: Features) -> str | None:
    """The facts of two earlier conversations must agree before their last turns may share an answer:
    the same quantities, dates, entities and people ("six months" = "6 months")."""
    if not same_quantities(a, b):
        return "number"
    if set(a.times) != set(b.times):
        return "date"
    if entity(a, b):
        return "entity"
    if _people(a, b):
        return "scope"
    return None


def near_duplicate(a: str, b: str) -> bool:
    """The same text up to typos, case and punctuation ("chnage the email adress" / "change the email
    address"). Subword embeddings score such typos low, so a near duplicate may be served below the
    similarity threshold; it still has to pass :func:`compare` like any candidate."""
    x = " ".join(WORD.findall(fold(a).lower()))
    y = " ".join(WORD.findall(fold(b).lower()))
    return bool(x) and SequenceMatcher(None, x, y, autojunk=False).ratio() >= 0.9
