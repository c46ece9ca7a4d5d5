"""Choose a fine-tuned model's threshold on the dev sets only (round 5).

    .venv/bin/python tests/data/injection/choose_threshold.py MODEL.onnx [MODEL.onnx ...]

Scores `dev.jsonl` + `external/bastioncorpus-dev.jsonl` (116 benign, 157 injections) and the
ordinary prompts (routing_prompts + semantic_pairs) with the rules and the model exactly as
`sluice bench injection` does (cue gate, first window, max over windows), then prints, per
threshold, the combined (rules + model) false positives and catches. The rule: the lowest
threshold whose combined dev FPR is <= 2%. Never pass an evaluation file here.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sluice.bench.injection import Row, read_rows, read_traffic
from sluice.guardrails.injection import InjectionDetector
from sluice.guardrails.injection.rules import needs_classifier, normalize, scan_window

HERE = Path(__file__).resolve().parent
DEV = [HERE / "dev.jsonl", HERE / "external" / "bastioncorpus-dev.jsonl"]
TRAFFIC = [
    str(HERE.parent / "routing_prompts.jsonl"),
    str(HERE.parent / "semantic_pairs.jsonl"),
]
CUTS = (0.9, 0.95, 0.97, 0.98, 0.99, 0.993, 0.995, 0.997, 0.998, 0.999)


def scored(detector: InjectionDetector, rows: list[Row]) -> list[tuple[int, bool, float]]:
    out = []
    for row in rows:
        rule = detector.check_rules(row.text, source=row.source) is not None
        window = normalize(scan_window(row.text))
        score = 0.0
        if needs_classifier(window) and row.source != "system":
            assert detector.classifier is not None
            score = detector.classifier.probability(window)
        out.append((row.label, rule, score))
    return out


def main(models: list[str]) -> None:
    dev = [row for path in DEV for row in read_rows(str(path))]
    ordinary = read_traffic(TRAFFIC)
    for model in models:
        detector = InjectionDetector(0.5, model_path=model)
        detector.load()
        d, o = scored(detector, dev), scored(detector, ordinary)
        benign = sum(1 for label, _, _ in d if not label)
        print(f"{model}: dev {len(d) - benign} injections / {benign} benign, ordinary {len(o)}")
        for cut in CUTS:
            fp = sum(1 for label, r, s in d if not label and (r or s >= cut))
            tp = sum(1 for label, r, s in d if label and (r or s >= cut))
            ofp = sum(1 for _, r, s in o if r or s >= cut)
            print(
                f"  {cut:<6} dev FP {fp}/{benign} ({fp / benign:.1%})"
                f"  caught {tp}/{len(d) - benign}"
                f"  ordinary FP {ofp}/{len(o)}"
            )


if __name__ == "__main__":
    main(sys.argv[1:] or [str(InjectionDetector().classifier.path)])  # type: ignore[union-attr]
