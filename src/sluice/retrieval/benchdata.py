"""The retrieval benchmark's data: a corpus of Python standard-library documentation and
hand-written questions with graded relevance (tests/data/retrieval).

No BEIR-style set ships offline in a wheel (the `beir` package downloads its sets at run time),
so the set is built from a real documentation collection every machine has: the docstrings of
~70 standard-library modules (one document per public function/class, "module.name(signature)"
plus its docstring), frozen into `corpus.jsonl` so the numbers do not move with the Python
version. `questions.txt` holds one question per line, `target|related|question`, written as a
user would ask without the docstring's wording (paraphrase, not lookup); the target document
has grade 2, the listed related documents grade 1.

Split by document group (the module): a question is held-out when its target's module hashes
into the held-out third, so the reranker never trains on a held-out module's documents.

    python -m sluice.retrieval.benchdata tests/data/retrieval   # rebuild corpus.jsonl
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODULES = [
    "math",
    "statistics",
    "random",
    "string",
    "textwrap",
    "re",
    "json",
    "os",
    "os.path",
    "shutil",
    "glob",
    "fnmatch",
    "tempfile",
    "time",
    "datetime",
    "calendar",
    "collections",
    "itertools",
    "functools",
    "operator",
    "heapq",
    "bisect",
    "copy",
    "hashlib",
    "hmac",
    "secrets",
    "base64",
    "binascii",
    "zlib",
    "gzip",
    "zipfile",
    "tarfile",
    "csv",
    "sqlite3",
    "urllib.parse",
    "html",
    "difflib",
    "unicodedata",
    "struct",
    "socket",
    "subprocess",
    "threading",
    "queue",
    "asyncio",
    "logging",
    "argparse",
    "uuid",
    "decimal",
    "fractions",
    "ipaddress",
    "contextlib",
    "inspect",
    "typing",
    "shlex",
    "pprint",
    "io",
    "codecs",
    "locale",
    "getpass",
    "platform",
    "sys",
    "warnings",
    "traceback",
    "weakref",
    "array",
    "enum",
    "dataclasses",
]
MIN_DOC_CHARS = 40
MAX_DOC_CHARS = 4000


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    text: str
    relevance: dict[str, int]
    group: str
    heldout: bool


def group_of(doc_id: str) -> str:
    parts = doc_id.split(".")
    return (
        "os.path"
        if doc_id.startswith("os.path.")
        else ("urllib.parse" if doc_id.startswith("urllib.parse.") else parts[0])
    )


def is_heldout(group: str) -> bool:
    return zlib.crc32(group.encode()) % 3 == 0


def _resolve(dotted: str) -> Any:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    import builtins

    obj = builtins
    for name in parts:
        obj = getattr(obj, name)
    return obj


def _document(doc_id: str, obj: Any) -> str | None:
    doc = inspect.getdoc(obj)
    if not doc or len(doc) < MIN_DOC_CHARS:
        return None
    try:
        sig = str(inspect.signature(obj)) if callable(obj) else ""
    except (TypeError, ValueError):
        sig = ""
    return f"{doc_id}{sig}\n\n{doc[:MAX_DOC_CHARS]}"


def parse_questions(path: Path) -> list[tuple[str, list[str], str]]:
    out = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        target, related, question = line.split("|", 2)
        out.append((target, [r for r in related.split(",") if r], question))
    return out


def build(folder: Path) -> None:
    docs: dict[str, str] = {}
    seen: set[str] = set()

    def add(doc_id: str, obj: Any) -> None:
        text = _document(doc_id, obj)
        if text and doc_id not in docs and text.split("\n", 1)[1] not in seen:
            docs[doc_id] = text
            seen.add(text.split("\n", 1)[1])

    questions = parse_questions(folder / "questions.txt")
    for target, related, _ in questions:  # named documents first: they win duplicates
        for doc_id in (target, *related):
            with contextlib.suppress(AttributeError):
                add(doc_id, _resolve(doc_id))
    for name in MODULES:
        module = importlib.import_module(name)
        for attr, obj in sorted(vars(module).items()):
            if attr.startswith("_") or not (inspect.isroutine(obj) or inspect.isclass(obj)):
                continue
            add(f"{name}.{attr}", obj)
    with (folder / "corpus.jsonl").open("w") as f:
        for doc_id, text in sorted(docs.items()):
            f.write(json.dumps({"id": doc_id, "text": text}) + "\n")
    dropped = [t for t, _, _ in questions if t not in docs]
    sys.stdout.write(
        f"{len(docs)} documents; {len(questions) - len(dropped)} questions kept; "
        f"dropped (no docstring): {dropped}\n"
    )


def load(folder: Path) -> tuple[dict[str, str], list[Question]]:
    """(documents by id, questions whose target is in the corpus)."""
    docs = {}
    for line in (folder / "corpus.jsonl").read_text().splitlines():
        row = json.loads(line)
        docs[row["id"]] = row["text"]
    questions = []
    for n, (target, related, text) in enumerate(parse_questions(folder / "questions.txt")):
        if target not in docs:
            continue
        rel = {r: 1 for r in related if r in docs}
        rel[target] = 2
        group = group_of(target)
        questions.append(Question(f"q{n:04d}", text, rel, group, is_heldout(group)))
    return docs, questions


if __name__ == "__main__":
    build(Path(sys.argv[1] if len(sys.argv) > 1 else "tests/data/retrieval"))
