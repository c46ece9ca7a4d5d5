"""PDF → text in a child process: `python -m sluice.retrieval.pdf_child MAX_CHARS MAX_BYTES`.

Why a process: pypdf is pure Python, and a hostile PDF of a few KB (one page whose content
stream inflates to 200k text operators) costs it over a minute of CPU. In a gateway thread
that holds the GIL against every request, and a thread cannot be stopped. A child can: the
caller (`extract._pdf`) kills it at its deadline, and the child caps its own address space
so a memory bomb ends as a failed file, not an OOM-killed gateway.

Protocol: the PDF on stdin; the text (UTF-8, pages separated by blank lines, at most
MAX_CHARS) on stdout, exit 0. On failure only the exception's type name on stderr, exit 2.
"""

from __future__ import annotations

import io
import logging
import sys
import warnings


def _limit_memory(max_bytes: int) -> None:
    try:
        import resource
    except ImportError:  # not on Unix: no cap, the deadline still applies
        return
    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))


def main(argv: list[str]) -> int:
    max_chars, max_bytes = int(argv[0]), int(argv[1])
    data = sys.stdin.buffer.read()
    _limit_memory(max_bytes)
    logging.disable(logging.CRITICAL)  # pypdf logs warnings; stderr carries only the reason
    warnings.simplefilter("ignore")
    try:
        from pypdf import PdfReader

        reader = PdfReader(io.BytesIO(data))
        parts: list[str] = []
        size = 0
        for page in reader.pages:
            text = (page.extract_text() or "").strip()
            parts.append(text)
            size += len(text) + 2
            if size >= max_chars:
                break
        out = "\n\n".join(parts)[:max_chars]
    except BaseException as exc:  # any parser failure (MemoryError too) is "cannot read"
        sys.stderr.write(type(exc).__name__[:64])
        return 2
    sys.stdout.buffer.write(out.encode("utf-8", "replace"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
