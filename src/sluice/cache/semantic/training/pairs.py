"""Build the labelled pair sets (train, calibration, held-out) from the seed files.

`python -m sluice.cache.semantic.training.pairs OUT_DIR` writes `train.jsonl`,
`calibration.jsonl`, `heldout.jsonl` and `train2.jsonl`, one `{"a", "b", "label", "kind", "topic",
"cluster"}` object a line. Deterministic (seeded), so the files can be rebuilt and diffed.

Splits never share a seed question: calibration takes a fixed fifth of the *train* seed
clusters (by a hash of the cluster's first phrasing), held-out comes from `heldout.txt`,
written apart from `train.txt` (other author, topics and register). `train2.txt` (a third
author, full rewordings in several styles) only ever feeds training.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from sluice.cache.semantic.training.edits import trivial
from sluice.cache.semantic.training.lookalike import KINDS, lookalike


@dataclass(slots=True)
class Cluster:
    topic: str
    phrasings: list[str]
    lookalikes: list[str] = field(default_factory=list)  # hand-written negatives

    @property
    def key(self) -> str:
        return hashlib.sha256(self.phrasings[0].encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Pair:
    a: str
    b: str
    label: int
    kind: str
    topic: str
    cluster: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "a": self.a,
                "b": self.b,
                "label": self.label,
                "kind": self.kind,
                "topic": self.topic,
                "cluster": self.cluster,
            },
            ensure_ascii=False,
        )


def read_seeds(text: str) -> list[Cluster]:
    clusters: list[Cluster] = []
    topic = "general"
    for raw in text.splitlines():
        line = raw.strip()
        if not line or (line.startswith("#") and not line.startswith("##")):
            continue
        if line.startswith("##"):
            topic = line.lstrip("#").strip()
        elif line.startswith("!"):
            clusters[-1].lookalikes.append(line[1:].strip())
        else:
            clusters.append(Cluster(topic, [p.strip() for p in line.split(" | ") if p.strip()]))
    return clusters


def seed_file(name: str) -> str:
    return resources.files("sluice.cache.semantic.training").joinpath("seeds", name).read_text()


def cluster_pairs(c: Cluster, others: list[Cluster], rng: random.Random) -> list[Pair]:
    """Every positive and negative pair one seed cluster yields (see the labelling guide)."""
    out: list[Pair] = []

    def add(a: str, b: str, label: int, kind: str) -> None:
        if rng.random() < 0.5:
            a, b = b, a
        out.append(Pair(a, b, label, kind, c.topic, c.key))

    _positives(c, rng, add)
    _negatives(c, rng, add)
    same_topic = [o for o in others if o.topic == c.topic and o is not c]
    for o in rng.sample(same_topic, k=min(4, len(same_topic))):
        add(rng.choice(c.phrasings), rng.choice(o.phrasings + o.lookalikes), 0, "topic")
    far = [o for o in others if o.topic != c.topic]
    if far:
        add(rng.choice(c.phrasings), rng.choice(rng.choice(far).phrasings), 0, "unrelated")
    return out


_Add = Callable[[str, str, int, str], None]


def _positives(c: Cluster, rng: random.Random, add: _Add) -> None:
    """Identical, trivially varied (1-3 edits) and reworded pairs, reworded + noisy."""
    ps = c.phrasings
    add(ps[0], ps[0], 1, "identical")
    add(rng.choice(ps), rng.choice(ps[1:]) if len(ps) > 1 else ps[0], 1, "reword")
    for p in ps:
        for _ in range(6):
            b, how = trivial(p, rng, steps=3)
            add(p, b, 1, "identical" if how == "identical" else "trivial")
    for i, p in enumerate(ps):
        for q in ps[i + 1 :]:
            add(p, q, 1, "reword")
            for _ in range(3):
                add(
                    trivial(p, rng)[0] if rng.random() < 0.5 else p, trivial(q, rng)[0], 1, "reword"
                )


def _negatives(c: Cluster, rng: random.Random, add: _Add) -> None:
    """Hand-written look-alikes, and each look-alike edit of each phrasing (some noisy)."""
    ps = c.phrasings
    for n in c.lookalikes:
        for p in ps:
            add(p, n, 0, "handwritten")
        for _ in range(3):
            add(trivial(rng.choice(ps), rng)[0], trivial(n, rng)[0], 0, "handwritten")
    for p in ps:
        for kind in KINDS:
            for _ in range(4):
                edited = lookalike(p, kind, rng)
                if edited is None:
                    break
                add(p, trivial(edited, rng)[0] if rng.random() < 0.35 else edited, 0, kind)
                add(rng.choice(ps), trivial(edited, rng)[0], 0, kind)


def build(clusters: list[Cluster], seed: int) -> list[Pair]:
    rng = random.Random(seed)
    seen: set[tuple[str, str]] = set()
    pairs: list[Pair] = []
    for c in clusters:
        for pair in cluster_pairs(c, clusters, rng):
            key = (pair.a, pair.b)
            if key in seen or (pair.b, pair.a) in seen:
                continue
            if pair.label == 0 and pair.a.strip().lower() == pair.b.strip().lower():
                continue  # an edit that changed only case is no look-alike
            seen.add(key)
            pairs.append(pair)
    rng.shuffle(pairs)
    return pairs


def is_calibration(c: Cluster) -> bool:
    return int(c.key, 16) % 5 == 0


def write_splits(out: Path) -> dict[str, int]:
    out.mkdir(parents=True, exist_ok=True)
    train_clusters = read_seeds(seed_file("train.txt"))
    splits = {
        "train": build([c for c in train_clusters if not is_calibration(c)], seed=1),
        "calibration": build([c for c in train_clusters if is_calibration(c)], seed=2),
        "heldout": build(read_seeds(seed_file("heldout.txt")), seed=3),
        # author C's reworded clusters (card 1.2.0): train only, never calibration
        "train2": build(read_seeds(seed_file("train2.txt")), seed=4),
    }
    for name, pairs in splits.items():
        (out / f"{name}.jsonl").write_text("".join(p.to_json() + "\n" for p in pairs))
    return {name: len(pairs) for name, pairs in splits.items()}


def main(argv: list[str]) -> None:
    counts = write_splits(Path(argv[0] if argv else "tests/data/semcache"))
    sys.stdout.write(json.dumps(counts) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
