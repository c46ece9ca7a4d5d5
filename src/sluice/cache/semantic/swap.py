"""Word-swap rule of the contrast guard: the same words in another order ask another question.

"Can an admin delete a member's project?" / "Can a member delete an admin's project?" and
"I received the invoice but was not charged" / "I was charged but did not receive the
invoice" use the same words; cosine scores them ~0.96-0.99. The rule compares the sequences
of content words, negations and relation words (to, from, than, before, ...): the same
multiset in a different order is refused, unless the second is the first with *one*
contiguous block moved ("In Python, how do I reverse a list?" / "How do I reverse a list in
Python?", "between A and B" / "between B and A"), which keeps the meaning.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

from sluice.cache.semantic import lexicon as lx

_TOKEN = re.compile(r"[a-z0-9][a-z0-9'.\-]*[a-z0-9]|[a-z0-9]")
_KEEP_WORDS = "not no never without nor to from than into onto before after within over under"
_KEEP = frozenset((_KEEP_WORDS + " by for with against between of on in at").split(" "))
_SUFFIXES = ("ing", "ed", "es", "s", "d")


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


@lru_cache(maxsize=8192)
def _sequence(text: str) -> tuple[str, ...]:
    words = _TOKEN.findall(text.lower().replace("\u2019", "'"))
    out = []
    for w in words:
        w = w.removesuffix("'s")
        if w.endswith("n't"):
            out.append("not")
            continue
        if w in _KEEP or (w not in lx.STOPWORDS and len(w) > 1):
            out.append(_stem(w))
    return tuple(out)


def _one_block_moved(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    n = len(a)
    for i in range(n):
        for j in range(i + 1, n + 1):
            block, rest = a[i:j], a[:i] + a[j:]
            for k in range(len(rest) + 1):
                if rest[:k] + block + rest[k:] == b:
                    return True
    return False


def word_swap(a: str, b: str) -> str | None:
    """A reason to refuse when `a` and `b` use the same words in a meaning-changing order."""
    sa, sb = _sequence(a), _sequence(b)
    if sa == sb or len(sa) > 24 or Counter(sa) != Counter(sb):
        return None
    if _one_block_moved(sa, sb):
        return None
    return "word swap: the same words in another order"
