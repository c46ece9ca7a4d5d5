"""Structure-aware chunking: headings → paragraphs → sentences, packed up to a token bound.

Why not fixed windows: a chunk that starts mid-sentence or spans two sections both ranks worse
(BM25 and the embedder see unrelated text) and reads worse as a citation. So a document is cut
at Markdown headings first (each chunk remembers its heading path, which is prefixed to the
text that is *indexed*, not to the text that is shown), then at blank lines, then at sentence
ends; sentences are packed greedily until `max_tokens`; a single sentence longer than that is
cut at word boundaries. Each chunk keeps its sentences, so a hit can be widened at query time
by the neighbouring chunks' adjacent sentences (`window`).

Token counts are `sluice.tokens.count_text` (the gateway's estimator), so the bound is the one
the context budget later charges.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sluice.tokens import count_text

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SENTENCE = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9`])")
_MAX_HEADING_DEPTH = 6


@dataclass(frozen=True, slots=True)
class Chunk:
    """One indexed passage: `text` is shown and cited; `heading` is indexed with it."""

    seq: int
    text: str
    heading: str
    tokens: int
    sentences: tuple[str, ...] = field(default=(), compare=False)

    @property
    def indexed_text(self) -> str:
        return f"{self.heading}\n{self.text}" if self.heading else self.text


def split_sentences(paragraph: str) -> list[str]:
    text = " ".join(paragraph.split())
    if not text:
        return []
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


def _sections(text: str) -> list[tuple[str, str]]:
    """(heading path, body) in document order; Markdown ATX headings set the path."""
    path: list[str] = []
    out: list[tuple[str, str]] = []
    body: list[str] = []
    in_code = False

    def flush() -> None:
        if any(line.strip() for line in body):
            out.append((" > ".join(path), "\n".join(body)))
        body.clear()

    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        match = None if in_code else _HEADING.match(line)
        if match:
            flush()
            depth = min(len(match.group(1)), _MAX_HEADING_DEPTH)
            path[depth - 1 :] = [match.group(2)[:200]]
            continue
        body.append(line)
    flush()
    return out


def _cut_word(word: str, max_tokens: int) -> list[str]:
    """A "word" longer than a chunk (a spaceless line, base64, minified code) cut into
    pieces that fit: `max_tokens * 4` characters (alphanumeric runs), else `max_tokens`
    characters (punctuation counts one token a character), so no chunk is a megabyte blob."""
    wide = [word[i : i + max_tokens * 4] for i in range(0, len(word), max_tokens * 4)]
    out: list[str] = []
    for piece in wide:
        if count_text(piece) <= max_tokens:
            out.append(piece)
        else:
            out.extend(piece[i : i + max_tokens] for i in range(0, len(piece), max_tokens))
    return out


def _split_long(sentence: str, max_tokens: int) -> list[str]:
    words: list[str] = []
    for word in sentence.split(" "):
        words.extend(_cut_word(word, max_tokens) if len(word) > max_tokens else [word])
    size = 0
    out: list[str] = []
    current: list[str] = []
    for word in words:
        n = count_text(word)
        if current and size + n > max_tokens:
            out.append(" ".join(current))
            current, size = [], 0
        current.append(word)
        size += n
    if current:
        out.append(" ".join(current))
    return out


def chunk_text(text: str, max_tokens: int = 256, overlap_sentences: int = 0) -> list[Chunk]:
    """Cut `text` into chunks of at most `max_tokens` estimated tokens, never across headings.

    Paragraphs are kept whole when they fit with the chunk so far; otherwise the chunk ends
    and sentences are packed one by one. `overlap_sentences` repeats the last sentences of a
    chunk at the start of the next (0 by default: sentence windows do this at query time).
    """
    if max_tokens < 16:
        raise ValueError("max_tokens must be at least 16")
    chunks: list[Chunk] = []
    for heading, body in _sections(text):
        paragraphs = [p for p in re.split(r"\n\s*\n", body) if p.strip()]
        current: list[str] = []
        size = 0

        def emit(heading: str = heading) -> None:
            nonlocal current, size
            if current:
                joined = " ".join(current)
                chunks.append(
                    Chunk(len(chunks), joined, heading, count_text(joined), tuple(current))
                )
                keep = current[-overlap_sentences:] if overlap_sentences else []
                current, size = list(keep), sum(count_text(s) for s in keep)

        for paragraph in paragraphs:
            sentences: list[str] = []
            for sentence in split_sentences(paragraph):
                sentences.extend(
                    _split_long(sentence, max_tokens)
                    if count_text(sentence) > max_tokens
                    else [sentence]
                )
            whole = sum(count_text(s) for s in sentences)
            if current and size + whole > max_tokens:
                emit()
            for sentence in sentences:
                n = count_text(sentence)
                if current and size + n > max_tokens:
                    emit()
                current.append(sentence)
                size += n
        emit()
    return chunks


def window(before: tuple[str, ...], text: str, after: tuple[str, ...], sentences: int) -> str:
    """`text` widened by up to `sentences` sentences of the chunks before and after it."""
    if sentences <= 0:
        return text
    head = " ".join(before[-sentences:]) if before else ""
    tail = " ".join(after[:sentences]) if after else ""
    return " ".join(part for part in (head, text, tail) if part)
