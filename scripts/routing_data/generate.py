"""Build the learned router's labelled prompts from the hand-written seeds (deterministic).

    python scripts/routing_data/generate.py tests/data/routing_learned

Writes train.jsonl, calib.jsonl and heldout.jsonl. Labels come from the family a prompt was
built from (see LABELLING.md); the splits never share a template, a concrete prompt or a
wrapper phrasing, heldout shares no slot value with the others, and four whole families
(HR and travel questions; SQL and statistics tasks) appear only in heldout, so held-out
numbers measure generalisation to unseen wording and unseen topics rather than recall of
templates. Calibration rows, likewise, use templates and topics train never saw.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import string
import sys
from pathlib import Path
from typing import Any

import seeds_cheap as sc
import seeds_hard as sh
import seeds_strong as ss

SPLITS = ("train", "calib", "heldout")
PER_FAMILY = {"train": 160, "calib": 45, "heldout": 45}  # rows from one templated family
FREE_VARIANTS = 3  # wrapped copies of each concrete (slot-free) prompt in train

# Wrappers are shared by both labels (so they carry no label signal) and split like seeds.
PREFIXES = [
    "", "", "", "", "Hi, ", "hey ", "Quick question: ", "Hello! ", "Can you help? ",
    "Please help. ", "Good morning. ", "I have a question. ", "Sorry to bother you, ",
    "Hi there, hope you're well. ", "urgent: ", "Question from our team: ",
    "I'm on the Pro plan. ", "Customer here. ", "One more thing: ", "Hey, ",
    "Hi support team, ", "So, ", "Me again. ",
]  # fmt: skip
SUFFIXES = [
    "", "", "", "", " Thanks!", " thx", " Thank you.", " Cheers.", " Please be quick.",
    " Thanks in advance!", " :)", " Appreciate it.", " Much appreciated.", " ty",
    " Let me know.", " Many thanks, Sam", " (asking for a colleague)",
]  # fmt: skip


def bucket(*parts: object) -> int:
    key = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "big")


def split_of(items: list[Any], salt: str) -> dict[str, list[Any]]:
    """60/20/20 by hash; with three or more items every split gets at least one."""
    ranked = sorted(items, key=lambda x: bucket(salt, repr(x)))
    n = len(ranked)
    if n < 3:
        return {s: list(ranked) for s in SPLITS}
    n_cal = max(1, round(n * 0.2))
    n_held = max(1, round(n * 0.2))
    return {
        "heldout": ranked[:n_held],
        "calib": ranked[n_held : n_held + n_cal],
        "train": ranked[n_held + n_cal :],
    }


WRAP = {"pre": split_of(PREFIXES[4:], "pre"), "suf": split_of(SUFFIXES[4:], "suf")}


def wrap(text: str, split: str, rng: random.Random, p: float = 0.35) -> str:
    if rng.random() < p:
        text = rng.choice(WRAP["pre"][split]) + _lower_first(text)
    if rng.random() < p * 0.7:
        text = text + rng.choice(WRAP["suf"][split])
    if rng.random() < 0.12:
        text = text.lower()
    if rng.random() < 0.08:
        text = typo(text, rng)
    return text


def _lower_first(text: str) -> str:
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        return text[0].lower() + text[1:]
    return text


def typo(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    idx = [i for i, w in enumerate(words) if len(w) > 4 and w.isalpha()]
    if not idx:
        return text
    i = rng.choice(idx)
    w = words[i]
    j = rng.randrange(1, len(w) - 2)
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    return " ".join(words)


def fields(template: str) -> list[str]:
    return sorted({f.split("[")[0] for _, f, _, _ in string.Formatter().parse(template) if f})


def templated(
    family: tuple[str, str, list[str], dict[str, list[Any]]],
    label: str,
    split: str,
    held_family: bool,
) -> list[dict[str, Any]]:
    name, task, templates, slots = family
    rng = random.Random(bucket(name, split))
    if not slots:
        prompts = templates if held_family else split_of(templates, name)[split]
        out = []
        for prompt in prompts:
            # Train gets wrapped copies (augmentation); calib and heldout one row per prompt,
            # so near-duplicates never weigh twice in a threshold or a reported share.
            variants = {prompt} if split == "train" else set()
            for k in range(FREE_VARIANTS if split == "train" else 1):
                variants.add(wrap(prompt, split, random.Random(bucket(prompt, k)), 0.6))
            out += [row(v, task, label, name, split) for v in sorted(variants)]
        return out
    tpls = split_of(templates, name + "/t")[split]
    values = {k: slot_values(v, f"{name}/{k}", split) for k, v in slots.items()}
    seen: set[str] = set()  # one row per distinct filled template (wrappers vary surface only)
    out = []
    for _ in range(PER_FAMILY[split] * 6):
        if len(out) >= PER_FAMILY[split]:
            break
        tpl = rng.choice(tpls)
        filled = tpl.format(**{k: rng.choice(values[k]) for k in fields(tpl)})
        if filled not in seen:
            seen.add(filled)
            out.append(row(wrap(filled, split, rng), task, label, name, split))
    return out


def slot_values(values: list[Any], salt: str, split: str) -> list[Any]:
    """50/25/25: calib and heldout each get their own quarter of the values, so both differ
    from train by template and by topic (a threshold calibrated on topics train has seen
    would be too optimistic about new traffic)."""
    ranked = sorted(values, key=lambda x: bucket(salt, repr(x)))
    if len(ranked) < 4:
        return ranked
    quarter = max(1, round(len(ranked) * 0.25))
    if split == "heldout":
        return ranked[:quarter]
    if split == "calib":
        return ranked[quarter : 2 * quarter]
    return ranked[2 * quarter :]


def long_support(split: str) -> list[dict[str, Any]]:
    """Long, chatty support messages whose actual ask is simple (cheap)."""
    rng = random.Random(bucket("long", split))
    ctx = split_of(sc.CONTEXT_SENTENCES, "ctx")[split]
    asks = split_of(sc.SIMPLE_ASKS, "asks")[split]
    out = []
    for _ in range(PER_FAMILY[split] // 2):
        parts = [rng.choice(sc.GREETINGS)]
        parts += rng.sample(ctx, k=min(len(ctx), rng.randint(2, 6)))
        parts.append(rng.choice(asks))
        out.append(row(" ".join(parts), "support", "cheap", "long_support", split))
    return out


def multi_turn(split: str) -> list[dict[str, Any]]:
    """Conversations whose last turn only makes sense with the history."""
    out = []
    for topic, history in sh.HISTORIES.items():
        turns = [
            {"role": "user" if i % 2 == 0 else "assistant", "content": t}
            for i, t in enumerate(history)
        ]
        for label, pool in (("strong", sh.FOLLOW_STRONG), ("cheap", sh.FOLLOW_CHEAP)):
            for text in split_of(pool[topic], f"follow/{topic}/{label}")[split]:
                out.append(row(text, "multi_turn", label, f"follow_{label}", split, turns))
    return out


def with_history(rows: list[dict[str, Any]], split: str) -> None:
    """Give ~12% of single-turn rows an unrelated earlier exchange (both labels alike)."""
    rng = random.Random(bucket("hist", split))
    pool = [
        sh.SUPPORT_HISTORY,
        ["hi", "Hello! How can I help you today?"],
        ["Thanks for the help earlier.", "You're welcome! Anything else?"],
    ]
    for r in rows:
        if "history" not in r and rng.random() < 0.12:
            h = rng.choice(pool)
            r["history"] = [
                {"role": "user", "content": h[0]},
                {"role": "assistant", "content": h[1]},
            ]


def row(
    prompt: str,
    task: str,
    label: str,
    family: str,
    split: str,
    history: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    r: dict[str, Any] = {
        "prompt": prompt,
        "task": task,
        "expected": label,
        "complexity": "complex" if label == "strong" else "simple",
        "family": family,
        "split": split,
    }
    if history:
        r["history"] = history
    return r


def build(split: str) -> list[dict[str, Any]]:
    held = sc.HELD_OUT_CHEAP | ss.HELD_OUT_STRONG
    rows: list[dict[str, Any]] = []
    groups = [
        ("cheap", sc.CHEAP_FAMILIES + sh.HARD_FAMILIES_CHEAP),
        ("strong", ss.STRONG_FAMILIES + sh.HARD_FAMILIES_STRONG),
    ]
    for label, families in groups:
        for fam in families:
            if fam[0] in held and split != "heldout":
                continue
            rows += templated(fam, label, split, fam[0] in held)
    rows += long_support(split)
    with_history(rows, split)
    rows += multi_turn(split)
    unique = {(r["prompt"], json.dumps(r.get("history"))): r for r in rows}
    return sorted(unique.values(), key=lambda r: bucket(r["prompt"], split))


def main(out_dir: str) -> None:
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    for split in SPLITS:
        rows = [r for r in build(split) if r["prompt"] not in seen]
        seen |= {r["prompt"] for r in rows}
        with (folder / f"{split}.jsonl").open("w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        counts = {
            k: len(list(g)) for k, g in itertools.groupby(sorted(r["expected"] for r in rows))
        }
        sys.stdout.write(f"{split}: {len(rows)} rows {counts}\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/routing_learned")
