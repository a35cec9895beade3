"""Lint of the guard's word tables (sidecar/hermes_sidecar/guard/data): one role per word, no pair twice.

Each check also runs on a broken copy of the tables, so a lint that cannot fail is caught too.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest

from hermes_sidecar.guard.lexicon import LEXICON, Lexicon, data_dir, load, pair_lines


def role_clashes(lex: Lexicon) -> list[str]:
    """Words in two roles that ambiguous.txt does not declare with exactly those readings."""
    out = []
    for (r1, w1), (r2, w2) in itertools.combinations(lex.roles().items(), 2):
        for word in sorted(w1 & w2):
            readings = set(lex.ambiguous.get(word, ()))
            if not {r1, r2} <= readings:
                out.append(f"{word!r} is in {r1} and {r2}")
    return out


def undeclared_readings(lex: Lexicon) -> list[str]:
    """An ambiguous word must really be in every role file it names."""
    roles = lex.roles()
    return [
        f"{word!r}: reading {r!r} but not in {r}.txt"
        for word, readings in lex.ambiguous.items()
        for r in readings
        if r in roles and word not in roles[r]
    ]


def places_in_two_groups(lex: Lexicon) -> list[str]:
    """A place name in two groups of places.txt would make two places one."""
    return [
        f"{word!r} is in {' and '.join(sorted('|'.join(sorted(g)) for g in lex.places if word in g))}"
        for word in sorted(set().union(*lex.places))
        if sum(word in g for g in lex.places) > 1
    ]


def duplicate_pairs(directory: Path, name: str) -> list[str]:
    """An antonym or scale pair listed twice, in either order."""
    seen: dict[frozenset[str], int] = {}
    out = []
    for n, left, right in pair_lines(directory, name):
        for x, y in itertools.product(left, right):
            pair = frozenset((x, y))
            if pair in seen:
                out.append(f"{name}.txt:{n}: {x}/{y} already on line {seen[pair]}")
            seen.setdefault(pair, n)
    return out


def synonym_antonym_clashes(lex: Lexicon) -> list[str]:
    """Two words that one group calls synonyms and an antonym line calls opposites."""
    return [
        f"{x}/{y} are synonyms and antonyms"
        for group in lex.synonyms
        for left, right in lex.antonyms
        for x in group & left
        for y in group & right
    ]


def self_opposites(directory: Path, name: str) -> list[str]:
    return [
        f"{name}.txt:{n}: {sorted(set(left) & set(right))} on both sides"
        for n, left, right in pair_lines(directory, name)
        if set(left) & set(right)
    ]


def test_every_word_has_one_role_unless_declared_ambiguous() -> None:
    assert role_clashes(LEXICON) == []
    assert undeclared_readings(LEXICON) == []


def test_no_pair_is_listed_twice_or_contradicts_itself() -> None:
    for name in ("antonyms", "scales"):
        assert duplicate_pairs(data_dir(), name) == []
        assert self_opposites(data_dir(), name) == []
    assert synonym_antonym_clashes(LEXICON) == []


def test_no_place_name_is_in_two_groups() -> None:
    assert LEXICON.places and places_in_two_groups(LEXICON) == []


def test_the_lint_catches_a_place_name_in_two_groups(broken: Path) -> None:
    path = broken / "places.txt"
    path.write_text(path.read_text() + "britain|great britain\n")
    clash = "'britain' is in britain|british|gb|uk and britain|great britain"
    assert places_in_two_groups(load(broken)) == [clash]


def test_tables_are_not_empty_and_the_may_of_may_i_is_no_month_stopword() -> None:
    assert "may" in LEXICON.months and "may" not in LEXICON.function_words
    assert LEXICON.negators and LEXICON.antonyms and LEXICON.synonyms and LEXICON.scales
    assert {"universal", "single", "several", "article"} == set(LEXICON.quantifiers.values())


def test_every_multiplier_word_is_a_weak_number_with_a_value() -> None:
    # the multiplier check reads each word's value from numbers.txt; a strong number ("two") is a
    # quantity, which the number rule compares already
    assert LEXICON.contexts["multiplier"] <= LEXICON.weak_numbers & set(LEXICON.numbers)


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(data_dir(), copy)
    return copy


def test_the_lint_catches_a_stopword_that_is_also_a_month(broken: Path) -> None:
    path = broken / "function_words.txt"
    path.write_text(path.read_text() + "june\n")
    assert role_clashes(load(broken)) == ["'june' is in function_words and months"]


def test_the_lint_catches_an_antonym_pair_listed_twice_in_the_other_order(broken: Path) -> None:
    path = broken / "antonyms.txt"
    path.write_text(path.read_text() + "closed / open\n")
    [problem] = duplicate_pairs(broken, "antonyms")
    assert "closed" in problem and "open" in problem and "already on line" in problem


def test_the_lint_catches_synonyms_that_are_also_antonyms(broken: Path) -> None:
    path = broken / "synonyms.txt"
    path.write_text(path.read_text() + "enable|disable\n")
    assert synonym_antonym_clashes(load(broken)) == ["enable/disable are synonyms and antonyms"]


def test_a_malformed_line_names_the_file_and_line(broken: Path) -> None:
    (broken / "units.txt").write_text("kg kg\n")
    with pytest.raises(ValueError, match=r"units.txt:1: expected 'word canonical factor \[number\]'"):
        load(broken)


def test_the_tables_ship_inside_the_package() -> None:
    # pyproject.toml [tool.setuptools.package-data] "hermes_sidecar.guard" = ["data/*"]
    root = Path(__file__).resolve().parents[2]
    text = (root / "pyproject.toml").read_text()
    assert '"hermes_sidecar.guard" = ["data/*"]' in text
    assert data_dir().is_dir() and (data_dir() / "antonyms.txt").is_file()
