"""Validation of the Vector Stores API's inputs (OpenAI's shapes and limits) and ids."""

from __future__ import annotations

import secrets
from typing import Any

from sluice.errors import InvalidRequestError, NotFoundError

MAX_NAME_CHARS = 256
MAX_METADATA_KEYS = 16


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def not_found(kind: str, obj_id: str) -> NotFoundError:
    return NotFoundError(f"No {kind} found with id '{obj_id[:128]}'.", code="not_found")


def check_metadata(metadata: Any) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or len(metadata) > MAX_METADATA_KEYS:
        raise InvalidRequestError("metadata must be an object of at most 16 keys", param="metadata")
    for k, v in metadata.items():
        if not isinstance(k, str) or len(k) > 64 or not isinstance(v, str) or len(v) > 512:
            raise InvalidRequestError(
                "metadata keys are strings of at most 64 characters, values at most 512",
                param="metadata",
            )
    return dict(metadata)


def check_chunking(strategy: Any, default_tokens: int) -> dict[str, Any]:
    """OpenAI's chunking_strategy: auto, or static {max_chunk_size_tokens, chunk_overlap_tokens}."""
    if strategy is None or strategy == {"type": "auto"}:
        return {
            "type": "static",
            "static": {"max_chunk_size_tokens": default_tokens, "chunk_overlap_tokens": 0},
        }
    if not isinstance(strategy, dict) or strategy.get("type") != "static":
        raise InvalidRequestError(
            "chunking_strategy must be auto or static", param="chunking_strategy"
        )
    static = strategy.get("static")
    if not isinstance(static, dict):
        raise InvalidRequestError("static chunking needs 'static'", param="chunking_strategy")
    size, overlap = static.get("max_chunk_size_tokens"), static.get("chunk_overlap_tokens", 0)
    if not isinstance(size, int) or not 100 <= size <= 4096:
        raise InvalidRequestError(
            "max_chunk_size_tokens must be 100-4096", param="chunking_strategy"
        )
    if not isinstance(overlap, int) or overlap < 0 or overlap > size // 2:
        raise InvalidRequestError(
            "chunk_overlap_tokens must be 0 to half the chunk size", param="chunking_strategy"
        )
    return {
        "type": "static",
        "static": {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap},
    }


def ranking(options: Any) -> tuple[float, bool]:
    if options is None:
        return 0.0, True
    if not isinstance(options, dict):
        raise InvalidRequestError("ranking_options must be an object", param="ranking_options")
    threshold = options.get("score_threshold", 0.0)
    if (
        not isinstance(threshold, int | float)
        or isinstance(threshold, bool)  # `true` is not a score
        or not 0 <= threshold <= 1  # NaN and the infinities fail this too
    ):
        raise InvalidRequestError(
            "score_threshold must be between 0 and 1", param="ranking_options"
        )
    ranker = options.get("ranker", "auto")
    if ranker not in ("auto", "default-2024-11-15", "none", "hybrid"):
        raise InvalidRequestError("unknown ranker", param="ranking_options")
    return float(threshold), ranker != "none"


def check_expires(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or value.get("anchor") != "last_active_at"
        or not isinstance(value.get("days"), int)
        or isinstance(value["days"], bool)  # `true` is not a number of days
        or not 1 <= value["days"] <= 365
    ):
        raise InvalidRequestError(
            "expires_after must be {anchor: last_active_at, days: 1-365}", param="expires_after"
        )
    return {"anchor": "last_active_at", "days": value["days"]}


def check_file_ids(value: Any) -> list[str]:
    if value is None:
        return []
    if (
        not isinstance(value, list)
        or len(value) > 500
        or not all(isinstance(v, str) and 0 < len(v) <= 128 for v in value)
    ):
        raise InvalidRequestError(
            "file_ids must be a list of at most 500 file ids", param="file_ids"
        )
    return list(dict.fromkeys(value))
