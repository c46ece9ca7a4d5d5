"""Pick a reranker checkpoint on the DEV slice of the train modules (never on held-out).

    python -m sluice.retrieval.training.dev tests/data/retrieval build/reranker2/weights-*.npz
    SPLIT=heldout python -m sluice.retrieval.training.dev tests/data/retrieval CHOSEN.npz  # once

Each checkpoint is exported to int8 ONNX (`cache.semantic.training.export`) beside its weights
and scored on the dev questions (`groups.is_dev`: train-split modules the training groups left
out): document-level nDCG@10 of hybrid RRF and the cross-encoder's order alone. Its worth as a
feature of the shipped reranker: `training.fusion --cross CHECKPOINT.onnx` (DEV choice).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sluice.cache.semantic.training.export import export
from sluice.embed import get_embedder
from sluice.retrieval.benchdata import load
from sluice.retrieval.evaluate import build_index, embed_all, evaluate
from sluice.retrieval.index import Hit
from sluice.retrieval.rerank import Reranker
from sluice.retrieval.training.groups import is_dev


def main(folder: Path, checkpoints: list[Path]) -> None:
    docs, questions = load(folder)
    embedder = get_embedder()
    cache = folder.parent.parent.parent / "build" / "retrieval"
    index = build_index(docs, embedder, cache)
    split = os.environ.get("SPLIT", "dev")
    dev = [q for q in questions if (q.heldout if split == "heldout" else is_dev(q.group))]
    vectors = embed_all(embedder, [q.text for q in dev], cache)
    base = evaluate(index, dev, vectors, "hybrid").means()["nDCG@10"]
    sparse = evaluate(index, dev, vectors, "bm25").means()["nDCG@10"]
    dense = evaluate(index, dev, vectors, "dense").means()["nDCG@10"]
    sys.stdout.write(
        f"{split}: {len(dev)} questions; nDCG@10 BM25 {sparse} dense {dense} hybrid {base}\n"
    )
    for weights in checkpoints:
        onnx = weights.with_suffix(".onnx")
        if not onnx.is_file():
            export(weights, onnx)
        reranker = Reranker(onnx, threads=2)

        def alone(query: str, hits: list[Hit], r: Reranker = reranker) -> list[Hit]:
            head = hits[:20]
            scores = r.scores(query, [h.chunk.indexed_text for h in head])
            order = sorted(range(len(head)), key=lambda i: -scores[i])
            return [head[i] for i in order] + hits[20:]

        only = evaluate(index, dev, vectors, "hybrid", alone).means()["nDCG@10"]
        sys.stdout.write(f"{weights.name}: cross-encoder order alone {only}\n")
        sys.stdout.flush()
        reranker.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]])
