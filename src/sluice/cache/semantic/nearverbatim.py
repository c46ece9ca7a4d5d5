"""Near-verbatim pairs: the same question with a typo or a moved phrase, served without a model.

The normalized tier (`normalize.canonical`) is an exact match, so "when will my caim be
processed" and "on fridays can i work from home" / "can i work from home on fridays" reach
the verifier, which scored many such pairs under its threshold (trivial variants served:
73% on the held-out split before this rule). `near_verbatim(a, b)` accepts exactly two
shapes of difference between the canonical forms, and nothing else:

- typo: the same words in the same order except at most two, each differing by one edit
  (insert, delete, substitute, or swap two neighbours), where the differing words are
  letters only, at least 4 long, and at least one of the two is *not a word* in the
  embedder's vocabulary (a misspelling, never "hating"/"heating" or "ties"/"times"); a
  misspelt negation, number word, date word or side of an opposite pair counts only when it
  is one edit from that protected word and no other ("atfer" is after; "ater" may be after
  or later: refused);
- moved phrase: one question is the other rotated at a word boundary ("X Y" -> "Y X") where
  the moved part starts with a preposition or "if/when" (an adverbial: "on fridays",
  "in the app", "if i cancel"); word order inside each part is unchanged, so role swaps
  ("A pays B" / "B pays A") are not rotations.

Both need English: ASCII letters in the differing words and at least 60% of the unchanged
words in the English vocabulary — in another language the vocabulary cannot tell a typo
from another word ("puedo"/"pudo", "退货"/"退款").

It runs before the contrast guard, which reads a misspelt word as an entity ("pyhon") or a
date ("montly"); this rule protects numbers, negations, dates and opposites itself. Measured
on every negative pair we have (train, calibration, held-out and the public set: 14,288
pairs), it accepts none; see BENCHMARKS.md ("Semantic cache v2") and the test
`tests/unit/test_semcache_nearverbatim.py`.
"""

from __future__ import annotations

from functools import lru_cache

from sluice.cache.semantic import lexicon as lx
from sluice.cache.semantic.normalize import canonical

__all__ = ["near_verbatim", "one_edit", "vocabulary"]

MAX_TYPOS = 2
ENGLISH_SHARE = 0.6  # of the unchanged words, in the English vocabulary
MAX_WORDS = 64  # longer questions go to the verifier (the rotation check is quadratic)
MIN_TYPO_LEN = 4
_MOVERS = frozenset(
    [
        "on",
        "in",
        "at",
        "for",
        "during",
        "after",
        "before",
        "by",
        "with",
        "from",
        "within",
        "via",
        "using",
        "through",
        "when",
        "if",
        "while",
        "without",
        "inside",
        "outside",
    ]
)
# Unit abbreviations one letter apart (mbps/gbps, kwh/mwh): never typos of each other.
_UNITS = frozenset(
    [
        "kbps",
        "mbps",
        "gbps",
        "tbps",
        "kwh",
        "mwh",
        "gwh",
        "kbit",
        "mbit",
        "gbit",
        "kib",
        "mib",
        "gib",
        "tib",
        "khz",
        "mhz",
        "ghz",
        "mmhg",
    ]
)
_PROTECTED: frozenset[str] = frozenset(
    set(lx.NEGATIONS)
    | set(lx.NUMBER_WORDS)
    | set(lx.WEEKDAYS)
    | set(lx.MONTHS)
    | set(lx.WHEN_WORDS)
    | {w for left, right in lx.OPPOSITES for w in left | right}
)


def one_edit(x: str, y: str) -> bool:
    """True when `y` is `x` with exactly one insert, delete, substitution or transposition."""
    if x == y or abs(len(x) - len(y)) > 1:
        return False
    if len(x) == len(y):
        diff = [i for i, (p, q) in enumerate(zip(x, y, strict=True)) if p != q]
        if len(diff) == 1:
            return True
        return (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and x[diff[0]] == y[diff[1]]
            and x[diff[1]] == y[diff[0]]
        )
    short, long_ = (x, y) if len(x) < len(y) else (y, x)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1 :]


