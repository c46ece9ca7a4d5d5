"""Extra training pairs for the verifier (card 1.2.0): typos, including typos that land on
another dictionary word, against one-detail look-alikes (training side only).

    python -m sluice.cache.semantic.training.augment OUT.jsonl [--seed 11]

Built from the *train* seed clusters only (`pairs.is_calibration` clusters and the held-out
seed file are never read), with generic edits, not from any list of observed misses:

- positives ("trivial"): one typo in a plain word: a keyboard slip (a neighbouring key, a
  dropped, doubled or swapped letter) or a *real-word* typo: the word replaced by another
  word of the embedder's vocabulary one edit away ("times" -> "ties", "course" ->
  "curse"). Words that carry a checked meaning are never touched: negations, numbers,
  dates, "when" words, both sides of every opposite/direction/preposition/antonym/
  quantifier/condition/ordinal/compound pair the look-alike generator knows, and units.
  Half of them get 1-2 more trivial edits (case, punctuation, filler, ...).
- negatives: every look-alike kind applied to the same phrasing, half of them *also*
  carrying a typo elsewhere, so that "one typo" never means "same answer" by itself.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from functools import lru_cache
from pathlib import Path

from sluice.cache.semantic import lexicon as lx
from sluice.cache.semantic.training.edits import trivial
from sluice.cache.semantic.training.lookalike import KINDS, SWAPS, lookalike
from sluice.cache.semantic.training.pairs import Cluster, Pair, is_calibration, read_seeds
from sluice.cache.semantic.training.pairs import seed_file as read_seed_file

_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_WORD = re.compile(r"[A-Za-z]+")
MIN_LEN = 4


def _neighbours() -> dict[str, str]:
    near: dict[str, str] = {}
    for r, row in enumerate(_ROWS):
        for i, ch in enumerate(row):
            keys = {row[j] for j in (i - 1, i + 1) if 0 <= j < len(row)}
            for other in (r - 1, r + 1):
                if 0 <= other < len(_ROWS):
                    keys |= {_ROWS[other][j] for j in (i - 1, i) if 0 <= j < len(_ROWS[other])}
            near[ch] = "".join(sorted(keys))
    return near


_NEAR = _neighbours()


@lru_cache(maxsize=1)
def protected() -> frozenset[str]:
    """Words whose change is a look-alike edit: never typo'd into, nor out of."""
    words = set(lx.NEGATIONS) | set(lx.NUMBER_WORDS) | set(lx.WEEKDAYS) | set(lx.MONTHS)
    words |= set(lx.WHEN_WORDS) | {w for left, right in lx.OPPOSITES for w in left | right}
    for pairs in SWAPS.values():
        for a, b in pairs:
            words |= set(a.lower().split()) | set(b.lower().split())
    words |= {"first", "second", "third", "last", "next", "previous", "before", "after"}
    return frozenset(words)


@lru_cache(maxsize=1)
def vocabulary() -> frozenset[str]:
    from sluice.cache.semantic.nearverbatim import vocabulary as _vocabulary

    return _vocabulary()


@lru_cache(maxsize=8192)
def one_edit_words(word: str) -> tuple[str, ...]:
    """Vocabulary words one edit from `word` (same first letter, >= MIN_LEN, not protected)."""
    from sluice.cache.semantic.nearverbatim import _edits

    vocab, guard = vocabulary(), protected()
    return tuple(
        sorted(
            w
            for w in _edits(word) & vocab
            if w != word and len(w) >= MIN_LEN and w[0] == word[0] and w not in guard
        )
    )


def _spots(text: str) -> list[re.Match[str]]:
    guard = protected()
    return [
        m
        for m in _WORD.finditer(text)
        if len(m.group(0)) >= MIN_LEN and m.group(0).islower() and m.group(0) not in guard
    ]


def real_word_typo(text: str, rng: random.Random) -> str | None:
    """One plain word replaced by a dictionary word one edit away."""
    spots = [(m, one_edit_words(m.group(0))) for m in _spots(text)]
    spots = [(m, ws) for m, ws in spots if ws]
    if not spots:
        return None
    m, words = rng.choice(spots)
    return text[: m.start()] + rng.choice(words) + text[m.end() :]


def keyboard_typo(text: str, rng: random.Random) -> str | None:
    """One slip in a plain word: neighbouring key, dropped, doubled or swapped letters."""
    spots = _spots(text)
    if not spots:
        return None
    m = rng.choice(spots)
    w, i = m.group(0), rng.randrange(len(m.group(0)))
    kind = rng.randrange(4)
    if kind == 0 and w[i] in _NEAR:
        w = w[:i] + rng.choice(_NEAR[w[i]]) + w[i + 1 :]
    elif kind == 1:
        w = w[:i] + w[i + 1 :]
    elif kind == 2:
        w = w[:i] + w[i] + w[i:]
    elif i < len(w) - 1:
        w = w[:i] + w[i + 1] + w[i] + w[i + 2 :]
    out = text[: m.start()] + w + text[m.end() :]
    return out if out != text else None


def cluster_pairs(c: Cluster, rng: random.Random, per_phrasing: int) -> list[Pair]:
    out: list[Pair] = []

    def add(a: str, b: str, label: int, kind: str) -> None:
        if rng.random() < 0.5:
            a, b = b, a
        out.append(Pair(a, b, label, kind, c.topic, c.key))

    def noisy(text: str) -> str:
        return trivial(text, rng)[0] if rng.random() < 0.5 else text

    for p in c.phrasings:
        for _ in range(per_phrasing):
            t = real_word_typo(p, rng)
            if t is not None:
                add(p, noisy(t), 1, "trivial")
        t = keyboard_typo(p, rng)
        if t is not None:
            add(p, noisy(t), 1, "trivial")
        for kind in KINDS:
            edited = lookalike(p, kind, rng)
            if edited is None:
                continue
            if rng.random() < 0.5:
                edited = (real_word_typo if rng.random() < 0.5 else keyboard_typo)(
                    edited, rng
                ) or edited
            add(p, edited, 0, kind)
    return out


def build(
    seed: int, per_phrasing: int, calibration: bool = False, limit: int | None = None
) -> list[Pair]:
    """Pairs from the train clusters, or (`calibration`: a dev set) the calibration ones."""
    rng = random.Random(seed)
    seeds = read_seeds(read_seed_file("train.txt"))
    clusters = [c for c in seeds if is_calibration(c) == calibration][:limit]
    seen: set[tuple[str, str]] = set()
    pairs = []
    for c in clusters:
        for pair in cluster_pairs(c, rng, per_phrasing):
            if (pair.a, pair.b) in seen or pair.a == pair.b:
                continue
            seen.add((pair.a, pair.b))
            pairs.append(pair)
    rng.shuffle(pairs)
    return pairs


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--per-phrasing", type=int, default=2)
    ap.add_argument("--calibration", action="store_true", help="a dev set: calibration seeds")
    args = ap.parse_args(argv)
    pairs = build(args.seed, args.per_phrasing, args.calibration)
    Path(args.out).write_text("".join(p.to_json() + "\n" for p in pairs))
    counts: dict[str, int] = {}
    for p in pairs:
        counts[f"{p.label}:{p.kind}"] = counts.get(f"{p.label}:{p.kind}", 0) + 1
    sys.stdout.write(json.dumps({"pairs": len(pairs), "by_kind": counts}) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
