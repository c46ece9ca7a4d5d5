"""`sluice bench retrieval`: retrieval quality on the shipped benchmark, search latency at
10k and 100k chunks, ingest throughput.

Quality (tests/data/retrieval: 1,165 standard-library documents, 364 paraphrased questions
with graded relevance, split by module; see `sluice.retrieval.benchdata`): recall@5,
recall@20, MRR@10 and nDCG@10 at document level for BM25, dense (MiniLM), hybrid RRF and
hybrid + the shipped reranker, on the held-out questions (whose modules the reranker never
saw) and, for reference, the train questions.

Latency: one query against an index of N chunks — BM25 scoring over all chunks, exact cosine,
RRF — with texts sampled from the corpus's vocabulary and random unit vectors (embedding 100k
chunks would take hours here); the query's own embedding and the rerank of the top 20 are
timed separately, on the real corpus. Ingest: chunk + embed + write to SQLite, real documents.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from sluice.embed import get_embedder
from sluice.retrieval import rerank as rerank_mod
from sluice.retrieval.benchdata import load
from sluice.retrieval.chunking import chunk_text
from sluice.retrieval.evaluate import build_index, embed_all, evaluate
from sluice.retrieval.index import CollectionIndex, Hit, IndexedChunk
from sluice.retrieval.store import FileRow, StoreRow, VectorStoreDB


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(values), q)), 2)


def quality(folder: Path, cache_dir: Path) -> dict[str, Any]:
    docs, questions = load(folder)
    embedder = get_embedder()
    index = build_index(docs, embedder, cache_dir)
    vectors = embed_all(embedder, [q.text for q in questions], cache_dir)
    reranker = rerank_mod.get_reranker() if rerank_mod.available() else None

    def rerank(query: str, hits: list[Hit]) -> list[Hit]:
        assert reranker is not None
        return reranker.rerank(query, hits, top=20)

    out: dict[str, Any] = {"documents": len(docs), "chunks": len(index), "splits": {}}
    for split, heldout in (("held-out", True), ("train", False)):
        chosen = [i for i, q in enumerate(questions) if q.heldout == heldout]
        qs, vs = [questions[i] for i in chosen], vectors[chosen]
        rows = {
            "BM25": evaluate(index, qs, vs, "bm25").means(),
            "dense": evaluate(index, qs, vs, "dense").means(),
            "hybrid RRF": evaluate(index, qs, vs, "hybrid").means(),
        }
        if reranker is not None:
            rows["hybrid + rerank"] = evaluate(index, qs, vs, "hybrid", rerank).means()
        out["splits"][split] = {"questions": len(qs), "methods": rows}
    return out


def latency(folder: Path, sizes: list[int], queries: int) -> dict[str, Any]:
    docs, questions = load(folder)
    rng = random.Random(5)
    words = " ".join(docs.values()).split()
    qs = [q.text for q in questions]
    out: dict[str, Any] = {}
    for n in sizes:
        chunks = [
            IndexedChunk(
                f"c{i}",
                f"f{i // 8}",
                f"f{i // 8}.txt",
                i % 8,
                " ".join(rng.choices(words, k=60)),
                "",
                80,
            )
            for i in range(n)
        ]
        vectors = np.random.default_rng(1).standard_normal((n, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        index = CollectionIndex()
        t0 = time.perf_counter()
        index.add(chunks, vectors)
        index.prepare()
        build_s = time.perf_counter() - t0
        qv = np.random.default_rng(2).standard_normal((queries, 384)).astype(np.float32)
        qv /= np.linalg.norm(qv, axis=1, keepdims=True)
        times = []
        for i in range(queries):
            t = time.perf_counter()
            index.search(qs[i % len(qs)], qv[i], 20, mode="hybrid")
            times.append((time.perf_counter() - t) * 1000)
        out[str(n)] = {
            "p50_ms": _pct(times, 50),
            "p99_ms": _pct(times, 99),
            "index_build_s": round(build_s, 2),
        }
    embedder = get_embedder()
    embedder.embed_sync(["warm up"])
    embed_ms = []
    for q in qs[:queries]:
        t = time.perf_counter()
        embedder.embed_sync([q])
        embed_ms.append((time.perf_counter() - t) * 1000)
    out["query_embedding"] = {"p50_ms": _pct(embed_ms, 50), "p99_ms": _pct(embed_ms, 99)}
    if rerank_mod.available():
        out["rerank_top20"] = rerank_latency(folder, max(10, queries // 5))
    return out


def rerank_latency(folder: Path, queries: int) -> dict[str, Any]:
    """The shipped reranker on the real hybrid top 20 of real questions, one thread."""
    docs, questions = load(folder)
    embedder = get_embedder()
    cache_dir = Path("build/retrieval")
    index = build_index(docs, embedder, cache_dir)
    qs = questions[:queries]
    vectors = embed_all(embedder, [q.text for q in qs], cache_dir)
    reranker = rerank_mod.get_reranker()
    heads = [index.search(q.text, v, 20, mode="hybrid") for q, v in zip(qs, vectors, strict=True)]
    reranker.rerank(qs[0].text, heads[0], top=20)  # load models
    times = []
    for q, hits in zip(qs, heads, strict=True):
        t = time.perf_counter()
        reranker.rerank(q.text, hits, top=20)
        times.append((time.perf_counter() - t) * 1000)
    return {"p50_ms": _pct(times, 50), "p99_ms": _pct(times, 99), "queries": len(times)}


def ingest(folder: Path, count: int) -> dict[str, Any]:
    docs, _ = load(folder)
    chosen = list(docs.items())[:count]
    embedder = get_embedder()
    embedder.embed_sync(["warm up"])
    with tempfile.TemporaryDirectory() as tmp:
        db = VectorStoreDB(f"sqlite:///{tmp}/bench.db")
        db.migrate()
        now = time.time()
        db.create_store(StoreRow("vs_bench", "t", None, {}, None, now, now, 0))
        total_bytes = chunks_done = 0
        t0 = time.perf_counter()
        for doc_id, text in chosen:
            row = FileRow(
                "vs_bench", doc_id, "t", doc_id, "in_progress", None, {}, {}, None, 0, time.time()
            )
            db.add_file(row)
            pieces = chunk_text(text, 400)
            chunks = [
                IndexedChunk(
                    f"vs_bench:{doc_id}:{c.seq}",
                    doc_id,
                    doc_id,
                    c.seq,
                    c.text,
                    c.heading,
                    c.tokens,
                    {},
                    c.sentences,
                )
                for c in pieces
            ]
            vectors = embedder.embed_sync([c.indexed_text for c in chunks])
            db.finish_file(row, chunks, vectors, len(text))
            total_bytes += len(text.encode())
            chunks_done += len(chunks)
        took = time.perf_counter() - t0
        db.close()
    return {
        "documents": len(chosen),
        "chunks": chunks_done,
        "seconds": round(took, 1),
        "docs_per_s": round(len(chosen) / took, 1),
        "chunks_per_s": round(chunks_done / took, 1),
        "kb_per_s": round(total_bytes / 1024 / took, 1),
    }


def run(folder: str, sizes: list[int], queries: int, ingest_docs: int, as_json: bool) -> str:
    data = Path(folder)
    cache_dir = Path("build/retrieval")
    result: dict[str, Any] = {
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "quality": quality(data, cache_dir),
        "latency": latency(data, sizes, queries) if queries else {},
        "ingest": ingest(data, ingest_docs) if ingest_docs else {},
    }
    if as_json:
        return json.dumps(result, indent=2)
    lines = [f"load average {result['load_average']}"]
    q = result["quality"]
    lines.append(f"corpus: {q['documents']} documents, {q['chunks']} chunks")
    for split, body in q["splits"].items():
        lines.append(f"\n{split} ({body['questions']} questions)")
        lines.append("| method | recall@5 | recall@20 | MRR@10 | nDCG@10 |")
        lines.append("|---|---|---|---|---|")
        for name, m in body["methods"].items():
            lines.append(
                f"| {name} | {m['recall@5']} | {m['recall@20']} | {m['MRR@10']} | {m['nDCG@10']} |"
            )
    if result["latency"]:
        lines.append("\nlatency: " + json.dumps(result["latency"]))
    if result["ingest"]:
        lines.append("ingest: " + json.dumps(result["ingest"]))
    return "\n".join(lines)