@lru_cache(maxsize=1)
def vocabulary() -> frozenset[str]:
    """Whole words of the embedder's WordPiece vocabulary (a ~22k-word English dictionary)."""
    from sluice.embed import model_files

    tokenizer = model_files.read_tokenizer(model_files.model_dir(), 16)
    # The WordPiece list misses common words it splits ("delete" is del + ##ete); the
    # protected words are words too, so "deltee" reads as a typo of "delete".
    return frozenset(w for w in tokenizer.get_vocab() if w.isalpha()) | _PROTECTED


def _typo(x: str, y: str) -> bool:
    if not (x.isascii() and y.isascii() and x.isalpha() and y.isalpha()):
        return False  # "我想退货"/"我想退款" differ by one character and mean other things
    if min(len(x), len(y)) < MIN_TYPO_LEN:
        return False
    if x in _UNITS or y in _UNITS or not one_edit(x, y):
        return False
    if len(x) == len(y) and x[0] != y[0]:
        return False  # a changed first letter: mbps/gbps, kwh/mwh, not a typo
    vocab = vocabulary()
    if x in vocab and y in vocab:
        return False  # a real word for another: "ties"/"times", "three"/"there"
    word, typo = (x, y) if x in vocab else (y, x)
    if word in _PROTECTED or typo in _PROTECTED:
        # "atfer" may stand for "after" only if it is one edit from no other protected word
        # ("ater": after or later?), so a misspelt negation/number/date/opposite stays what
        # it was and can never turn into its opposite.
        return _edits(typo) & _PROTECTED == {word}
    return True


def _edits(typo: str) -> set[str]:
    """Every string one edit away from `typo`."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    splits = [(typo[:i], typo[i:]) for i in range(len(typo) + 1)]
    edits = {a + b[1:] for a, b in splits if b}
    edits |= {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    edits |= {a + c + b[1:] for a, b in splits if b for c in letters}
    edits |= {a + c + b for a, b in splits for c in letters}
    return edits


def _typos(a: list[str], b: list[str]) -> bool:
    if len(a) != len(b):
        return False
    diff = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
    same = [x for x, y in zip(a, b, strict=True) if x == y]
    return 0 < len(diff) <= MAX_TYPOS and _english(same) and all(_typo(x, y) for x, y in diff)


def _english(words: list[str]) -> bool:
    """Most words are English dictionary words: the vocabulary check that tells a typo from
    another word means nothing in another language ("puedo"/"pudo": can/could)."""
    vocab = vocabulary()
    letters = [w.strip("'-") for w in words if any(c.isalpha() for c in w)]
    known = sum(w in vocab or w.replace("'", "") in vocab for w in letters)
    return bool(letters) and known >= ENGLISH_SHARE * len(letters)


def _moved(a: list[str], b: list[str]) -> bool:
    """`b` is `a` rotated at a word boundary, the moved part an adverbial (plus typos)."""
    if len(a) != len(b) or len(a) < 3 or not _english(a):
        return False
    for cut in range(1, len(a)):
        if a[cut] in _MOVERS or a[0] in _MOVERS:
            turned = a[cut:] + a[:cut]
            if turned == b or _typos(turned, b):
                return True
    return False


@lru_cache(maxsize=2048)  # pairs of questions up to `max_question_chars`: bounded memory
def near_verbatim(a: str, b: str) -> str | None:
    """ "typo" or "moved phrase" when `a` and `b` are the same question written so, else None."""
    ta, tb = canonical(a).split(), canonical(b).split()
    if ta == tb or len(ta) > MAX_WORDS:
        return None  # the normalized tier's case, or too long to check cheaply
    if _typos(ta, tb):
        return "typo"
    if _moved(ta, tb):
        return "moved phrase"
    return None
