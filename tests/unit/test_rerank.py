"""The reranker: its features, the fusion model (fit, JSON, scoring), ordering and budget."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from sluice.retrieval import rerank as rerank_mod
from sluice.retrieval.benchdata import Question
from sluice.retrieval.index import Hit, IndexedChunk
from sluice.retrieval.rerank import FEATURES, RANK_CAP, Fusion, Reranker, features
from sluice.retrieval.training.fusion import Row, fit, score


def _hit(i: int, text: str, file_id: str | None = None, seq: int = 0, **ranks: int) -> Hit:
    chunk = IndexedChunk(f"c{i}", file_id or f"f{i}", f"f{i}", seq, text, "", 10)
    return Hit(chunk, 1.0 / (i + 1), ranks.get("bm25"), ranks.get("dense"))


def _fusion(**weights: float) -> Fusion:
    names = tuple(weights)
    return Fusion(names, (0.0,) * len(names), (1.0,) * len(names), tuple(weights.values()), 0, {})


def col(x: np.ndarray, name: str) -> np.ndarray:
    return x[:, FEATURES.index(name)]


def test_features_weigh_rare_query_terms_and_the_lead() -> None:
    head = [
        _hit(0, "parse a file of settings", bm25=1, dense=4),
        _hit(1, "gzip compressed file handling\nwrite a file", bm25=2),
        _hit(2, "unrelated words here", file_id="f0", seq=1, dense=1),
    ]
    x = features("read a gzip file", head)
    assert x.shape == (3, len(FEATURES))
    # Terms read, gzip, file. "file" is in two passages, "gzip" in one: the rare one counts more.
    assert col(x, "coverage")[0] == pytest.approx(1 / 3)
    assert col(x, "idf_coverage")[1] > col(x, "idf_coverage")[0] > 0 == col(x, "idf_coverage")[2]
    assert col(x, "lead_coverage")[1] > 0
    assert list(col(x, "first_chunk")) == [1.0, 1.0, 0.0]
    assert col(x, "file_hits")[0] == pytest.approx(math.log(2))  # c0 and c2 share f0
    assert col(x, "bm25_rank")[2] == pytest.approx(math.log(RANK_CAP))  # absent from BM25
    assert col(x, "rank_gap")[0] == pytest.approx(math.log(4))
    assert not col(x, "cross").any()
    with_cross = features("read a gzip file", head, {"cross": [0.5, -1.0, 2.0]})
    assert list(col(with_cross, "cross")) == [0.5, -1.0, 2.0]


def test_fusion_json_round_trip_and_validation() -> None:
    model = _fusion(coverage=2.0, position=-1.0)
    again = Fusion.from_json(model.to_json())
    assert again == model
    x = np.random.default_rng(0).random((5, len(FEATURES)))
    assert np.allclose(again.probabilities(x), model.probabilities(x))
    with pytest.raises(ValueError, match="unknown"):
        Fusion.from_json(model.to_json().replace('"coverage"', '"nonsense"'))
    bad = model.to_json().replace('"weights": [\n    2.0,\n    -1.0\n  ]', '"weights": [2.0]')
    with pytest.raises(ValueError):
        Fusion.from_json(bad)


def test_rerank_orders_the_head_by_probability_and_keeps_the_tail() -> None:
    hits = [_hit(i, t) for i, t in enumerate(["alpha", "beta", "gamma words", "delta", "tail"])]
    rr = Reranker(fusion=_fusion(coverage=5.0))
    out = rr.rerank("gamma", hits, top=4)
    assert out[0].chunk.id == "c2"  # the only passage with the query term rises to the top
    assert [h.chunk.id for h in out[1:4]] == ["c0", "c1", "c3"]  # ties keep hybrid order
    assert out[4] is hits[4]  # past the head: untouched
    probs = [h.score for h in out[:4]]
    assert probs == sorted(probs, reverse=True) and all(0 < p < 1 for p in probs)
    assert out[0].rerank_score == out[0].score
    assert rr.rerank("gamma", hits[:1], top=4) == hits[:1]
    rr.close()


class _Slow(Reranker):
    def rerank(self, query: str, hits: list[Hit], top: int = 20, k: int = 60) -> list[Hit]:
        time.sleep(0.5)
        return list(reversed(hits))


async def test_rerank_respects_its_budget() -> None:
    hits = [_hit(i, f"text {i}") for i in range(4)]
    slow = _Slow(fusion=_fusion(coverage=1.0))
    same, skipped = await slow.arerank("q", hits, 4, budget_ms=10)
    assert skipped and same == hits
    fast = Reranker(fusion=_fusion(coverage=1.0))
    done, skipped = await fast.arerank("text 3", hits, 4, budget_ms=5000)
    assert not skipped and len(done) == 4
    slow.close()
    fast.close()


def test_fit_learns_the_informative_feature_and_improves_ndcg() -> None:
    """Relevance follows coverage, not hybrid position: the fit must find that."""
    rng = np.random.default_rng(3)
    rows = []
    for n in range(60):
        hits = [_hit(i, f"doc {n} {i}", file_id=f"q{n}d{i}") for i in range(10)]
        target = int(rng.integers(3, 10))
        x = np.zeros((10, len(FEATURES)))
        x[:, FEATURES.index("position")] = np.log1p(np.arange(10))
        x[:, FEATURES.index("coverage")] = rng.random(10) * 0.5
        x[target, FEATURES.index("coverage")] = 0.9
        y = np.zeros(10)
        y[target] = 1.0
        q = Question(f"q{n}", "q", {f"q{n}d{target}": 2}, "g", False)
        rows.append(Row(q, hits, x, y))
    model = fit(rows[:40], ("position", "coverage"), 1.0, {})
    assert model.weights[1] > 0
    assert score(rows[40:], model)["nDCG@10"] > score(rows[40:], None)["nDCG@10"] + 0.2


def test_the_shipped_fusion_loads_when_installed() -> None:
    if not rerank_mod.available():
        pytest.skip("no shipped rerank fusion")
    rr = Reranker()
    model = rr.fusion
    assert set(model.features) <= set(FEATURES) and model.meta.get("fit_on")
    cwd = "os.getcwd()\n\nReturn a string representing the current working directory."
    hits = [
        _hit(0, cwd, bm25=2, dense=2),
        _hit(1, "math.gcd(*integers)\n\nGreatest Common Divisor.", bm25=1, dense=1),
    ]
    if model.uses_cross and not rr.model_path.is_file():
        pytest.fail("the fusion needs the cross-encoder, which is not shipped")
    out = rr.rerank("greatest common divisor of integers", hits, top=2)
    assert out[0].chunk.id == "c1"
    rr.close()


def test_lead_cosine_prefers_the_passage_about_the_query() -> None:
    from sluice.retrieval.rerank import lead_cosines

    head = [
        _hit(0, "Return the current time in seconds since the epoch."),
        _hit(1, "Compute the greatest common divisor of the integer arguments."),
    ]
    cos = lead_cosines("largest number dividing two integers", head)
    assert len(cos) == 2 and cos[1] > cos[0] and all(-1 <= c <= 1.0001 for c in cos)
    rr = Reranker(fusion=_fusion(lead_cos=5.0))
    assert rr.rerank("largest number dividing two integers", head, top=2)[0].chunk.id == "c1"
    rr.close()


def test_features_survive_stop_word_queries_empty_passages_and_missing_scores() -> None:
    head = [_hit(0, ""), _hit(1, "the and of", bm25=1), _hit(2, "words", dense=3)]
    for query in ("the of and", "", "???"):
        x = features(query, head)
        assert np.isfinite(x).all() and not col(x, "coverage").any()
    rr = Reranker(fusion=_fusion(coverage=1.0, dense_cos=1.0, bm25_rel=1.0))
    assert len(rr.rerank("the", head, top=3)) == 3
    rr.close()
