"""Offline OpenAI encodings: stock tiktoken, fed from quicktok's bundled vocabularies.

tiktoken downloads its encoding files on first use, which a gateway must never do. It first
looks in `TIKTOKEN_CACHE_DIR` for a file named by the sha1 of the download URL, and checks
the file's sha256 against the hash it expects. quicktok ships the cl100k and o200k
vocabularies, from which the two official `.tiktoken` files are rebuilt byte for byte (the
sha256 check proves it), once, into a local cache directory. After that
`tiktoken.encoding_for_model` works for every OpenAI model name tiktoken knows.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from pathlib import Path

import tiktoken
from tiktoken.model import encoding_name_for_model

_BLOB = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
# The sha256 tiktoken checks each file against (tiktoken_ext/openai_public.py).
EXPECTED_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}
_QUICKTOK_NAMES = {"cl100k_base": "cl100k_base", "o200k_base": "o200k_base"}
_lock = threading.Lock()
_ENCODINGS: dict[str, tiktoken.Encoding] = {}


class EncodingUnavailable(Exception):
    """No offline data for this encoding (an old or unknown OpenAI encoding)."""


def cache_dir() -> Path:
    """`TIKTOKEN_CACHE_DIR` when set; else `$XDG_CACHE_HOME/sluice/tiktoken` (~/.cache)."""
    given = os.environ.get("TIKTOKEN_CACHE_DIR")
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sluice" / "tiktoken"


def cache_file(directory: Path, encoding: str) -> Path:
    """Where tiktoken looks for an encoding's file: the sha1 of its download URL."""
    return directory / hashlib.sha1(_BLOB.format(encoding).encode()).hexdigest()


def tiktoken_file_bytes(encoding: str) -> bytes:
    """The official `<encoding>.tiktoken` file, rebuilt from quicktok's package data:
    one `base64(token bytes) rank` line per ordinary token, in rank order."""
    import quicktok

    tok = quicktok.get_encoding(_QUICKTOK_NAMES[encoding])
    lines: list[bytes] = []
    for rank in range(tok.max_token_value + 1):
        if tok.is_special_token(rank):
            continue
        try:
            raw = tok.decode_single_token_bytes(rank)
        except (KeyError, ValueError, RuntimeError):
            continue  # an unused rank (cl100k has a gap before its special tokens)
        lines.append(base64.b64encode(raw) + b" " + str(rank).encode() + b"\n")
    return b"".join(lines)


def ensure_files(directory: Path, encoding: str) -> Path:
    """Write the encoding's file into `directory` unless a valid one is there already."""
    if encoding not in EXPECTED_SHA256:
        raise EncodingUnavailable(f"no offline data for encoding {encoding!r}")
    target = cache_file(directory, encoding)
    with _lock:
        if target.exists() and _sha256(target.read_bytes()) == EXPECTED_SHA256[encoding]:
            return target
        data = tiktoken_file_bytes(encoding)
        if _sha256(data) != EXPECTED_SHA256[encoding]:  # never hand tiktoken a wrong file
            raise EncodingUnavailable(f"rebuilt {encoding} does not match the official file")
        directory.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(target)  # atomic: another process never reads half a file
    return target


def encoding_name(upstream_model: str) -> str | None:
    """tiktoken's encoding for an OpenAI model name; None for any other model."""
    try:
        return encoding_name_for_model(upstream_model)
    except KeyError:
        return None


def get_encoding(name: str) -> tiktoken.Encoding:
    """A stock tiktoken encoding, loaded from the local cache (built on first use).

    Blocking (about a second the very first time on a machine, while the file is built):
    call it from a worker thread on a running event loop, or check `loaded_encoding` first.
    """
    found = _ENCODINGS.get(name)
    if found is None:
        directory = cache_dir()
        ensure_files(directory, name)
        os.environ["TIKTOKEN_CACHE_DIR"] = str(directory)  # where tiktoken reads it from
        found = _ENCODINGS[name] = tiktoken.get_encoding(name)
    return found


def loaded_encoding(name: str) -> tiktoken.Encoding | None:
    """The encoding when it is already in memory (never blocks)."""
    return _ENCODINGS.get(name)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
