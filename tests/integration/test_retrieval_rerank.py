"""The shipped reranker in the search path: on by default, scores stay probabilities in
descending order (so `score_threshold` keeps its meaning), `ranker: "none"` turns it off."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice.files.store import FileStore
from sluice.retrieval import rerank as rerank_mod
from sluice.retrieval.config import RetrievalConfig
from sluice.retrieval.service import RetrievalService
from tests.integration.test_retrieval_store import _FakeEmbedder

DOCS = {
    "lighthouse.md": b"# Lighthouse\n\nThe keeper logs every ship that passes the northern cape.",
    "bakery.md": b"# Bakery\n\nBread is baked before dawn and sold warm at the market.",
    "harbour.md": b"# Harbour\n\nShips unload grain at the harbour; the dock keeper counts them.",
    "garden.md": b"# Garden\n\nTomatoes need sun; water them in the evening.",
}


@pytest.mark.skipif(not rerank_mod.available(), reason="no shipped reranker")
async def test_search_is_reranked_by_default(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/r.db"
    files = FileStore(url, tmp_path / "blobs")
    await files.start()
    fake = _FakeEmbedder()
    service = RetrievalService(RetrievalConfig(), files, lambda: fake, url)
    await service.start()
    store = await service.create_store("acme", {"name": "kb"})
    for name, body in DOCS.items():
        uploaded = await files.create("acme", name, "assistants", body)
        await service.add_file("acme", store["id"], {"file_id": uploaded.id})
    await service.wait_idle()

    found = await service.search("acme", [store["id"]], "which keeper logs the ships?")
    assert found.reranked and not found.rerank_skipped
    scores = [r.score for r in found.results]
    assert len(scores) == len(DOCS) and scores == sorted(scores, reverse=True)
    assert all(0 <= s <= 1 for s in scores)
    assert all(r.rerank_score == pytest.approx(r.score, abs=1e-6) for r in found.results)
    assert found.results[0].chunk.filename == "lighthouse.md"
    cut = await service.search(
        "acme", [store["id"]], "which keeper logs the ships?",
        ranking_options={"score_threshold": scores[1] - 1e-5},  # results are rounded
    )  # fmt: skip
    assert [r.chunk.id for r in cut.results] == [r.chunk.id for r in found.results[:2]]

    plain = await service.search(
        "acme", [store["id"]], "which keeper logs the ships?", ranking_options={"ranker": "none"}
    )
    assert not plain.reranked and all(r.rerank_score is None for r in plain.results)
    await service.close()
    await files.close()
