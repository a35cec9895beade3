"""bench/pair_verifier.py: the cross-encoder is trained on tune halves only, never on a holdout pair
and never on a set it is scored on as new; its cache key follows its inputs; the tallies count each
half and group apart."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

# bench/ is not an installed package: import it from the repository root, as `python -m bench.run` does.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench import pair_verifier as pv
from bench.quality import SETS, load
from bench.report.sections import READ_HOLDOUTS

from hermes_sidecar.evaluate import in_split
from hermes_sidecar.keys import normalise


@pytest.fixture(scope="module")
def items_by_set() -> dict[str, list[dict[str, object]]]:
    return {n: load(SETS[n]) for n in pv.question_sets()}


@pytest.fixture(scope="module")
def trained(items_by_set: dict[str, list[dict[str, object]]]) -> list[dict[str, object]]:
    return pv.training_pairs(items_by_set)


def test_no_holdout_pair_and_no_new_set_reaches_training(items_by_set, trained) -> None:
    texts = {(p["query"], p["document"]) for p in trained}
    holdout = new = tune_kept = 0
    for name, items in items_by_set.items():
        for p in items:
            pair = (normalise(str(p["b"])), normalise(str(p["a"])))
            if not in_split(str(p["id"]), "tune"):
                holdout += 1
                continue
            if pv.group(name) == "new":
                new += 1
                assert pair not in texts, f"{p['id']} of {name}, a set left out of training, was trained on"
            elif pair in texts:
                tune_kept += 1
                assert pair[::-1] in texts, f"{p['id']}: trained in one order only"
    assert holdout and new and tune_kept
    assert len(trained) == 2 * tune_kept
    tune_texts = {
        (normalise(str(p["b"])), normalise(str(p["a"])))
        for items in items_by_set.values()
        for p in items
        if in_split(str(p["id"]), "tune")
    }
    # every trained (query, document) is a tune pair, in one order or the other
    assert all(t in tune_texts or t[::-1] in tune_texts for t in texts)
    # and none is also the pair of a holdout half or of a set left out (some sets repeat a pair)
    scored = {
        frozenset((normalise(str(p["a"])), normalise(str(p["b"]))))
        for name, items in items_by_set.items()
        for p in items
        if not in_split(str(p["id"]), "tune") or pv.group(name) == "new"
    }
    assert not {frozenset(t) for t in texts} & scored
    # what that drops is the handful of repeated pairs, not a half
    assert (
        0.99
        * sum(
            in_split(str(p["id"]), "tune")
            for name, items in items_by_set.items()
            if pv.group(name) != "new"
            for p in items
        )
        < tune_kept
    )


def test_labels_follow_same_answer_in_both_orders(items_by_set, trained) -> None:
    label = {(p["query"], p["document"]): p["label"] for p in trained}
    checked = 0
    for items in items_by_set.values():
        for p in items:
            a, b = normalise(str(p["a"])), normalise(str(p["b"]))
            if (b, a) in label:
                want = 1.0 if p["same_answer"] else 0.0
                assert label[(b, a)] == label[(a, b)] == want, p["id"]
                checked += 1
    assert checked >= len(trained) // 2


def test_groups_keep_fow_cache_apart_and_leave_out_read_holdouts() -> None:
    assert pv.group("questions") == "fow-cache"
    for name in READ_HOLDOUTS:
        assert pv.group(name) is None
    groups = {n: pv.group(n) for n in pv.question_sets()}
    new = [n for n, g in groups.items() if g == "new"]
    trained = [n for n, g in groups.items() if g == "trained"]
    # about one set in FOLDS is new; every other clean set was trained on
    assert 0.1 < len(new) / (len(new) + len(trained)) < 0.35
    assert all(pv.fold(n) == pv.HELD_OUT_FOLD for n in new)
    assert "conversations" not in groups  # chat-history pairs: the trainer reads single questions


def test_fold_is_pinned() -> None:
    # the first byte of sha256(name) mod 5: pinned, so a changed rule cannot silently move sets
    # between the trained and the new group
    assert [pv.fold(n) for n in ("devops", "travel", "questions", "media", "coding")] == [0, 2, 3, 4, 0]


def test_the_model_key_follows_the_pairs() -> None:
    one = pv.pairs_file_bytes([{"query": "q", "document": "d", "label": 1.0}])
    other = pv.pairs_file_bytes([{"query": "q", "document": "d", "label": 0.0}])
    assert pv.model_key(one) == pv.model_key(one)
    assert pv.model_key(one) != pv.model_key(other)


def test_tally_counts_served_should_hit_and_traps() -> None:
    t = pv.Tally()
    items = [{"same_answer": True}, {"same_answer": True}, {"same_answer": False}, {"same_answer": False}]
    assert t.add([True, False, True, False], items) == (1, 2)
    assert (t.hit, t.should, t.wrong, t.traps) == (1, 2, 1, 2)


def test_section_gives_one_row_per_setting_and_group() -> None:
    def tally(sets_over: list[str]) -> dict[str, object]:
        return {"hit": 85, "should": 100, "wrong": 1, "traps": 100, "sets_over": sets_over}

    result = {
        "model": "pair-verifier-x",
        "served_name": pv.SERVED_NAME,
        "training": {"examples": 10, "epochs": 3, "lr": 4e-5, "batch_size": 32, "seed": 1},
        "folds": pv.FOLDS,
        "held_out_fold": pv.HELD_OUT_FOLD,
        "groups": {"new": ["media"], "fow-cache": ["questions"]},
        "settings": [{"name": n, "verifier": v} for n, v in pv.SETTINGS],
        "tallies": {
            n: {
                g: {"tune": tally([]), "holdout": tally(["media"]), "holdout:scope": tally(["media", "x"])}
                for g in ("new", "fow-cache")
            }
            for n, _ in pv.SETTINGS
        },
    }
    lines = pv.section({"result": result})
    text = "\n".join(lines)
    assert "**sets it never saw (left out of training whole)**, 1 set" in text
    assert "fold 4 of 5" in text and "10 examples, 3 epochs" in text
    assert "trained on (their tune halves)" not in text  # a group with no sets gets no table
    rows = [line for line in lines if line.startswith("| ") and "setting" not in line]
    assert len(rows) == 2 * len(pv.SETTINGS)
    assert rows[0].endswith("| 85.0% (76.7% to 90.7%) | 1.0% (0.2% to 5.4%) | 1.0% (0.2% to 5.4%) | 1 / 2 |")
    assert "hard negative" not in text
    # a setting that overturns rules says what bar it set and how it was chosen; a JSON without one
    # (an older run's) does not
    assert "served only at `>= overruleMinScore`" in text and "is not blind either" in text
    result["settings"] = [st for st in result["settings"] if not (st["verifier"] or {}).get("overrule")]
    assert "is not blind either" not in "\n".join(pv.section({"result": result}))
    # the variant trained with mined negatives says so, with the band it mined in
    result["hard_negatives"] = {"band": [0.8, 0.9]}
    mined = "\n".join(pv.section({"result": result}))
    assert "one hard negative mined per tune pair" in mined and "at cosine 0.8 to 0.9 (of 60" in mined


def test_the_grid_section_names_each_choice_and_its_holdout_figures() -> None:
    def fig(hit: int, wrong: int, over: int) -> dict[str, object]:
        return {"hit": hit, "should": 100, "wrong": wrong, "traps": 100, "sets_over": ["s"] * over}

    holdout = {
        g: {**fig(90, 1, 1), "scope_wrong": 0, "scope_traps": 20} for g in ("new", "trained", "fow-cache")
    }
    grid = {
        "settings": 12345,
        "pooled": {
            "setting": {
                "minSimilarity": 0.7,
                "minScore": 0.5,
                "overrule": ["scope"],
                "overruleMinScore": 0.998,
            },
            "tune": {},
            "holdout": holdout,
        },
        "per_set": {
            "distinct_settings": 7,
            "holdout": {"new": {**fig(93, 3, 2), "scope_wrong": 1, "scope_traps": 20}},
        },
    }
    text = "\n".join(pv.grid_section(grid))
    assert "a grid of 12,345 settings" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "chosen" not in line]
    assert rows[0] == (
        "| one for all, from the never-trained sets' tune halves | cosine >= 0.7, score >= 0.5; overturns "
        "scope at >= 0.998 | new | 90.0% (82.6% to 94.5%) | 1.0% (0.2% to 5.4%) | 0.0% (0.0% to 16.1%) | 1 |"
    )
    assert len(rows) == 4 and rows[3].startswith(
        "| each set's own, from its own tune half | 7 different settings | new"
    )
    # no setting met the bound: only the per-set row
    del grid["pooled"]
    assert sum(line.startswith("| one for all") for line in pv.grid_section(grid)) == 0
    assert (
        pv.describe({"minSimilarity": 0.85, "minScore": 0.9, "overrule": []})
        == "cosine >= 0.85, score >= 0.9"
    )


def test_quick_mode_skips_training() -> None:
    from bench import pair_verifier_mined
    from bench.common import Skip

    class Ctx:
        mode = "quick"

    with pytest.raises(Skip, match=r"scripts/bench\.sh full pair-verifier`"):
        pv.run(Ctx())  # type: ignore[arg-type]
    with pytest.raises(Skip, match=r"scripts/bench\.sh full pair-verifier-mined`"):
        pair_verifier_mined.run(Ctx())  # type: ignore[arg-type]


def test_both_trainings_are_bench_measurements_with_a_section() -> None:
    from bench.report.sections import SECTIONS
    from bench.run import MEASUREMENTS

    assert MEASUREMENTS["pair-verifier-mined"][0] == "bench.pair_verifier_mined"
    keys = [s.key for s in SECTIONS]
    assert keys.index("pair-verifier") + 1 == keys.index("pair-verifier-mined")
    bench_sh = (Path(__file__).resolve().parents[2] / "scripts" / "bench.sh").read_text()
    assert " pair-verifier pair-verifier-mined " in bench_sh


TRAINER = Path(__file__).resolve().parents[2] / "scripts" / "verifier" / "train_cross_encoder.py"


@pytest.mark.parametrize(
    ("content", "args", "said"),
    [
        ('{"query": "a", "document": "b", "label": 2}\n', [], "pairs.jsonl:1: 'label' is 2; it must be 1"),
        ('{"query": "a", "document": "b", "label": true}\n', [], "'label' is True"),
        (
            '{"query": "a", "label": 1}\n',
            [],
            "pairs.jsonl:1: 'document' is None; it must be a non-empty string",
        ),
        ('{"query": "a", "document": "b", "label": 1}\nnot json\n', [], "pairs.jsonl:2: not JSON"),
        ("\n", [], "has no pairs"),
        ('{"query": "a", "document": "b", "label": 1}\n', ["--epochs", "0"], "--epochs 0 must be > 0"),
    ],
)
def test_the_trainer_refuses_bad_input_naming_line_field_and_value(
    tmp_path: Path, content: str, args: list[str], said: str
) -> None:
    import subprocess

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(content)
    # refused before torch is imported, so the project's venv (which has no torch) runs it
    out = subprocess.run(
        [
            sys.executable,
            str(TRAINER),
            "--base",
            str(tmp_path),
            "--pairs",
            str(pairs),
            "--out",
            str(tmp_path / "o"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert said in out.stderr
    assert not (tmp_path / "o").exists()


def test_a_given_model_must_have_been_trained_on_the_chosen_pairs(tmp_path: Path, monkeypatch) -> None:
    class Memo:  # the real embedder takes minutes over every set; the refusal does not depend on it
        def batch(self, texts):
            return np.ones((len(texts), 2))

    monkeypatch.setattr(pv, "hermes_embedder", Memo)
    (tmp_path / "train-args.json").write_text('{"pairs_sha256": "0000"}')
    with pytest.raises(ValueError, match="was trained on pairs 0000, not on the ones chosen here"):
        pv.measure_all(1, tmp_path)  # refused before vLLM is started on port 1


def _angles(table: dict[str, float]):
    """An embedder whose cosines are chosen: each text a unit vector at an angle in one plane."""

    def embed(texts):
        return np.array([[np.cos(table[t]), np.sin(table[t])] for t in texts])

    return embed


def _pair(pid: str, a: str, b: str, same: bool) -> dict[str, object]:
    return {"id": pid, "a": a, "b": b, "same_answer": same}


def test_a_hard_negative_is_a_different_question_of_the_same_set_within_the_band() -> None:
    delete_msg, remove_msg = "how do I delete a message", "how do I remove a message"
    delete_acct, close_acct = "how do I delete my account", "how do I close my account"
    embed = _angles({delete_msg: 0.0, remove_msg: -0.05, delete_acct: 0.55, close_acct: 0.6})
    tune = {"s": [_pair("1", delete_msg, remove_msg, True), _pair("2", delete_acct, close_acct, True)]}
    # cos(0.55) = 0.85: within the band, and only should-hit pairs join the texts, never these two.
    # The second anchor finds the same pair the other way round: mined once.
    assert pv.hard_negatives(tune, embed, set()) == [(delete_msg, delete_acct)]
    # a pair the set scores is never mined: the next text in the band is
    scored = pv.hard_negatives(tune, embed, {frozenset((delete_msg, delete_acct))})
    assert scored == [(delete_msg, close_acct), (delete_acct, remove_msg)]
    # the same four texts in two sets: nothing is mined across sets
    split = {"s": tune["s"][:1], "t": tune["s"][1:]}
    assert pv.hard_negatives(split, embed, set()) == []


def test_no_hard_negative_joins_texts_that_are_the_same_question() -> None:
    safe, safe_loose = "Is pilates safe in pregnancy?", "is pilates safe in pregnancy"
    may, avoid = "can I do pilates while pregnant", "which pilates moves should I avoid when pregnant"
    near, nearer, other = (
        "how do I string a racket",
        "how do I restring a racket",
        "what tension for a racket",
    )
    tune = {
        "s": [
            _pair("1", safe, may, True),
            # equal to the first anchor once case and punctuation are dropped (cosine 0.88, in the band)
            _pair("2", safe_loose, avoid, False),
            # cos(0.3) = 0.96: above the band, taken for a paraphrase; cos(0.52) = 0.87 is mined instead
            _pair("3", near, "unrelated", False),
            _pair("4", nearer, "other unrelated", False),
            _pair("5", other, "third unrelated", False),
        ]
    }
    embed = _angles(
        {
            safe: 0.0,
            may: 0.1,
            safe_loose: 0.5,
            avoid: 3.0,
            near: 1.5,
            nearer: 1.8,
            other: 2.02,
            "unrelated": 4.0,
            "other unrelated": 4.6,
            "third unrelated": 5.2,
        }
    )
    assert {frozenset(p) for p in pv.hard_negatives(tune, embed, set())} == {frozenset((near, other))}


def test_hard_negatives_come_only_from_trained_tune_halves(items_by_set, trained) -> None:
    rng = np.random.default_rng(0)
    vectors: dict[str, np.ndarray] = {}

    def embed(texts):  # every text near one direction: cosines spread around 0.72, many in the band
        return np.array([vectors.setdefault(t, np.r_[1.0, 0.62 * _unit(rng)]) for t in texts])

    with_negatives = pv.training_pairs(items_by_set, embed)
    assert with_negatives[: len(trained)] == trained
    mined = with_negatives[len(trained) :]
    assert mined and all(p["label"] == 0.0 for p in mined)
    assert len({frozenset((p["query"], p["document"])) for p in mined}) == len(mined) // 2  # both orders
    trained_texts: dict[str, set[str]] = {}
    scored = set()
    for name, items in items_by_set.items():
        for p in items:
            pair = frozenset((normalise(str(p["a"])), normalise(str(p["b"]))))
            if in_split(str(p["id"]), "tune") and pv.group(name) != "new":
                for t in pair:
                    trained_texts.setdefault(t, set()).add(name)
            else:
                scored.add(pair)
    for p in mined:
        q, d = p["query"], p["document"]
        assert frozenset((q, d)) not in scored
        # both texts from the tune half of one set that is trained on
        assert trained_texts.get(q, set()) & trained_texts.get(d, set()), (q, d)


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(8)
    return v / np.linalg.norm(v)


def test_reach_counts_the_should_hit_holdout_pairs_at_or_above_the_floor(monkeypatch) -> None:
    holdout = [i for i in map(str, range(200)) if not in_split(i, "tune")][:3]
    tune = next(i for i in map(str, range(200)) if in_split(i, "tune"))
    items = [
        _pair(holdout[0], "close", "closer", True),  # cos(0.5) = 0.88: reached from 0.7
        _pair(holdout[1], "far", "farther", True),  # cos(1.0) = 0.54: not
        _pair(holdout[2], "trap", "trapped", False),  # a trap: not counted
        _pair(tune, "tuned", "tuned too", True),  # tune half: not counted
    ]
    embed = _angles(
        {
            "close": 0.0,
            "closer": 0.5,
            "far": 0.0,
            "farther": 1.0,
            "trap": 0.0,
            "trapped": 0.1,
            "tuned": 0,
            "tuned too": 2,
        }
    )
    monkeypatch.setattr(pv, "group", lambda name: {"a": "new", "b": None}[name])
    assert pv.reach({"a": items, "b": items}, embed, 0.7) == {"new": (1, 2)}
    assert pv.reach({"a": items}, embed, 0.5) == {"new": (2, 2)}
