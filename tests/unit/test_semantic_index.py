"""VectorIndex: exact cosine top-k per scope, replace, LRU cap, expiry, purge, memory bounds."""

from __future__ import annotations

import numpy as np
import pytest

from sluice.cache.semantic.index import VectorIndex

DIM = 8


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def unit(*values: float) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[: len(values)] = values
    return v / np.linalg.norm(v)


FAR = 10_000.0


def test_search_returns_best_first_with_cosine_scores() -> None:
    index = VectorIndex(DIM, 100, clock=Clock())
    index.add("s", "x", unit(1, 0), FAR)
    index.add("s", "y", unit(1, 1), FAR)
    index.add("s", "z", unit(0, 1), FAR)
    hits = index.search("s", unit(1, 0.1), min_score=0.0, k=5)
    assert [h[0] for h in hits] == ["x", "y", "z"]
    expected = [float(unit(1, 0.1) @ unit(*v)) for v in [(1, 0), (1, 1), (0, 1)]]
    assert [h[1] for h in hits] == pytest.approx(expected, abs=1e-6)


def test_min_score_and_k_limit_results() -> None:
    index = VectorIndex(DIM, 100, clock=Clock())
    for i in range(20):
        index.add("s", f"e{i}", unit(1, i / 10), FAR)
    hits = index.search("s", unit(1, 0), min_score=0.9, k=3)
    assert [h[0] for h in hits] == ["e0", "e1", "e2"]
    assert all(score >= 0.9 for _, score in hits)
    assert index.search("s", unit(0, 1), min_score=0.99) == []
    assert index.search("s", unit(1, 0), min_score=0.0, k=0) == []


def test_vectors_are_normalised_on_the_way_in() -> None:
    index = VectorIndex(DIM, 10, clock=Clock())
    index.add("s", "x", unit(3, 4) * 7, FAR)
    [(entry, score)] = index.search("s", unit(3, 4) * 0.01, min_score=0.999)
    assert entry == "x" and score == pytest.approx(1.0, abs=1e-6)


def test_scopes_are_isolated() -> None:
    index = VectorIndex(DIM, 100, clock=Clock())
    index.add("tenant-a", "x", unit(1), FAR)
    index.add("tenant-b", "y", unit(1), FAR)
    assert [h[0] for h in index.search("tenant-a", unit(1), 0.5)] == ["x"]
    assert [h[0] for h in index.search("tenant-b", unit(1), 0.5)] == ["y"]
    assert index.search("tenant-c", unit(1), 0.5) == []


def test_add_replaces_same_id_even_across_scopes() -> None:
    index = VectorIndex(DIM, 100, clock=Clock())
    index.add("s", "x", unit(1, 0), FAR)
    index.add("s", "x", unit(0, 1), FAR)
    assert len(index) == 1
    assert index.search("s", unit(1, 0), 0.5) == []
    index.add("t", "x", unit(1, 0), FAR)
    assert len(index) == 1
    assert index.search("s", unit(0, 1), 0.5) == []
    assert [h[0] for h in index.search("t", unit(1, 0), 0.5)] == ["x"]


def test_expired_entries_are_skipped_and_dropped() -> None:
    clock = Clock()
    index = VectorIndex(DIM, 100, clock=clock)
    index.add("s", "old", unit(1), clock.now + 5)
    index.add("s", "new", unit(1, 0.1), clock.now + 50)
    clock.now += 10
    assert [h[0] for h in index.search("s", unit(1), min_score=-1.0)] == ["new"]
    assert len(index) == 1  # dropped lazily by the search that met it
    assert not index.remove("old")


def test_lru_eviction_beyond_max_entries_and_hits_refresh() -> None:
    index = VectorIndex(DIM, 3, clock=Clock())
    index.add("s", "a", unit(1, 0, 0), FAR)
    index.add("s", "b", unit(0, 1, 0), FAR)
    index.add("t", "c", unit(0, 0, 1), FAR)
    assert [h[0] for h in index.search("s", unit(1, 0, 0), 0.9)] == ["a"]  # a is now fresh
    index.add("s", "d", unit(1, 1, 1), FAR)  # evicts b, the least recently used
    assert len(index) == 3
    assert not index.remove("b")
    index.add("s", "e", unit(1, 1, 0), FAR)  # now c (other scope) is the oldest
    assert not index.remove("c")
    assert index.remove("a") and index.remove("d") and index.remove("e")
    assert len(index) == 0


def test_swap_remove_keeps_remaining_rows_findable() -> None:
    index = VectorIndex(DIM, 100, clock=Clock())
    rng = np.random.default_rng(1)
    vectors = {f"e{i}": rng.standard_normal(DIM).astype(np.float32) for i in range(40)}
    for entry, v in vectors.items():
        index.add("s", entry, v, FAR)
    for i in range(0, 40, 3):
        assert index.remove(f"e{i}")
    for entry, v in vectors.items():
        hits = index.search("s", v, min_score=0.9999, k=1)
        if int(entry[1:]) % 3 == 0:
            assert all(h[0] != entry for h in hits)
        else:
            assert hits[0][0] == entry


