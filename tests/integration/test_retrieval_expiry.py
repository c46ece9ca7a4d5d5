"""`expires_after` on vector stores, with a controllable clock: `expires_at` is computed from
`last_active_at` (the anchor), use moves `last_active_at`, the store turns `expired` after it,
refuses search / new files with a clear 400 in OpenAI's shape, and its chunks and vectors are
freed (by first use or by the sweep). SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice.errors import InvalidRequestError
from sluice.files.store import FileStore
from sluice.retrieval.config import RetrievalConfig
from sluice.retrieval.expiry import DAY_S, TOUCH_EVERY_S
from sluice.retrieval.service import RetrievalService
from tests.governance_rig import postgres_schema
from tests.integration.test_retrieval_store import TEXT, _FakeEmbedder


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def _setup(url: str, tmp_path: Path) -> tuple[RetrievalService, FileStore, Clock, str]:
    files = FileStore(url, tmp_path / "blobs")
    await files.start()
    clock = Clock()
    fake = _FakeEmbedder()
    service = RetrievalService(RetrievalConfig(rerank=False), files, lambda: fake, url, clock)
    await service.start()
    up = await files.create("acme", "notes.md", "assistants", TEXT)
    return service, files, clock, up.id


async def _scenario(url: str, tmp_path: Path) -> None:
    service, files, clock, file_id = await _setup(url, tmp_path)
    try:
        store = await service.create_store(
            "acme", {"name": "kb", "expires_after": {"anchor": "last_active_at", "days": 2}}
        )
        sid, t0 = store["id"], clock.now
        assert store["expires_at"] == int(t0 + 2 * DAY_S)
        await service.add_file("acme", sid, {"file_id": file_id})
        await service.wait_idle()
        # Use a day later moves last_active_at, so expires_at moves with it.
        clock.now = t0 + DAY_S
        assert (await service.search("acme", [sid], "lighthouse")).results
        got = await service.get_store("acme", sid)
        assert got["last_active_at"] == int(t0 + DAY_S)
        assert got["expires_at"] == int(t0 + 3 * DAY_S) and got["status"] == "completed"
        # A second search within TOUCH_EVERY_S does not write again.
        clock.now = t0 + DAY_S + TOUCH_EVERY_S / 2
        await service.search("acme", [sid], "lighthouse")
        assert (await service.get_store("acme", sid))["last_active_at"] == int(t0 + DAY_S)
        # Reading the store is not use: it does not keep it alive.
        clock.now = t0 + 3 * DAY_S + 1
        got = await service.get_store("acme", sid)
        assert got["status"] == "expired" and got["expires_at"] == int(t0 + DAY_S + 2 * DAY_S)
        # Expired: search refused with OpenAI's error shape, chunks freed.
        with pytest.raises(InvalidRequestError) as err:
            await service.search("acme", [sid], "lighthouse")
        assert err.value.code == "vector_store_expired" and err.value.http_status == 400
        assert err.value.param == "vector_store_ids"
        _, chunks, vectors = await service._run(service.db.load_chunks, sid)
        assert chunks == [] and vectors.shape[0] == 0 and sid not in service.indexes
        with pytest.raises(InvalidRequestError, match="expired"):
            await service.add_file("acme", sid, {"file_id": file_id})
        with pytest.raises(InvalidRequestError, match="expired"):
            await service.create_batch("acme", sid, {"file_ids": [file_id]})
        # Final: a longer expires_after or a rename does not revive a store without content.
        await service.update_store(
            "acme", sid, {"name": "x", "expires_after": {"anchor": "last_active_at", "days": 30}}
        )
        assert (await service.get_store("acme", sid))["status"] == "expired"
        with pytest.raises(InvalidRequestError, match="expired"):
            await service.search("acme", [sid], "lighthouse")
        # It can still be deleted.
        assert (await service.delete_store("acme", sid))["deleted"] is True
    finally:
        await service.close()
        await files.close()


async def test_expiry_on_sqlite(tmp_path: Path) -> None:
    await _scenario(f"sqlite:///{tmp_path}/r.db", tmp_path)


async def test_expiry_on_postgres(tmp_path: Path) -> None:
    with postgres_schema() as url:
        await _scenario(url, tmp_path)


async def test_sweep_frees_an_unused_store(tmp_path: Path) -> None:
    """Nobody touches an expired store: the sweep still frees its chunks (and the index)."""
    service, files, clock, file_id = await _setup(f"sqlite:///{tmp_path}/r.db", tmp_path)
    try:
        keep = await service.create_store("acme", {"name": "forever"})
        gone = await service.create_store(
            "acme", {"expires_after": {"anchor": "last_active_at", "days": 1}}
        )
        for sid in (keep["id"], gone["id"]):
            await service.add_file("acme", sid, {"file_id": file_id})
        await service.wait_idle()
        await service.search("acme", [gone["id"]], "lighthouse")
        assert gone["id"] in service.indexes
        clock.now += DAY_S - 10
        assert await service.sweep_expired() == []
        clock.now += 20
        assert await service.sweep_expired() == [gone["id"]]
        assert gone["id"] not in service.indexes
        _, chunks, _ = await service._run(service.db.load_chunks, gone["id"])
        assert chunks == []
        _, kept, _ = await service._run(service.db.load_chunks, keep["id"])
        assert kept
        assert (await service.get_store("acme", gone["id"]))["status"] == "expired"
        assert await service.sweep_expired() == []  # once
    finally:
        await service.close()
        await files.close()
