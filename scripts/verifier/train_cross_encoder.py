"""Fine-tune a BERT bi-encoder's weights into a one-label cross-encoder on labelled question pairs.

    <vllm venv>/bin/python scripts/verifier/train_cross_encoder.py --base DIR --pairs PAIRS.jsonl --out DIR

PAIRS.jsonl holds one {"query", "document", "label"} per line (label 1.0: the same answer serves
both; 0.0: it does not). The result is a `BertForSequenceClassification` with one label, which vLLM
serves on `POST /rerank` and `/score` (a sigmoid of the logit), so `cache.guard.verifier` (kind
rerank) can use it as is. Written atomically: built next to OUT, then renamed.

Training: binary cross-entropy on the logit, AdamW (weight decay 0.01), linear warm-up over the
first 10% of the steps then linear decay, gradient norm clipped at 1, inputs cut at 128 tokens.
Everything is seeded and runs on the CPU with a fixed thread count: two trainings of the same 200
pairs on one machine, one of them beside another training, wrote byte-identical model.safetensors
(floating-point sums may differ across CPUs). Bad input (a line that is not an object with a
non-empty string query and document and a label 0 or 1) is refused naming the line, before torch
is loaded. `train-args.json` in
OUT records the arguments and the sha256 of the pairs file.

This runs in the vLLM venv (scripts/vllm/install.sh), which has torch and transformers; the
project's own venv does not. bench/pair_verifier.py chooses the pairs (tune halves only) and calls it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import shutil
import sys
import time
from pathlib import Path


def read_pairs(raw: bytes, where: str) -> list[tuple[str, str, float]]:
    """(query, document, label) per line; ValueError naming the line, the field and what would do."""
    examples = []
    for n, line in enumerate(raw.decode().splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}:{n}: not JSON ({exc.msg}); write one object per line") from None
        if not isinstance(d, dict):
            raise ValueError(f"{where}:{n}: {line[:60]!r} is not an object with query, document and label")
        for field in ("query", "document"):
            if not isinstance(d.get(field), str) or not d[field].strip():
                raise ValueError(f"{where}:{n}: '{field}' is {d.get(field)!r}; it must be a non-empty string")
        if d.get("label") not in (0, 1) or isinstance(d.get("label"), bool):
            raise ValueError(
                f"{where}:{n}: 'label' is {d.get('label')!r}; it must be 1 (the same answer serves both) or 0"
            )
        examples.append((d["query"], d["document"], float(d["label"])))
    if not examples:
        raise ValueError(f"{where} has no pairs")
    return examples


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--base",
        required=True,
        help="folder of the BERT weights to start from (config.json, model.safetensors, tokenizer)",
    )
    ap.add_argument("--pairs", required=True, help="JSONL of {query, document, label}")
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=4e-5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    for name in ("epochs", "lr", "batch_size", "threads"):
        if getattr(a, name) <= 0:
            print(
                f"train_cross_encoder: --{name.replace('_', '-')} {getattr(a, name)} must be > 0",
                file=sys.stderr,
            )
            return 2
    try:
        raw = Path(a.pairs).read_bytes()
        examples = read_pairs(raw, a.pairs)
    except (OSError, ValueError) as exc:
        print(f"train_cross_encoder: {exc}", file=sys.stderr)
        return 2

    import torch  # only now: bad input is refused without loading torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    torch.set_num_threads(a.threads)
    tok = AutoTokenizer.from_pretrained(a.base)
    model = AutoModelForSequenceClassification.from_pretrained(a.base, num_labels=1)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01)
    steps = a.epochs * math.ceil(len(examples) / a.batch_size)
    warm = max(1, int(0.1 * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm)))
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    step, started = 0, time.time()
    for epoch in range(a.epochs):
        rng.shuffle(examples)
        total = 0.0
        for i in range(0, len(examples), a.batch_size):
            batch = examples[i : i + a.batch_size]
            enc = tok(
                [q for q, _, _ in batch],
                [d for _, d, _ in batch],
                padding=True,
                truncation=True,
                max_length=128,
                return_tensors="pt",
            )
            loss = loss_fn(model(**enc).logits.squeeze(-1), torch.tensor([y for _, _, y in batch]))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            total += loss.item()
            if step % 100 == 0 or step == steps:
                mean = total / (i // a.batch_size + 1)
                took = time.time() - started
                print(
                    f"epoch {epoch + 1}/{a.epochs} step {step}/{steps} loss {mean:.4f} {took:.0f}s",
                    flush=True,
                )

    out = Path(a.out)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    args = {k: v for k, v in vars(a).items() if k not in ("out", "threads")}
    args["pairs_sha256"] = hashlib.sha256(raw).hexdigest()
    args["examples"] = len(examples)
    (tmp / "train-args.json").write_text(json.dumps(args, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    print(
        f"train_cross_encoder: {len(examples)} examples, {steps} steps, {time.time() - started:.0f}s -> {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
