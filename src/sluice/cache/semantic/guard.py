"""Contrast guard: refuse a semantic match when two questions differ in a way cosine misses.

Sentence embeddings place "How do I upload a file?" and "How do I download a file?" (or
"... in Python 3.11" / "... in Python 3.12", "... with a card" / "... without a card") closer
together than many true paraphrases (measured: NOTES-offline.md, BENCHMARKS.md). Such a
pair needs different answers, so a semantic cache must not serve one for the other.
`contrast(a, b)` compares cheap lexical features of both texts and names the first difference:

- negation: one side negates (not, never, no, without, can't, ...) and the other does not;
- date: different weekdays, months, years, clock times, or when-words (today, tomorrow, ...);
- number: different numbers, amounts or versions (digits and number words, 10k = 10000);
- entity: a name, product, place, acronym or code/identifier in one text is absent from the
  other (capitalised words, camelCase, ALL-CAPS, tokens with digits or dots/underscores);
- direction: opposite words (upload/download, buy/sell, before/after, min/max, ...) or the
  same two words swapped around "to/from/than/vs" ("USD to EUR" vs "EUR to USD");
- word swap: the same words in a meaning-changing order (`swap.word_swap`: "an admin deletes
  a member's project" vs "a member deletes an admin's project").

It errs on the side of refusing (a refused paraphrase costs one upstream call; a false hit
serves a wrong answer). Pure; features are memoised per text (8,192 texts): measured on
the shared 2-core machine, ~12 µs a pair when both texts were seen, ~0.3 ms for two new ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from sluice.cache.semantic import lexicon as lx
from sluice.cache.semantic.swap import word_swap

__all__ = ["contrast"]

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_'.\-/:@+#]*[A-Za-z0-9+#]|[A-Za-z0-9]")
_CLAUSE_END = frozenset('.!?:;"([{*>-')
_TIME = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s*([ap])\.?m\b\.?|\b(\d{1,2}):(\d{2})\b", re.I)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*(?:[kK]\b)?")
_THOUSANDS = re.compile(r"^\d{1,3}(?:,\d{3})+$")
_CODE_SHAPE = re.compile(r"[A-Za-z].*\d|\d.*[A-Za-z]|[a-z][A-Z]|[._/@#+]|^[A-Z]{2,}s?$")

_OPPOSITE_INDEX: dict[str, list[tuple[int, int]]] = {}
for _i, (_left, _right) in enumerate(lx.OPPOSITES):
    for _side, _words in enumerate((_left, _right)):
        for _w in _words:
            _OPPOSITE_INDEX.setdefault(_w, []).append((_i, _side))


@dataclass(frozen=True, slots=True)
class _Features:
    words: tuple[str, ...]  # lower case, apostrophes dropped, in order
    vocab: frozenset[str]  # words plus the parts of compound tokens
    negated: bool
    numbers: frozenset[str]
    dates: frozenset[str]
    entities: frozenset[str]
    sides: frozenset[tuple[int, int]]  # (opposite pair, side) present
    prefixed: tuple[tuple[str, str], ...]  # ("unsafe", "safe"): words with a negating prefix
    marked: tuple[tuple[str, str, str], ...]  # (marker kind, word before, word after)
    marker_kinds: frozenset[str]
    first_at: dict[str, int]  # word -> first position


def contrast(a: str, b: str) -> str | None:
    """The reason `a` and `b` need different answers (e.g. "number: 3.11 vs 3.12"), or None."""
    fa, fb = _features(a), _features(b)
    if fa.negated != fb.negated:
        return "negation: only one side is negated"
    prefixed = _negated_by_prefix(fa, fb) or _negated_by_prefix(fb, fa)
    if prefixed:
        return f"negation: {prefixed}"
    if fa.dates != fb.dates:
        return f"date: {_show(fa.dates - fb.dates)} vs {_show(fb.dates - fa.dates)}"
    if fa.numbers != fb.numbers:
        return f"number: {_show(fa.numbers - fb.numbers)} vs {_show(fb.numbers - fa.numbers)}"
    missing = _missing(fa.entities, fb.vocab) | _missing(fb.entities, fa.vocab)
    if missing:
        return f"entity: {_show(frozenset(missing))} on one side only"
    return _opposite(fa, fb) or _swapped(fa, fb) or _swapped(fb, fa) or word_swap(a, b)


def _show(values: frozenset[str]) -> str:
    return ", ".join(sorted(values)) or "none"


def _missing(entities: frozenset[str], vocab: frozenset[str]) -> set[str]:
    def present(e: str) -> bool:
        return e in vocab or e + "s" in vocab or (e.endswith("s") and e[:-1] in vocab)

    return {e for e in entities if not present(e)}


def _negated_by_prefix(fa: _Features, fb: _Features) -> str | None:
    """`fa` says "unsafe"/"invalid"/"dislike" where `fb` says "safe"/"valid"/"like"."""
    for word, stem in fa.prefixed:
        if stem in fb.vocab and word not in fb.vocab and stem not in fa.vocab:
            return f"{word} vs {stem}"
    return None


_NEGATING_PREFIXES = ("un", "in", "im", "dis", "non", "il", "ir")


def _opposite(fa: _Features, fb: _Features) -> str | None:
    for pair, side in fa.sides:
        only_here = (pair, 1 - side) not in fa.sides and (pair, side) not in fb.sides
        if only_here and (pair, 1 - side) in fb.sides:
            words = lx.OPPOSITES[pair]
            shown = [min(words[side], key=len), min(words[1 - side], key=len)]
            return f"direction: {shown[0]} vs {shown[1]}"
    return None


def _swapped(fa: _Features, fb: _Features) -> str | None:
    """Words around a direction marker in `fa` appear in the opposite order in `fb`.

    Only when `fb` uses a marker of the same kind: "X to Y" vs "Y to X" is a swap, while
    "the Moon from Earth" vs "between Earth and the Moon" is not.
    """
    for kind, left, right in fa.marked:
        if kind not in fb.marker_kinds:
            continue
        at_left, at_right = fb.first_at.get(left), fb.first_at.get(right)
        if at_left is not None and at_right is not None and at_right < at_left:
            marker = next(m for m, k in lx.DIRECTION_MARKERS.items() if k == kind)
            return f"direction: {left} {marker} {right} reversed"
    return None


def _markers(words: tuple[str, ...]) -> tuple[tuple[str, str, str], ...]:
    """(marker kind, nearest content word before, after) for each direction marker."""
    content = [w for w in words if w not in lx.STOPWORDS]
    found = []
    for i, w in enumerate(content):
        kind = lx.DIRECTION_MARKERS.get(w)
        if kind is None:
            continue
        left = next((c for c in reversed(content[:i]) if c not in lx.DIRECTION_MARKERS), None)
        right = next((c for c in content[i + 1 :] if c not in lx.DIRECTION_MARKERS), None)
        if left is not None and right is not None and left != right:
            found.append((kind, left, right))
    return tuple(found)


def _prefixed(words: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for w in words:
        for prefix in _NEGATING_PREFIXES:
            stem = w[len(prefix) :].lstrip("-")
            if w.startswith(prefix) and len(stem) >= 4:
                pairs.append((w, stem))
    return tuple(pairs)


@lru_cache(maxsize=8192)
def _features(text: str) -> _Features:
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    tokens = [(m.group(), m.start()) for m in _TOKEN.finditer(text)]
    words = tuple(t.lower().removesuffix("'s").replace("'", "") for t, _ in tokens)
    vocab = set(words)
    for token, _ in tokens:
        low = token.lower()
        vocab.update(p for p in re.split(r"[._/\-@:']", low) if p)
        vocab.add(low.removesuffix("'s"))
    negated = any(w in lx.NEGATIONS for w in words)  # "don't" became "dont"
    dates, rest = _dates(text, words)
    numbers, years = _numbers(rest, words)
    sides = frozenset(s for w in words for s in _OPPOSITE_INDEX.get(w, ()))
    first_at: dict[str, int] = {}
    for i, w in enumerate(words):
        first_at.setdefault(w, i)
    return _Features(
        words=words,
        vocab=frozenset(vocab),
        negated=negated,
        numbers=numbers,
        dates=dates | years,
        entities=_entities(text, tokens),
        sides=sides,
        prefixed=_prefixed(words),
        marked=_markers(words),
        marker_kinds=frozenset(lx.DIRECTION_MARKERS[w] for w in words if w in lx.DIRECTION_MARKERS),
        first_at=first_at,
    )


def _dates(text: str, words: tuple[str, ...]) -> tuple[frozenset[str], str]:
    """Date/time markers, and the text with clock times blanked (so 3pm is not the number 3)."""
    found: set[str] = set()

    def clock(m: re.Match[str]) -> str:
        if m.group(3):
            hour = int(m.group(1)) % 12 + (12 if m.group(3).lower() == "p" else 0)
            minute = int(m.group(2) or 0)
        else:
            hour, minute = int(m.group(4)), int(m.group(5))
        found.add(f"{hour:02d}:{minute:02d}")
        return " "

    rest = _TIME.sub(clock, text)
    for i, w in enumerate(words):
        if w in lx.WEEKDAYS or w.rstrip("s") in lx.WEEKDAYS:
            found.add(w.rstrip("s"))
        elif w in lx.MONTHS and _is_month(words, i):
            found.add(f"month {lx.MONTHS[w]}")
        elif w in lx.WHEN_WORDS:
            found.add(lx.WHEN_WORDS[w])
        elif w in lx.RELATIVE_WHEN and i + 1 < len(words) and words[i + 1] in lx.PERIODS:
            found.add(f"{w} {words[i + 1]}")
    return frozenset(found), rest


def _is_month(words: tuple[str, ...], i: int) -> bool:
    if words[i] not in lx.AMBIGUOUS_MONTHS:
        return True
    near = [words[j] for j in (i - 1, i + 1) if 0 <= j < len(words)]
    return any(n.isdigit() or n.rstrip("stndrh").isdigit() for n in near) or (
        i > 0 and words[i - 1] in lx.DATE_PREPOSITIONS
    )


def _numbers(text: str, words: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str]]:
    """Normalised numbers, and the years among them (1900-2099) as date markers."""
    numbers: set[str] = set()
    years: set[str] = set()
    for raw in _NUMBER.findall(text):
        thousands = raw.endswith(("k", "K"))
        raw = raw.removesuffix("k").removesuffix("K")
        parts = [raw.replace(",", "")] if _THOUSANDS.match(raw) else raw.split(",")
        for part in parts:
            value = _canonical(part, 1000 if thousands else 1)
            if re.fullmatch(r"(19|20)\d\d", value):
                years.add(f"year {value}")
            else:
                numbers.add(value)
    for w in words:
        if w in lx.NUMBER_WORDS:
            numbers.add(_canonical(str(lx.NUMBER_WORDS[w]), 1))
    return frozenset(numbers), frozenset(years)


def _canonical(number: str, scale: int) -> str:
    if number.count(".") > 1:  # a version: 3.11.2
        return ".".join(str(int(p)) if p.isdigit() else p for p in number.split("."))
    value = float(number) * scale
    return str(int(value)) if value.is_integer() else repr(value)


def _entities(text: str, tokens: list[tuple[str, int]]) -> frozenset[str]:
    """Names, products, acronyms and identifiers, lower-cased."""
    alpha = [t for t, _ in tokens if t[0].isalpha()]
    title_case = len(alpha) >= 4 and sum(t[0].isupper() for t in alpha) >= 0.6 * len(alpha)
    # A shouted question ("HOW DO I CHANGE MY PLAN?"): capitals mark no acronym there, so
    # its dictionary words are words ("PLAN"), its other all-caps tokens still names ("SSO").
    shouted = len(alpha) >= 4 and sum(t.isupper() for t in alpha) >= 0.6 * len(alpha)
    found: set[str] = set()
    for token, start in tokens:
        low = token.lower().removesuffix("'s")
        if low in lx.NOT_ENTITIES or token.isdigit() or _is_number_like(token):
            continue
        if shouted and token.isupper() and _dictionary_word(low):
            continue
        if _CODE_SHAPE.search(token):
            found.add(low)
        elif token[0].isupper() and not title_case:
            before = text[max(0, start - 8) : start].rstrip()
            if before and before[-1] not in _CLAUSE_END:  # not the first word of a clause
                found.add(low)
    return frozenset(found)


def _dictionary_word(word: str) -> bool:
    from sluice.cache.semantic.nearverbatim import vocabulary

    return word.isalpha() and word in vocabulary()


def _is_number_like(token: str) -> bool:
    return bool(re.fullmatch(r"[\d.,:/\-]+(?:k|st|nd|rd|th|s|am|pm)?", token.lower()))
