"""Uploaded file → plain text for chunking: txt, Markdown, HTML, PDF (pypdf), JSON Lines.

HTML goes through the standard library's tolerant `html.parser` (script/style/head dropped,
block elements become paragraph breaks, h1-h6 become Markdown headings so chunking keeps the
structure). PDF needs `pypdf` (the `retrieval` extra); without it a PDF fails with a clear
error and the vector-store file is marked `failed`. The PDF parser runs in a child process
(`pdf_child`) with a deadline and a memory cap: hostile PDFs cost minutes of pure-Python CPU.
JSONL: each line's `text` (or `content`) field, else the whole line; one paragraph a line.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from html.parser import HTMLParser

MAX_TEXT_CHARS = 20_000_000
PDF_TIMEOUT_S = 60.0
PDF_MAX_MEMORY_BYTES = 1536 * 1024 * 1024


class ExtractError(ValueError):
    """The file cannot be turned into text (unsupported type, broken PDF, not UTF-8)."""


_BLOCK = {
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "table",
    "tr",
    "section",
    "article",
    "pre",
    "blockquote",
    "dd",
    "dt",
    "dl",
    "header",
    "footer",
    "main",
    "nav",
    "aside",
}
_SKIP = {"script", "style", "head", "noscript", "template", "svg"}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip += 1
        elif tag in _BLOCK:
            self.parts.append("\n\n")
        elif len(tag) == 2 and tag[0] == "h" and tag[1] in "123456":
            self.parts.append("\n\n" + "#" * int(tag[1]) + " ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCK or (len(tag) == 2 and tag[0] == "h" and tag[1] in "123456"):
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data.replace("\n", " "))


def html_to_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).split("\n")]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip()


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ExtractError("file is not UTF-8 text") from exc


def kind_of(filename: str) -> str:
    name = filename.lower()
    for ext, kind in (
        (".md", "markdown"),
        (".markdown", "markdown"),
        (".html", "html"),
        (".htm", "html"),
        (".pdf", "pdf"),
        (".jsonl", "jsonl"),
        (".txt", "text"),
        (".text", "text"),
        (".rst", "text"),
        (".csv", "text"),
        (".json", "text"),
    ):
        if name.endswith(ext):
            return kind
    return "unknown"


def extract_text(data: bytes, filename: str, pdf_timeout_s: float = PDF_TIMEOUT_S) -> str:
    """The text of an uploaded file, by its extension (sniffing PDF/HTML if none fits)."""
    kind = kind_of(filename)
    if kind == "unknown":
        if data[:5] == b"%PDF-":
            kind = "pdf"
        elif data.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")):
            kind = "html"
        else:
            kind = "text"
    if kind == "pdf":
        text = _pdf(data, pdf_timeout_s)
    elif kind == "html":
        text = html_to_text(_decode(data))
    elif kind == "jsonl":
        text = _jsonl(_decode(data))
    else:
        text = _decode(data)
    if "\x00" in text:
        raise ExtractError("file contains NUL bytes (binary?)")
    return text[:MAX_TEXT_CHARS]


def _jsonl(raw: str) -> str:
    paragraphs = []
    for n, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ExtractError(f"line {n} is not JSON") from exc
        if isinstance(row, dict):
            value = row.get("text", row.get("content"))
            paragraphs.append(value if isinstance(value, str) else json.dumps(row))
        else:
            paragraphs.append(row if isinstance(row, str) else json.dumps(row))
    return "\n\n".join(paragraphs)


def _pdf(data: bytes, timeout_s: float) -> str:
    if importlib.util.find_spec("pypdf") is None:
        raise ExtractError("PDF needs pypdf: pip install 'sluice[retrieval]'")
    command = [sys.executable, "-m", "sluice.retrieval.pdf_child"]
    command += [str(MAX_TEXT_CHARS), str(PDF_MAX_MEMORY_BYTES)]
    try:  # run() kills the child when the deadline passes
        done = subprocess.run(command, input=data, capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ExtractError(f"PDF text extraction took longer than {timeout_s:g} s") from None
    if done.returncode != 0:
        lines = done.stderr.decode("ascii", "replace").strip().splitlines()
        reason = lines[-1][:64] if lines else f"exit {done.returncode}"
        raise ExtractError(f"cannot read PDF: {reason}")
    return done.stdout.decode("utf-8", "replace")
