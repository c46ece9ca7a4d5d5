"""The rule layer's verdicts on every labelled text are pinned (digest per file).

Written when `rules.py` (943 lines) was split into `patterns.py`, `gate.py`, `prefilter.py`
and `rules.py`: the digests were recorded from the unsplit module, so the split is proven to
change no verdict, quoted flag, span or gate decision. A deliberate rule change updates them:

    .venv/bin/python tests/unit/test_injection_rule_verdicts.py --update
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from sluice.guardrails.injection import rules

DATA = Path(__file__).resolve().parents[1] / "data" / "injection"
DIGESTS = DATA / "rule-verdicts.json"


def labelled_files() -> list[Path]:
    return sorted(p for p in DATA.rglob("*.jsonl"))


def digest(path: Path) -> str:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        text = str(json.loads(line)["text"])
        for variant in (text, text.upper(), text[::-1]):
            for data in (False, True):
                hits = rules.scan(variant, data=data)
                out.append(repr([(h.rule, h.confidence, h.quoted, h.span) for h in hits]))
            out.append(str(rules.needs_classifier(rules.normalize(rules.scan_window(variant)))))
    return hashlib.sha256("\n".join(out).encode()).hexdigest()


def current() -> dict[str, str]:
    return {str(p.relative_to(DATA)): digest(p) for p in labelled_files()}


@pytest.mark.parametrize("path", labelled_files(), ids=lambda p: p.name)
def test_rule_verdicts_are_unchanged(path: Path) -> None:
    recorded = json.loads(DIGESTS.read_text())
    name = str(path.relative_to(DATA))
    assert name in recorded, f"{name}: no recorded digest (run this file with --update)"
    assert digest(path) == recorded[name], f"{name}: a rule verdict changed"


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: test_injection_rule_verdicts.py --update")
    DIGESTS.write_text(json.dumps(current(), indent=1, sort_keys=True) + "\n")
