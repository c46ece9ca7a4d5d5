"""`sluice bench semantic-cache`: quality numbers computed right (fake embedder with known
cosines), latency measured, pair file validated, CLI wired."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sluice.bench.semantic import PairFileError, load_pairs, quality, run, score_pairs
from sluice.cli import main
from sluice.embed import Embedder

DIM = 8


def unit_at(cosine: float) -> np.ndarray:
    """A unit vector whose cosine with e0 is `cosine`."""
    v = np.zeros(DIM, dtype=np.float32)
    v[0], v[1] = cosine, np.sqrt(max(0.0, 1 - cosine**2))
    return v


class FakeEmbedder:
    """Every `a` text maps to e0; each `b` text to a vector at a chosen cosine from e0."""

    dim = DIM

    def __init__(self, cosines: dict[str, float]) -> None:
        self.cosines = cosines

    def embed_sync(self, texts: list[str]) -> np.ndarray:
        return np.stack([unit_at(self.cosines.get(t, 1.0)) for t in texts]).astype(np.float32)

    async def embed(self, texts: list[str]) -> np.ndarray:
        return self.embed_sync(texts)


# (a, b, label, kind, cosine(a, b)); the guard refuses the 3.11/3.12 and upload/download pairs.
ROWS = [
    ("How do I reset my password?", "I forgot my password", 1, "paraphrase", 0.97),
    ("How do I sort a list?", "What's the way to order a list?", 1, "paraphrase", 0.93),
    ("Cancel my plan", "I want to end my subscription", 1, "paraphrase", 0.80),
    ("Install Python 3.11", "Install Python 3.12", 0, "number", 0.98),
    ("How do I upload a file?", "How do I download a file?", 0, "direction", 0.96),
    ("What is the capital of France?", "What is the capital city of France?", 0, "unrelated", 0.91),
    ("Why is the sky blue?", "Best pizza in town", 0, "unrelated", 0.10),
]


@pytest.fixture
def pairs_file(tmp_path: Path) -> Path:
    path = tmp_path / "pairs.jsonl"
    lines = [json.dumps({"a": a, "b": b, "label": lab, "kind": k}) for a, b, lab, k, _ in ROWS]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder({b: c for _, b, _, _, c in ROWS})


def test_quality_numbers_match_a_hand_count(pairs_file: Path, embedder: FakeEmbedder) -> None:
    scored = score_pairs(load_pairs(pairs_file), embedder)
    assert [round(s.cosine, 4) for s in scored] == [c for *_, c in ROWS]

    plain = quality(scored, 0.95, guard=False)  # serves 0.97, 0.98, 0.96
    assert (plain.served, plain.true_hits, plain.false_hits) == (3, 1, 2)
    assert plain.precision == pytest.approx(1 / 3)
    assert plain.recall == pytest.approx(1 / 3)
    assert plain.false_hit_rate == pytest.approx(2 / 4)
    assert plain.false_hits_by_kind == {"number": 1, "direction": 1}

    guarded = quality(scored, 0.95, guard=True)  # the guard refuses 3.11/3.12 and up/down
    assert (guarded.served, guarded.true_hits, guarded.false_hits) == (1, 1, 0)
    assert guarded.precision == 1.0 and guarded.false_hit_rate == 0.0

    low = quality(scored, 0.9, guard=True)  # adds 0.93 (paraphrase) and 0.91 (unrelated)
    assert (low.served, low.true_hits, low.false_hits) == (3, 2, 1)
    assert low.recall == pytest.approx(2 / 3) and low.false_hit_rate == pytest.approx(1 / 4)

    assert quality(scored, 0.99, guard=False).precision is None  # nothing served


def test_run_reports_rows_and_latency_as_json(pairs_file: Path, embedder: FakeEmbedder) -> None:
    fake: Embedder = embedder
    out = json.loads(run(str(pairs_file), 500, [0.9, 0.95], True, embedder=fake, lookups=20))
    assert out["pairs"] == 7 and out["positives"] == 3 and out["negatives"] == 4
    assert [(r["threshold"], r["guard"]) for r in out["rows"]] == [
        (0.9, False),
        (0.9, True),
        (0.95, False),
        (0.95, True),
    ]
    assert out["rows"][3]["false_hit_rate"] == 0.0
    latency = out["latency"]
    assert latency["entries"] == 500 and latency["lookups"] == 20
    assert 0 < latency["p50_ms"] <= latency["p99_ms"]
    table = run(str(pairs_file), 100, [0.95], False, embedder=fake, lookups=5)
    assert "false-hit rate" in table and "0.00%" in table and "entries" in table


def test_bad_pair_files_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": "x", "b": "y", "label": 1, "kind": "paraphrase"}\n{"a": "x"}\n')
    with pytest.raises(PairFileError, match=r"bad.jsonl:2"):
        load_pairs(bad)
    bad.write_text('{"a": "x", "b": "y", "label": 3, "kind": "paraphrase"}\n')
    with pytest.raises(PairFileError, match="label must be"):
        load_pairs(bad)
    bad.write_text("\n")
    with pytest.raises(PairFileError, match="no pairs"):
        load_pairs(bad)
    with pytest.raises(PairFileError, match="cannot read"):
        load_pairs(tmp_path / "missing.jsonl")


def test_shipped_pair_set_is_balanced_and_mostly_hard() -> None:
    pairs = load_pairs(Path(__file__).parents[1] / "data" / "semantic_pairs.jsonl")
    positives = sum(p.label for p in pairs)
    hard = sum(1 for p in pairs if p.label == 0 and p.kind != "unrelated")
    assert len(pairs) >= 400
    assert 0.4 <= positives / len(pairs) <= 0.6
    assert hard >= 0.7 * (len(pairs) - positives)
    assert len({p.domain for p in pairs}) >= 8
    assert len({(p.a, p.b) for p in pairs}) == len(pairs)


def test_cli_subcommand_errors_cleanly(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["bench", "semantic-cache", "--pairs", str(tmp_path / "none.jsonl")]
    )
    assert result.exit_code == 1 and "cannot read" in result.output
    result = CliRunner().invoke(
        main, ["bench", "semantic-cache", "--pairs", "x", "--thresholds", "a,b"]
    )
    assert result.exit_code == 2 and "not a number list" in result.output
