"""The retrieval service against real stores: a file left `in_progress` by a killed process
is ingested again at the next start; a file removed during ingest leaves no chunks; a
replica's index follows the database version; SQLite and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from sluice.files.store import FileStore
from sluice.retrieval.config import RetrievalConfig
from sluice.retrieval.service import STALE_INGEST_S, RetrievalService
from sluice.retrieval.store import FileRow, StoreRow
from tests.governance_rig import postgres_schema

TEXT = b"# Notes\n\nThe lighthouse keeper logs every ship that passes the northern cape."


class _FakeEmbedder:
    """Deterministic bag-of-words vectors (no model needed for these storage tests)."""

    dim = 384

    def embed_sync(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, hash(word) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)

    async def embed(self, texts: list[str]) -> np.ndarray:
        return self.embed_sync(texts)


def _service(url: str, files: FileStore) -> RetrievalService:
    fake = _FakeEmbedder()
    return RetrievalService(RetrievalConfig(rerank=False), files, lambda: fake, url)


async def _scenario(url: str, tmp_path: Path) -> None:
    files = FileStore(url, tmp_path / "blobs")
    await files.start()
    uploaded = await files.create("acme", "notes.md", "assistants", TEXT)
    first = _service(url, files)
    await first.start()
    made = await first.create_store("acme", {"name": "kb"})
    # A process died mid-ingest: its row says in_progress, no chunks were written.
    crashed = FileRow(made["id"], uploaded.id, "acme", "notes.md", "in_progress", None, {},
                      {"type": "static", "static": {"max_chunk_size_tokens": 400,
                                                    "chunk_overlap_tokens": 0}},
                      None, 0, time.time() - STALE_INGEST_S - 5)  # fmt: skip
    await first._run(first.db.add_file, crashed)
    await first.close()

    second = _service(url, files)
    await second.start()  # finds the stale in_progress file and ingests it again
    await second.wait_idle()
    got = await second.get_file("acme", made["id"], uploaded.id)
    assert got["status"] == "completed" and got["usage_bytes"] == len(TEXT)
    found = await second.search("acme", [made["id"]], "who records passing ships?")
    assert found.results and "lighthouse" in found.results[0].text
    # Another replica (third) sees the same store; a delete on second moves its version.
    third = _service(url, files)
    await third.start()
    assert (await third.search("acme", [made["id"]], "lighthouse")).results
    await second.delete_file("acme", made["id"], uploaded.id)
    assert (await third.search("acme", [made["id"]], "lighthouse")).results == []
    # A file removed while its ingest runs leaves no chunks behind.
    row = await second.add_file("acme", made["id"], {"file_id": uploaded.id})
    await second.delete_file("acme", made["id"], row["id"])
    await second.wait_idle()
    version, chunks, _ = await second._run(second.db.load_chunks, made["id"])
    assert chunks == [] and version > 0
    with pytest.raises(Exception, match="No vector store"):
        await third.search("globex", [made["id"]], "lighthouse")
    for service in (second, third):
        await service.close()
    await files.close()


async def test_resume_and_replicas_on_sqlite(tmp_path: Path) -> None:
    await _scenario(f"sqlite:///{tmp_path}/retrieval.db", tmp_path)


async def test_resume_and_replicas_on_postgres(tmp_path: Path) -> None:
    with postgres_schema() as url:
        await _scenario(url, tmp_path)


async def test_store_rows_round_trip(tmp_path: Path) -> None:
    files = FileStore(f"sqlite:///{tmp_path}/f.db", tmp_path / "b")
    service = _service(f"sqlite:///{tmp_path}/r.db", files)
    await service.start()
    now = time.time()
    await service._run(service.db.create_store,
                       StoreRow("vs_x", "t", None, {"a": "b"}, None, now, now, 0))  # fmt: skip
    obj = await service.get_store("t", "vs_x")
    assert obj["metadata"] == {"a": "b"} and obj["file_counts"]["total"] == 0
    assert obj["status"] == "completed"
    await service.close()