def test_matches_a_brute_force_reference() -> None:
    rng = np.random.default_rng(7)
    index = VectorIndex(DIM, 1000, clock=Clock())
    matrix = rng.standard_normal((300, DIM)).astype(np.float32)
    for i, v in enumerate(matrix):
        index.add("s", str(i), v, FAR)
    normed = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    for q in rng.standard_normal((10, DIM)).astype(np.float32):
        scores = normed @ (q / np.linalg.norm(q))
        best = np.argsort(-scores)[:5]
        hits = index.search("s", q, min_score=-1.0, k=5)
        assert [int(h[0]) for h in hits] == best.tolist()
        assert [h[1] for h in hits] == pytest.approx(scores[best].tolist(), abs=1e-5)


def test_memory_grows_and_shrinks_with_live_entries() -> None:
    index = VectorIndex(DIM, 10_000, clock=Clock())
    assert index.nbytes == 0
    for i in range(1000):
        index.add("s", str(i), unit(1, i), FAR)
    grown = index.nbytes
    assert grown >= 1000 * DIM * 4
    assert grown <= 2 * 1024 * (DIM * 4 + 8)  # doubling never more than 2x the live rows
    for i in range(990):
        index.remove(str(i))
    assert index.nbytes < grown / 16
    assert {h[0] for h in index.search("s", unit(1, 995), 0.0, k=20)} == {
        str(i) for i in range(990, 1000)
    }


def test_remove_scope_prefix_and_clear() -> None:
    index = VectorIndex(DIM, 100, clock=Clock())
    index.add("t1/m", "a", unit(1), FAR)
    index.add("t1/n", "b", unit(1), FAR)
    index.add("t2/m", "c", unit(1), FAR)
    assert index.remove_scope_prefix("t1/") == 2
    assert len(index) == 1
    assert index.search("t1/m", unit(1), 0.0) == []
    index.add("t1/m", "a", unit(1), FAR)  # ids freed by the purge are reusable
    assert index.clear() == 2
    assert len(index) == 0 and index.nbytes == 0


def test_bad_vectors_are_rejected() -> None:
    index = VectorIndex(DIM, 10, clock=Clock())
    with pytest.raises(ValueError, match="dimensions"):
        index.add("s", "x", np.ones(DIM + 1, dtype=np.float32), FAR)
    with pytest.raises(ValueError, match="non-zero"):
        index.add("s", "x", np.zeros(DIM, dtype=np.float32), FAR)
    with pytest.raises(ValueError, match="non-zero"):
        index.search("s", np.full(DIM, np.nan, dtype=np.float32), 0.5)
    with pytest.raises(ValueError):
        VectorIndex(0, 10)


def test_ann_candidates_are_rescored_exactly_and_follow_removals() -> None:
    clock = Clock()
    index = VectorIndex(DIM * 8, 5000, clock=clock, ann_min_entries=300)
    rng = np.random.default_rng(3)
    stored = rng.standard_normal((1000, DIM * 8)).astype(np.float32)
    for i, v in enumerate(stored):
        index.add("s", f"e{i}", v, FAR if i % 10 else clock.now + 5)
    assert index._scopes["s"].ann is not None  # the graph was built past 300 rows
    normed = stored / np.linalg.norm(stored, axis=1, keepdims=True)
    for i in range(1, 200, 7):
        if i % 10 == 0:
            continue
        query = stored[i] + 0.05 * rng.standard_normal(DIM * 8).astype(np.float32)
        [(entry, score)] = index.search("s", query, min_score=0.5, k=1)
        exact = float(normed[i] @ (query / np.linalg.norm(query)))
        assert entry == f"e{i}" and score == pytest.approx(exact, abs=1e-5)
    assert index.remove("e11")
    assert all(h[0] != "e11" for h in index.search("s", stored[11], 0.0, k=5))
    clock.now += 10  # every tenth entry has expired
    assert all(h[0] != "e20" for h in index.search("s", stored[20], 0.0, k=5))
    for i in range(1000):
        index.remove(f"e{i}")  # below half the threshold the graph is dropped
        if len(index) == 100:
            assert index._scopes["s"].ann is None
    assert len(index) == 0


def test_ann_needs_usearch(monkeypatch: pytest.MonkeyPatch) -> None:
    from sluice.cache.semantic import ann

    monkeypatch.setattr(ann, "available", lambda: False)
    with pytest.raises(ValueError, match="usearch"):
        VectorIndex(DIM, 10, ann_min_entries=100)
