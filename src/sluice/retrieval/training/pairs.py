"""Training pairs for the reranker, from the benchmark's TRAIN split only.

    python -m sluice.retrieval.training.pairs tests/data/retrieval build/reranker/train.jsonl

For each train question: its graded documents' chunks are positives (grade 2 → 1.0, grade 1 →
0.5 as a soft label) and the hybrid search's top non-relevant chunks are hard negatives. Added
pseudo-queries: the first sentence of each train-group document that no question targets, with
that document's chunk as positive and BM25's top other chunks as negatives (wording overlaps,
so they teach matching, the real questions teach paraphrase). Held-out groups never appear.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

from sluice.embed import get_embedder
from sluice.retrieval.benchdata import group_of, is_heldout, load
from sluice.retrieval.evaluate import build_index

NEGATIVES = 12
PSEUDO_NEGATIVES = 4


def main(folder: Path, out: Path) -> None:
    rng = random.Random(11)
    docs, questions = load(folder)
    embedder = get_embedder()
    index = build_index(docs, embedder, folder.parent.parent.parent / "build" / "retrieval")
    train = [q for q in questions if not q.heldout]
    vectors = embedder.embed_sync([q.text for q in train])
    rows: list[dict[str, Any]] = []
    by_doc: dict[str, list[str]] = {}
    for c in index.chunks:
        by_doc.setdefault(c.file_id, []).append(c.indexed_text)
    for q, v in zip(train, vectors, strict=True):
        for doc, grade in q.relevance.items():
            for text in by_doc.get(doc, [])[:2]:
                rows.append({"q": q.text, "p": text, "label": 1.0 if grade == 2 else 0.5})
        hits = index.search(q.text, v, 40, mode="hybrid")
        negs = [h.chunk.indexed_text for h in hits if h.chunk.file_id not in q.relevance]
        for text in negs[:NEGATIVES]:
            rows.append({"q": q.text, "p": text, "label": 0.0})
    targeted = {d for q in questions for d in q.relevance}
    pseudo = [d for d in docs if d not in targeted and not is_heldout(group_of(d))]
    rng.shuffle(pseudo)
    for doc in pseudo[:400]:
        body = docs[doc].split("\n\n", 1)[-1]
        query = body.split(". ")[0].split("\n")[0][:200]
        if len(query) < 20:
            continue
        rows.append({"q": query, "p": by_doc[doc][0], "label": 1.0})
        hits = index.search(query, None, 10, mode="bm25")
        negs = [h.chunk.indexed_text for h in hits if h.chunk.file_id != doc]
        for text in negs[:PSEUDO_NEGATIVES]:
            rows.append({"q": query, "p": text, "label": 0.0})
    rng.shuffle(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    positives = sum(1 for r in rows if r["label"] > 0)
    sys.stdout.write(f"{len(rows)} pairs ({positives} positive) from {len(train)} questions\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
