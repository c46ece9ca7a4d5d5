"""Split the vendored bastioncorpus (MIT) into a dev part and an evaluation part.

    python tests/data/injection/split_external.py

Rows that paraphrase one `intent` (the corpus groups up to 14 rewordings of one attack) stay
on one side; rows without an intent are their own group. A group goes to the dev part when the
CRC32 of its key is odd, else to evaluation: deterministic, by key, not by content. Rule
changes and threshold choices may look at `bastioncorpus-dev.jsonl` (with `dev.jsonl`); the
evaluation part is measured once per final candidate (`sluice bench injection` reports it and
the full file, for comparison with earlier rounds).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent / "external"
SOURCE = HERE / "bastioncorpus-0.6.0.jsonl"


def group_key(row: dict[str, object]) -> str:
    return str(row.get("intent") or row["id"])


def is_dev(row: dict[str, object]) -> bool:
    return zlib.crc32(group_key(row).encode()) % 2 == 1


def main() -> None:
    lines = [line for line in SOURCE.read_text(encoding="utf-8").splitlines() if line.strip()]
    parts: dict[str, list[str]] = {"dev": [], "eval": []}
    for line in lines:
        parts["dev" if is_dev(json.loads(line)) else "eval"].append(line)
    for name, rows in parts.items():
        (HERE / f"bastioncorpus-{name}.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
        bad = sum(json.loads(r)["label"] == "malicious" for r in rows)
        print(f"{name}: {len(rows)} rows ({bad} malicious, {len(rows) - bad} benign)")


if __name__ == "__main__":
    main()
