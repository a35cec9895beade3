"""The guard's word tables, loaded once from the text files in ``data/`` (shipped as package data).

Every file is plain text: ``#`` starts a comment, blank lines are ignored. Three shapes:

- word lists (``function_words``, ``light_words``, ``fillers``, ``negators``, ``weekdays``,
  ``times``): words separated by spaces;
- grouped lists (``months``, ``people``, ``quantifiers``, ``periods``, ``contexts``, ``ambiguous``:
  ``class: words``; ``depth``, ``formats``: ``class: phrase|phrase``);
- relations (``antonyms``: ``a|b / x|y``; ``scales``: ``name: high|... / low|...``; ``synonyms``
  and ``places``: ``a|b|c``; ``numbers``: ``word value [weak]``; ``units``: ``word canonical factor
  [number]``; ``affixes``).

A word has one role (a function word, a month, a quantifier ...) unless ``ambiguous.txt`` declares
its second reading; ``tests/unit/test_guard_lexicon.py`` lints the files for that and for duplicate
pairs. :func:`load` parses a directory, so the lint can check any copy.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

DATA = "data"


@dataclass(frozen=True)
class Lexicon:
    function_words: frozenset[str]
    light_words: frozenset[str]
    fillers: frozenset[str]
    negators: frozenset[str]
    ambiguous: dict[str, tuple[str, ...]]  # word -> its readings (role names, "modal", "verb")
    months: dict[str, str]  # spelling -> month
    weekdays: frozenset[str]
    times: frozenset[str]
    periods: dict[str, str]  # "monthly" -> month
    numbers: dict[str, float]
    weak_numbers: frozenset[str]
    units: dict[str, tuple[str, float]]  # word -> (canonical unit, factor to it)
    number_units: frozenset[str]  # units only right after a number ("7am")
    people: dict[str, str]  # word -> class
    quantifiers: dict[str, str]  # word -> universal | single | several | article
    depth: dict[str, str]  # phrase -> brief | deep
    formats: dict[str, str]  # phrase -> list | table | prose ...
    antonyms: tuple[tuple[frozenset[str], frozenset[str]], ...]
    scales: dict[str, tuple[str, int]]  # word or phrase -> (scale, +1 high end / -1 low end)
    synonyms: tuple[frozenset[str], ...]
    places: tuple[frozenset[str], ...]  # a place and the adjective or short name it goes by
    negating_prefixes: tuple[str, ...]
    negating_suffixes: tuple[str, ...]
    opposed_prefixes: tuple[tuple[str, str], ...]
    particles: dict[str, str]
    contexts: dict[str, frozenset[str]]  # contexts.txt: name -> words

    def roles(self) -> dict[str, frozenset[str]]:
        """Every single-word role, by name: what the lint keeps disjoint."""
        return {
            "function_words": self.function_words,
            "light_words": self.light_words,
            "fillers": self.fillers,
            "negators": self.negators,
            "months": frozenset(self.months),
            "weekdays": self.weekdays,
            "times": self.times,
            "periods": frozenset(self.periods),
            "numbers": frozenset(self.numbers),
            "units": frozenset(self.units),
            "people": frozenset(self.people),
            "quantifiers": frozenset(self.quantifiers),
            "depth": frozenset(p for p in self.depth if " " not in p),
            "formats": frozenset(p for p in self.formats if " " not in p),
        }


def _lines(directory: Path, name: str) -> Iterator[tuple[int, str]]:
    text = (directory / f"{name}.txt").read_text(encoding="utf-8")
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if line:
            yield n, line


def _words(directory: Path, name: str) -> frozenset[str]:
    return frozenset(w for _, line in _lines(directory, name) for w in line.lower().split())


def _grouped(directory: Path, name: str, sep: str | None = None) -> Iterator[tuple[str, list[str]]]:
    for n, line in _lines(directory, name):
        key, colon, rest = line.partition(":")
        if not colon:
            raise ValueError(f"guard data {name}.txt:{n}: expected 'class: words', got {line!r}")
        items = rest.split(sep) if sep else rest.split()
        yield key.strip(), [i.strip().lower() for i in items if i.strip()]


def _by_word(directory: Path, name: str, sep: str | None = None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, items in _grouped(directory, name, sep):
        for item in items:
            out[item] = key
    return out


def pair_lines(directory: Path, name: str) -> list[tuple[int, list[str], list[str]]]:
    """``a|b / x|y`` lines (antonyms, and scales after their ``name:``), for the loader and the lint."""
    out = []
    for n, line in _lines(directory, name):
        body = line.partition(":")[2] if name == "scales" else line
        left, slash, right = body.partition(" / ")
        if not slash:
            raise ValueError(f"guard data {name}.txt:{n}: expected 'a|b / x|y', got {line!r}")
        out.append((n, _split(left), _split(right)))
    return out


def _split(side: str) -> list[str]:
    return [w.strip().lower() for w in side.split("|") if w.strip()]


def load(directory: Path) -> Lexicon:
    months: dict[str, str] = {}
    for month, spellings in _grouped(directory, "months"):
        for s in [month, *spellings]:
            months[s] = month
    numbers: dict[str, float] = {}
    weak: set[str] = set()
    for n, line in _lines(directory, "numbers"):
        parts = line.split()
        try:
            numbers[parts[0]] = float(parts[1])
        except (IndexError, ValueError):
            raise ValueError(
                f"guard data numbers.txt:{n}: expected 'word value [weak]', got {line!r}"
            ) from None
        if parts[2:] == ["weak"]:
            weak.add(parts[0])
    units: dict[str, tuple[str, float]] = {}
    number_units: set[str] = set()
    for n, line in _lines(directory, "units"):
        parts = line.split()
        if len(parts) not in (3, 4) or parts[3:] not in ([], ["number"]):
            raise ValueError(
                f"guard data units.txt:{n}: expected 'word canonical factor [number]', got {line!r}"
            )
        try:
            units[parts[0]] = (parts[1], float(parts[2]))
        except ValueError:
            raise ValueError(f"guard data units.txt:{n}: the factor {parts[2]!r} is not a number") from None
        if parts[3:]:
            number_units.add(parts[0])
    scales: dict[str, tuple[str, int]] = {}
    for (_, high, low), (name, _) in zip(
        pair_lines(directory, "scales"), _grouped(directory, "scales", "|"), strict=True
    ):
        for w in high:
            scales[w] = (name, 1)
        for w in low:
            scales[w] = (name, -1)
    affixes = dict(_grouped(directory, "affixes"))
    return Lexicon(
        function_words=_words(directory, "function_words"),
        light_words=_words(directory, "light_words"),
        fillers=_words(directory, "fillers"),
        negators=_words(directory, "negators"),
        ambiguous={w: tuple(r) for w, r in _grouped(directory, "ambiguous")},
        months=months,
        weekdays=_words(directory, "weekdays"),
        times=_words(directory, "times"),
        periods=_by_word(directory, "periods"),
        numbers=numbers,
        weak_numbers=frozenset(weak),
        units=units,
        number_units=frozenset(number_units),
        people=_by_word(directory, "people"),
        quantifiers=_by_word(directory, "quantifiers"),
        depth=_by_word(directory, "depth", "|"),
        formats=_by_word(directory, "formats", "|"),
        antonyms=tuple((frozenset(a), frozenset(b)) for _, a, b in pair_lines(directory, "antonyms")),
        scales=scales,
        synonyms=tuple(frozenset(_split(line)) for _, line in _lines(directory, "synonyms")),
        places=tuple(frozenset(_split(line)) for _, line in _lines(directory, "places")),
        negating_prefixes=tuple(affixes.get("negating", [])),
        negating_suffixes=tuple(affixes.get("negating-suffix", [])),
        opposed_prefixes=tuple((p.split("/")[0], p.split("/")[1]) for p in affixes.get("opposed", [])),
        contexts={name: frozenset(words) for name, words in _grouped(directory, "contexts")},
        particles={
            x: y
            for p in affixes.get("particles", [])
            for x, y in ((p.split("/")[0], p.split("/")[1]), (p.split("/")[1], p.split("/")[0]))
        },
    )


def data_dir() -> Path:
    """The package's data folder (a real directory: the package is installed unzipped)."""
    return Path(str(resources.files(__package__ or "hermes_sidecar.guard").joinpath(DATA)))


LEXICON = load(data_dir())


def stopwords(lex: Lexicon) -> frozenset[str]:
    """Words that never carry the content of a question: function words, fillers, quantifiers and the
    modal readings of ambiguous words ("may"). What keys.py counts content words without."""
    modal = frozenset(w for w, readings in lex.ambiguous.items() if "modal" in readings)
    base = lex.function_words | lex.light_words | lex.fillers | frozenset(lex.quantifiers) | modal
    return base | frozenset(w.replace("'", "") for w in base)
