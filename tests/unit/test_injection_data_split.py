"""The external corpus's dev and eval halves: disjoint by intent, complete, and what
`split_external.py` writes (so rules tuned on the dev half are never scored on it as eval)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "injection"
EXT = DATA / "external"


def _rows(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _splitter() -> ModuleType:
    spec = importlib.util.spec_from_file_location("split_external", DATA / "split_external.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_halves_are_disjoint_by_intent_and_complete() -> None:
    split = _splitter()
    dev, ev = _rows(EXT / "bastioncorpus-dev.jsonl"), _rows(EXT / "bastioncorpus-eval.jsonl")
    full = _rows(EXT / "bastioncorpus-0.6.0.jsonl")
    assert sorted(json.dumps(r, sort_keys=True) for r in dev + ev) == sorted(
        json.dumps(r, sort_keys=True) for r in full
    )
    assert {split.group_key(r) for r in dev}.isdisjoint({split.group_key(r) for r in ev})
    assert all(split.is_dev(r) for r in dev) and not any(split.is_dev(r) for r in ev)


@pytest.mark.parametrize("name", ["dev.jsonl", "train-round4.jsonl", "train-round5.jsonl"])
def test_dev_and_hand_written_training_rows_are_not_evaluation_rows(name: str) -> None:
    dev = {str(r["text"]).strip().lower() for r in _rows(DATA / name)}
    for name in (
        "heldout.jsonl",
        "handwritten.jsonl",
        "handwritten-2.jsonl",
        "handwritten-3.jsonl",
        "handwritten-4.jsonl",
    ):
        seen = {str(r["text"]).strip().lower() for r in _rows(DATA / name)}
        assert dev.isdisjoint(seen), name
    assert dev.isdisjoint(
        str(r["text"]).strip().lower() for r in _rows(EXT / "bastioncorpus-eval.jsonl")
    )
