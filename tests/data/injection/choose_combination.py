"""Choose how to combine the two classifiers on the dev sets only (round 6).

    .venv/bin/python tests/data/injection/choose_combination.py [SCORES.json]

Scores `dev.jsonl` + `external/bastioncorpus-dev.jsonl` and the ordinary prompts with the rules,
the sequence model (`kind="sequence"`) and the linear head (`kind="linear"`) exactly as
`choose_threshold.py` does (cue gate, first window, max over windows), caches the three
verdicts per row in SCORES.json (default build/inj6/dev-scores.json), then sweeps three
combinations: agreement (sequence >= t1 AND linear >= t2), a fused score (mean of the two
logits >= t), and agreement on tool/document text only (user text: sequence alone). The rule
written down before any evaluation run: lowest dev FPR (at most 2%), then most dev catches,
then fewest ordinary false positives. Never pass an evaluation file here.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

from sluice.bench.injection import Row, read_rows, read_traffic
from sluice.guardrails.injection import InjectionDetector
from sluice.guardrails.injection.rules import needs_classifier, normalize, scan_window

HERE = Path(__file__).resolve().parent
DEV = [HERE / "dev.jsonl", HERE / "external" / "bastioncorpus-dev.jsonl"]  # as choose_threshold
TRAFFIC = [str(HERE.parent / "routing_prompts.jsonl"), str(HERE.parent / "semantic_pairs.jsonl")]
Scored = tuple[int, bool, float, float, str]  # label, rule, sequence, linear, source
SEQ = (0.9, 0.95, 0.97, 0.98, 0.99, 0.993, 0.995, 0.997, 0.998)
LIN = (0.5, 0.7, 0.8, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99)
FUSED = tuple(x / 2 for x in range(4, 21))  # logit cuts 2.0 .. 10.0


def scored(seq: InjectionDetector, lin: InjectionDetector, rows: list[Row]) -> list[Scored]:
    out = []
    for row in rows:
        rule = seq.check_rules(row.text, source=row.source) is not None
        window = normalize(scan_window(row.text))
        s = li = 0.0
        if needs_classifier(window) and row.source != "system":
            assert seq.classifier is not None and lin.classifier is not None
            s, li = seq.classifier.probability(window), lin.classifier.probability(window)
        out.append((row.label, rule, s, li, row.source))
    return out


def logit(p: float) -> float:
    p = min(max(p, 1e-7), 1 - 1e-7)
    return math.log(p / (1 - p))


def agree(t1: float, t2: float, *, indirect_only: bool = False) -> Callable[[Scored], bool]:
    """sequence >= t1 and linear >= t2 (the latter on tool/document rows only if asked)."""

    def flag(r: Scored) -> bool:
        return r[2] >= t1 and r[2] > 0 and (r[3] >= t2 or (indirect_only and r[4] == "user"))

    return flag


def fused(cut: float) -> Callable[[Scored], bool]:
    """The mean of the two logits >= cut (gated rows score nothing)."""

    def flag(r: Scored) -> bool:
        return r[2] > 0 and (logit(r[2]) + logit(r[3])) / 2 >= cut

    return flag


def count(rows: list[Scored], flag: Callable[[Scored], bool]) -> tuple[int, int]:
    """(benign flagged, injections caught), rules included."""
    fp = sum(1 for r in rows if not r[0] and (r[1] or flag(r)))
    tp = sum(1 for r in rows if r[0] and (r[1] or flag(r)))
    return fp, tp


def main(cache: Path) -> None:
    if cache.exists():
        data = json.loads(cache.read_text())
        dev: list[Scored] = [tuple(r) for r in data["dev"]]
        ordinary: list[Scored] = [tuple(r) for r in data["ordinary"]]
    else:
        seq, lin = InjectionDetector(kind="sequence"), InjectionDetector(kind="linear")
        seq.load()
        lin.load()
        dev = scored(seq, lin, [row for path in DEV for row in read_rows(str(path))])
        ordinary = scored(seq, lin, read_traffic(TRAFFIC))
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"dev": dev, "ordinary": ordinary}))
    benign = sum(1 for r in dev if not r[0])
    print(f"dev {len(dev) - benign} injections / {benign} benign, ordinary {len(ordinary)}")
    rules: dict[str, Callable[[Scored], bool]] = {
        "sequence 0.995": agree(0.995, 0.0),
        "sequence 0.997": agree(0.997, 0.0),
        "linear 0.97": agree(0.0, 0.97),
    }
    for t1, t2 in itertools.product(SEQ, LIN):
        rules[f"agree s>={t1} l>={t2}"] = agree(t1, t2)
        rules[f"split s>={t1} (+l>={t2} on tool/doc)"] = agree(t1, t2, indirect_only=True)
    for t in FUSED:
        rules[f"fused >={t}"] = fused(t)
    table = []
    for name, flag in rules.items():
        fp, tp = count(dev, flag)
        ofp, _ = count(ordinary, flag)
        table.append((fp, -tp, ofp, name))
    for fp, tp, ofp, name in sorted(table)[:40]:
        print(f"  {name:<40} dev FP {fp}/{benign} ({fp / benign:.1%})  caught {-tp}  ord FP {ofp}")
    for name in ("sequence 0.995", "sequence 0.997", "linear 0.97"):
        fp, tp, ofp, _ = next(t for t in table if t[3] == name)
        print(f"  {name:<40} dev FP {fp}/{benign} ({fp / benign:.1%})  caught {-tp}  ord FP {ofp}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "build/inj6/dev-scores.json"))
