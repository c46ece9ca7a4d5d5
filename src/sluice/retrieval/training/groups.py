"""Listwise training groups for the reranker (round 2), never touching held-out modules.

    python -m sluice.retrieval.training.groups tests/data/retrieval build/reranker2/groups.jsonl

One row = one query, one positive passage, `NEGATIVES` hard negatives: {"q", "pos", "negs"}.
Why listwise: round 1 trained pointwise (BCE per pair) and, with ~140 steps of CPU budget, learnt
scores that ranked worse than the retrievers; a softmax over (positive, its hard negatives) is
the ranking objective itself and uses every forward pass for a comparison.

Sources, all from TRAIN-split modules minus a DEV slice (`is_dev`) kept for choosing the
checkpoint, so held-out numbers are measured exactly once, at the end:
- the train questions (target chunk positive; hybrid top non-relevant chunks as negatives),
  listed twice since they are the paraphrase signal;
- synthetic queries from train documents: the docstring's first sentence as a query for its own
  document's chunk, with that sentence removed from the positive when enough text remains (so
  the model cannot win by copying words), hard negatives from BM25's and dense's top hits of
  OTHER documents.
"""

from __future__ import annotations

import json
import random
import sys
import zlib
from pathlib import Path
from typing import Any

from sluice.embed import get_embedder
from sluice.retrieval.benchdata import group_of, is_heldout, load
from sluice.retrieval.evaluate import build_index

NEGATIVES = 7


def is_dev(group: str) -> bool:
    """A fixed fifth of the train modules, held back from training to pick checkpoints."""
    return not is_heldout(group) and zlib.crc32(f"dev:{group}".encode()) % 5 == 0


def _first_sentence(body: str) -> str:
    return body.split(". ")[0].split("\n")[0].strip()[:200]


def main(folder: Path, out: Path) -> None:
    rng = random.Random(13)
    docs, questions = load(folder)
    embedder = get_embedder()
    index = build_index(docs, embedder, folder.parent.parent.parent / "build" / "retrieval")
    by_doc: dict[str, list[str]] = {}
    for c in index.chunks:
        by_doc.setdefault(c.file_id, []).append(c.indexed_text)
    usable = {d for d in docs if not is_heldout(group_of(d)) and not is_dev(group_of(d))}
    train = [q for q in questions if not q.heldout and not is_dev(q.group)]
    rows: list[dict[str, Any]] = []
    vectors = embedder.embed_sync([q.text for q in train])
    asked = 0
    for q, v in zip(train, vectors, strict=True):
        target = next(d for d, g in q.relevance.items() if g == 2)
        hits = index.search(q.text, v, 40, mode="hybrid")
        negs = [h.chunk.indexed_text for h in hits if h.chunk.file_id not in q.relevance]
        if len(negs) < NEGATIVES:
            continue
        asked += 1
        for _ in range(2):
            pool = negs[:16]
            rows.append(
                {"q": q.text, "pos": by_doc[target][0], "negs": rng.sample(pool, NEGATIVES)}
            )
    synth: list[tuple[str, str, str]] = []
    for doc in sorted(usable):
        head, _, body = docs[doc].partition("\n\n")
        query = _first_sentence(body)
        if len(query) < 20:
            continue
        rest = body.replace(query, "", 1).strip(" .\n")
        pos = f"{head}\n\n{rest}" if len(rest) >= 40 else by_doc[doc][0]
        synth.append((doc, query, pos))
    qvecs = embedder.embed_sync([s[1] for s in synth])
    for (doc, query, pos), v in zip(synth, qvecs, strict=True):
        sparse = index.search(query, None, 12, mode="bm25")
        dense = index.search(query, v, 12, mode="dense")
        pool = list(
            dict.fromkeys(h.chunk.indexed_text for h in sparse + dense if h.chunk.file_id != doc)
        )
        if len(pool) < NEGATIVES:
            continue
        rows.append({"q": query, "pos": pos, "negs": rng.sample(pool, NEGATIVES)})
    rng.shuffle(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    sys.stdout.write(
        f"{len(rows)} groups: {2 * asked} from {asked} train questions (x2), "
        f"{len(rows) - 2 * asked} synthetic from {len(usable)} train documents\n"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
