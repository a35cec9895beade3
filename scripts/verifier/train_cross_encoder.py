"""Fine-tune a BERT bi-encoder's weights into a one-label cross-encoder on labelled question pairs.

    <vllm venv>/bin/python scripts/verifier/train_cross_encoder.py --base DIR --pairs PAIRS.jsonl --out DIR

PAIRS.jsonl holds one {"query", "document", "label"} per line (label 1.0: the same answer serves
both; 0.0: it does not). The result is a `BertForSequenceClassification` with one label, which vLLM
serves on `POST /rerank` and `/score` (a sigmoid of the logit), so `cache.guard.verifier` (kind
rerank) can use it as is. Written atomically: built next to OUT, then renamed.

Training: binary cross-entropy on the logit, AdamW (weight decay 0.01), linear warm-up over the
first 10% of the steps then linear decay, gradient norm clipped at 1, inputs cut at 128 tokens.
Everything is seeded and runs on the CPU with a fixed thread count; the same inputs give the same
weights on the same machine (floating-point sums may differ across CPUs). `train-args.json` in
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

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    raw = Path(a.pairs).read_bytes()
    examples = []
    for n, line in enumerate(raw.decode().splitlines(), 1):
        if not line.strip():
            continue
        d = json.loads(line)
        if not (
            isinstance(d.get("query"), str)
            and isinstance(d.get("document"), str)
            and d.get("label") in (0, 1, 0.0, 1.0)
        ):
            print(
                f"train_cross_encoder: {a.pairs}:{n}: need string 'query' and 'document' and 'label' 0 or 1",
                file=sys.stderr,
            )
            return 2
        examples.append((d["query"], d["document"], float(d["label"])))
    if not examples:
        print(f"train_cross_encoder: {a.pairs} has no pairs", file=sys.stderr)
        return 2

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
