"""Fine-tune the retrieval reranker: a MiniLM cross-encoder over "[CLS] query [SEP] passage".

    python -m sluice.retrieval.training.train build/reranker/train.jsonl build/reranker
    python -m sluice.cache.semantic.training.export build/reranker/weights.npz \
        src/sluice/retrieval/models/reranker.onnx

Training only (`pip install torch==2.13.0`, the `train` extra). The network and the ONNX
export are the semantic cache's pair verifier's (`sluice.cache.semantic.training`: the first
layers of the shipped all-MiniLM-L6-v2, mean pooling, one linear unit, sigmoid), trained here
on (question, passage, relevant?) pairs in the fixed order query-first, since relevance is not
symmetric. Time-bounded (`--minutes`) because the build machine is shared.
"""

from __future__ import annotations

import argparse
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


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--max-len", type=int, default=160)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--freeze-layers", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=22.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--listwise",
        action="store_true",
        help="rows are groups {q, pos, negs} (training.groups); softmax loss, --batch groups",
    )
    ap.add_argument("--checkpoint-minutes", type=float, default=0.0)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    folder = model_files.model_dir()
    shape = model_files.read_shape(folder)
    tokenizer = model_files.read_tokenizer(folder, args.max_len)
    model = build_model(model_files.read_weights(folder), shape, args.layers)
    frozen = ("word.", "pos.", "seg.", "ln.", *(f"layers.{i}." for i in range(args.freeze_layers)))
    for name, param in model.named_parameters():
        param.requires_grad = not name.startswith(frozen)
    rows: list[dict[str, Any]] = [
        json.loads(line) for line in Path(args.data).read_text().splitlines() if line.strip()
    ]
    if args.listwise:
        _listwise(args, model, tokenizer, rows, rng, torch)
        return
    positives = sum(1 for r in rows if r["label"] > 0)
    loss_fn = torch.nn.BCEWithLogitsLoss(
        pos_weight=torch.tensor((len(rows) - positives) / max(positives, 1))
    )
    head = [p for n, p in model.named_parameters() if n.startswith("head.")]
    body = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("head.")]
    opt = torch.optim.AdamW([{"params": body, "lr": args.lr}, {"params": head, "lr": 1e-3}])
    steps = args.epochs * math.ceil(len(rows) / args.batch)
    warm = max(1, steps // 16)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.05, (steps - s) / max(1, steps - warm))
    )
    started, step = time.monotonic(), 0
    deadline = started + args.minutes * 60
    model.train()
    for epoch in range(args.epochs):
        rng.shuffle(rows)
        for start in range(0, len(rows), args.batch):
            chunk = rows[start : start + args.batch]
            enc = tokenizer.encode_batch([(r["q"], r["p"]) for r in chunk])
            ids = torch.tensor([e.ids for e in enc])
            types = torch.tensor([e.type_ids for e in enc])
            mask = torch.tensor([e.attention_mask for e in enc])
            labels = torch.tensor([float(r["label"]) for r in chunk])
            loss = loss_fn(model(ids, types, mask), labels)
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
            if time.monotonic() > deadline:
                break
        if time.monotonic() > deadline:
            break
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "weights.npz", **export_weights(model, args.layers))  # type: ignore[arg-type]
    meta = dict(vars(args)) | {
        "pairs": len(rows),
        "steps_done": step,
        "steps_planned": steps,
        "seconds": round(time.monotonic() - started),
    }
    (out / "train.json").write_text(json.dumps(meta, indent=2))


def _listwise(
    args: argparse.Namespace, model: Any, tokenizer: Any, rows: list[dict[str, Any]],
    rng: random.Random, torch: Any,
) -> None:  # fmt: skip
    """Softmax cross-entropy over (positive, negatives) per query; checkpoints on a timer."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    head = [p for n, p in model.named_parameters() if n.startswith("head.")]
    body = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("head.")]
    opt = torch.optim.AdamW([{"params": body, "lr": args.lr}, {"params": head, "lr": 1e-3}])
    steps = args.epochs * math.ceil(len(rows) / args.batch)
    warm = max(1, steps // 16)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.05, (steps - s) / max(1, steps - warm))
    )
    started = time.monotonic()
    deadline, next_ckpt = started + args.minutes * 60, started + args.checkpoint_minutes * 60
    step, running = 0, 0.0
    model.train()

    def save(name: str) -> None:
        np.savez(out / name, **export_weights(model, args.layers))  # type: ignore[arg-type]
        meta = dict(vars(args)) | {
            "groups": len(rows),
            "steps_done": step,
            "steps_planned": steps,
            "seconds": round(time.monotonic() - started),
        }
        (out / f"{name}.json").write_text(json.dumps(meta, indent=2))

    for _epoch in range(args.epochs):
        rng.shuffle(rows)
        for start in range(0, len(rows), args.batch):
            chunk = rows[start : start + args.batch]
            pairs = [(r["q"], p) for r in chunk for p in [r["pos"], *r["negs"]]]
            enc = tokenizer.encode_batch(pairs)
            ids = torch.tensor([e.ids for e in enc])
            types = torch.tensor([e.type_ids for e in enc])
            mask = torch.tensor([e.attention_mask for e in enc])
            logits = model(ids, types, mask).view(len(chunk), -1)
            loss = torch.nn.functional.cross_entropy(
                logits, torch.zeros(len(chunk), dtype=torch.long)
            )
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            running = 0.95 * running + 0.05 * loss.item() if step > 1 else loss.item()
            if step % 10 == 0:
                took = time.monotonic() - started
                sys.stdout.write(f"step {step}/{steps} loss~{running:.4f} {took:.0f}s\n")
                sys.stdout.flush()
            now = time.monotonic()
            if args.checkpoint_minutes and now > next_ckpt:
                save(f"weights-{step:04d}.npz")
                next_ckpt = now + args.checkpoint_minutes * 60
            if now > deadline:
                break
        if time.monotonic() > deadline:
            break
    save("weights.npz")


if __name__ == "__main__":
    main(sys.argv[1:])
