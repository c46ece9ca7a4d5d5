"""The normalised exact tier's canonical form: what is left of a question once everything that
carries no meaning is removed.

Removed: Unicode compatibility forms (NFKC), case, curly quotes, runs of whitespace, commas
between words, duplicate and trailing punctuation, greetings/politeness/filler at either end
("hi,", "quick question:", "thanks in advance"), the word "please", and common contractions
(spelt out: "what's" -> "what is", "can't" -> "can not"). Nothing else: numbers, negations,
prepositions, names and word order are kept, so two questions with one canonical form ask
the same thing and an exact match on it cannot be a false hit. It is *not* a fuzzy matcher —
"How do I reset my password" and "How can I reset my password" stay different (the
semantic tier's job).

Measured on the held-out pair set (BENCHMARKS.md, "Semantic cache v2"): the tier alone serves
the identical and most trivially varied pairs, in ~10 µs, without loading a model.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

__all__ = ["canonical", "without_filler"]

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u02bc": "'", "`": "'", "\u201c": '"'})
_CONTRACTIONS = {
    "can't": "can not", "won't": "will not", "shan't": "shall not",
    "ain't": "is not", "what's": "what is", "it's": "it is", "that's": "that is",
    "there's": "there is", "here's": "here is", "who's": "who is", "where's": "where is",
    "how's": "how is", "when's": "when is", "why's": "why is", "he's": "he is",
    "she's": "she is", "let's": "let us", "i'm": "i am",
}  # fmt: skip
_SUFFIXES = (("n't", " not"), ("'re", " are"), ("'ve", " have"), ("'ll", " will"), ("'d", " would"))
_WORD = re.compile(r"[a-z]+'[a-z]+")
_CANNOT = re.compile(r"\bcannot\b")
_LEAD = re.compile(
    r"^(?:(?:(?:hi|hello|hey) (?:there|team|all|everyone|folks|guys)|hi|hello|hey|hiya|"
    r"greetings|good (?:morning|afternoon|evening|day)|dear \w+|ok(?:ay)?,? so|so|um+|uh+|hmm+|"
    r"please|excuse me|sorry to bother you,? but|quick question|a quick question|question|"
    r"i have a (?:quick )?question|one more question)\s*[,.:;!?-]*\s+)+"
)
_TAIL = re.compile(
    r"(?:[\s,.;:!?-]+(?:thanks?(?: you)?(?: (?:so|very) much)?(?: in advance)?|thx|ty|tia|"
    r"cheers|please|please help|any help (?:is )?appreciated|many thanks|much appreciated|"
    r"help please|regards))+[\s.!?]*$"
)
_PLEASE = re.compile(r"\bplease\b,?\s*")
_COMMA = re.compile(r"(?<!\d),|,(?!\d)")
_REPEAT = re.compile(r"([!?.;:\-])\1+")
_SPACE_BEFORE = re.compile(r"\s+([?!.,;:])")
_TRAILING = re.compile(r"[\s?!.;:,…]+$")
_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=8192)
def canonical(text: str) -> str:
    """The canonical form of a question (memoised: repeated questions cost a dict lookup)."""
    t = unicodedata.normalize("NFKC", text).translate(_QUOTES).casefold()
    t = _SPACES.sub(" ", t).strip()
    t = _CANNOT.sub("can not", _WORD.sub(_expand, t))
    for _ in range(2):  # "hi, quick question: ..." and "... thanks! cheers"
        t = _LEAD.sub("", t)
        t = _TAIL.sub("", t)
    t = _PLEASE.sub("", t)
    t = _COMMA.sub(" ", t)
    t = _REPEAT.sub(r"\1", t)
    t = _SPACE_BEFORE.sub(r"\1", t)
    t = _TRAILING.sub("", t)
    return _SPACES.sub(" ", t).strip()


_LEAD_ANY_CASE = re.compile(_LEAD.pattern, re.IGNORECASE)
_TAIL_ANY_CASE = re.compile(_TAIL.pattern, re.IGNORECASE)


@lru_cache(maxsize=8192)
def without_filler(text: str) -> str:
    """`text` (NFKC) without greetings/politeness at either end, case kept: what the contrast
    guard reads, so "Good morning, ..." is no date and "thanks" no difference."""
    t = unicodedata.normalize("NFKC", text).strip()
    for _ in range(2):
        t = _LEAD_ANY_CASE.sub("", t)
        t = _TAIL_ANY_CASE.sub("", t)
    return t or text


def _expand(m: re.Match[str]) -> str:
    word = m.group(0)
    fixed = _CONTRACTIONS.get(word)
    if fixed is not None:
        return fixed
    for suffix, full in _SUFFIXES:
        if word.endswith(suffix):
            return word[: -len(suffix)] + full
    return word  # possessives ("john's") and anything unknown stay as written
