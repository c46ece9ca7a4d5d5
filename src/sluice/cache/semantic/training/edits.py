"""Text edits that build labelled pairs from seed questions.

Two families, see `docs/semantic-cache-training.md` for the labelling guide:

- *trivial* edits keep the meaning (so the pair is a positive): casing, punctuation,
  whitespace, filler and politeness, contractions, typos, meaning-preserving word order;
- *look-alike* edits change one detail that needs another answer (a negative): a number,
  unit, date, entity, negation, direction, preposition, antonym, quantifier, condition,
  ordinal, compound word, or two words that swap roles.

Every edit is `(text, rng) -> str | None`; None means "does not apply to this text". Pure
Python, deterministic for a seeded `random.Random`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

Edit = Callable[[str, random.Random], "str | None"]

# --- trivial (meaning-preserving) edits -------------------------------------------------

_FILLER_BEFORE = (
    "hi, ", "Hi! ", "hello, ", "Hey there, ", "quick question: ", "Please, ", "hi team, ",
    "Hello there! ", "excuse me, ", "sorry to bother you, but ", "Good morning, ", "hey ",
    "Question: ", "Hi, I have a question. ", "ok so ", "Hmm, ",
)  # fmt: skip
_FILLER_AFTER = (
    " thanks", " Thanks!", " thank you.", " Thanks in advance.", " please", " Please help.",
    " thx", " Cheers!", " any help appreciated", " Thank you so much!", " ty",
)  # fmt: skip
_CONTRACTIONS = (
    ("I am", "I'm"), ("do not", "don't"), ("does not", "doesn't"), ("did not", "didn't"),
    ("cannot", "can't"), ("is not", "isn't"), ("are not", "aren't"), ("was not", "wasn't"),
    ("will not", "won't"), ("what is", "what's"), ("What is", "What's"), ("it is", "it's"),
    ("I would", "I'd"), ("I have", "I've"), ("there is", "there's"), ("that is", "that's"),
    ("should not", "shouldn't"), ("Where is", "Where's"), ("How is", "How's"),
    ("I will", "I'll"), ("you are", "you're"), ("have not", "haven't"),
)  # fmt: skip
_PROTECTED = re.compile(r"\d|n't|not|no|never|without|[A-Z]{2,}")


def lower(text: str, rng: random.Random) -> str | None:
    return text.lower() if text.lower() != text else None


def upper_first(text: str, rng: random.Random) -> str | None:
    out = text[:1].upper() + text[1:]
    return out if out != text else text.upper() if rng.random() < 0.2 else None


def punctuation(text: str, rng: random.Random) -> str | None:
    stripped = text.rstrip(" ?.!")
    choice = rng.choice(("", "??", "?!", ".", " ?", "???", "!", "?"))
    out = stripped + choice
    if "," in out and rng.random() < 0.4:
        out = out.replace(",", "", 1)
    return out if out != text else stripped


def whitespace(text: str, rng: random.Random) -> str | None:
    words = text.split(" ")
    if len(words) < 3:
        return None
    at = rng.randrange(1, len(words))
    words[at] = " " + words[at]
    return rng.choice(("  ", "", " ")) + " ".join(words) + rng.choice(("", " ", "\n"))


def filler(text: str, rng: random.Random) -> str | None:
    if rng.random() < 0.6:
        head = rng.choice(_FILLER_BEFORE)
        body = text[:1].lower() + text[1:] if head[-2:] in (", ", ": ") else text
        text = head + body
    if rng.random() < 0.5:
        text = text + rng.choice(_FILLER_AFTER)
    return text


def contraction(text: str, rng: random.Random) -> str | None:
    pairs = list(_CONTRACTIONS)
    rng.shuffle(pairs)
    for long, short in pairs:
        for a, b in ((long, short), (short, long)):
            if re.search(rf"\b{re.escape(a)}\b", text):
                return re.sub(rf"\b{re.escape(a)}\b", b, text, count=1)
    return None


def typo(text: str, rng: random.Random) -> str | None:
    """One slip of the keyboard in a long plain word (never in numbers or negations)."""
    words = text.split(" ")
    spots = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha() and w.islower()]
    spots = [i for i in spots if not _PROTECTED.search(words[i])]
    if not spots:
        return None
    i = rng.choice(spots)
    w = words[i]
    j = rng.randrange(1, len(w) - 2)
    kind = rng.randrange(3)
    if kind == 0:
        w = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    elif kind == 1:
        w = w[:j] + w[j + 1 :]
    else:
        w = w[:j] + w[j] + w[j:]
    words[i] = w
    return " ".join(words)


_IN_TAIL = re.compile(r"^(.+?) (in|with|on|for) ([A-Z][\w.+#-]*)\?$")
_IN_HEAD = re.compile(r"^(In|With|On|For) ([A-Z][\w.+#-]*), (.+)\?$")
_BETWEEN = re.compile(r"\bbetween (an? |the )?([\w-]+) and (an? |the )?([\w-]+)")


def word_order(text: str, rng: random.Random) -> str | None:
    """Move a trailing "in Python" to the front (or back), swap "between A and B"."""
    m = _IN_TAIL.match(text)
    if m:
        body = m.group(1)
        return f"{m.group(2).capitalize()} {m.group(3)}, {body[:1].lower()}{body[1:]}?"
    m = _IN_HEAD.match(text)
    if m:
        body = m.group(3)
        return f"{body[:1].upper()}{body[1:]} {m.group(1).lower()} {m.group(2)}?"
    m = _BETWEEN.search(text)
    if m:
        a1, w1, a2, w2 = (g or "" for g in m.groups())
        return text[: m.start()] + f"between {a2}{w2} and {a1}{w1}" + text[m.end() :]
    return None


TRIVIAL: dict[str, Edit] = {
    "case": lower,
    "capital": upper_first,
    "punctuation": punctuation,
    "whitespace": whitespace,
    "filler": filler,
    "contraction": contraction,
    "typo": typo,
    "order": word_order,
}


def trivial(text: str, rng: random.Random, steps: int = 2) -> tuple[str, str]:
    """Apply 1..steps random trivial edits; returns (new text, names of edits applied)."""
    names = rng.sample(sorted(TRIVIAL), k=min(len(TRIVIAL), rng.randint(1, steps)))
    done = []
    for name in names:
        out = TRIVIAL[name](text, rng)
        if out is not None and out != text:
            text = out
            done.append(name)
    return text, "+".join(done) or "identical"
