"""Rows the background writers can always store, and batches that survive a bad row.

Two defences, because one bad call once cost every other tenant's rows in its batch
(a 256-character user label into VARCHAR(255), a NUL byte PostgreSQL's text refuses):

- `bounded` / `storable`: text is cut to its column's width and NUL bytes are removed
  before a row is queued, so client input that got past the edge still fits.
- `write_splitting`: a batch the database refuses for its content is split in halves down
  to the refused rows (k bad rows in n cost about 2k·log2(n) extra writes, not n), which
  are parked in the dead-letter table and counted; the good rows are written. A batch
  refused because the database is unreachable is not split: it fails as a whole (and is
  kept by the spool for a later replay).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from operator import attrgetter
from typing import TypeVar

from sluice.observe.records import CallRecord

T = TypeVar("T")

LABEL_CHARS = 255  # every label column (tenant, user, feature, session, model, ...)
# Columns narrower than LABEL_CHARS; the previews and route_decision are unbounded TEXT.
_WIDTHS = {
    "kind": 16,
    "cache_status": 16,
    "finish_reason": 32,
    "error_type": 64,
    "guards": 1024,
    "grounded": 32,
}
_TEXT_FIELDS = (
    "request_id",
    "parent_request_id",
    "attempt_of",
    "kind",
    "trace_id",
    "tenant",
    "key_id",
    "user_id",
    "feature",
    "session",
    "route",
    "model_requested",
    "deployment",
    "provider",
    "upstream_model",
    "cache_status",
    "finish_reason",
    "error_type",
    "system_prompt_hash",
    "input_preview",
    "output_preview",
    "route_decision",
    "guards",
    "grounded",
)
_UNBOUNDED = frozenset({"input_preview", "output_preview", "route_decision"})
_text_values = attrgetter(*_TEXT_FIELDS)  # one C call for the 24 fields
# Each text field's width (None: unbounded), in _TEXT_FIELDS order.
_FIELD_WIDTHS = tuple(
    None if name in _UNBOUNDED else _WIDTHS.get(name, LABEL_CHARS) for name in _TEXT_FIELDS
)


def bounded(text: str, width: int | None = LABEL_CHARS) -> str:
    """`text` without NUL bytes, cut to `width` characters (None: any length)."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text if width is None or len(text) <= width else text[:width]


def storable(record: CallRecord) -> CallRecord:
    """The record itself when every text field fits its column; otherwise a bounded copy."""
    values = _text_values(record)
    changes: dict[str, str] = {}
    for name, width, value in zip(_TEXT_FIELDS, _FIELD_WIDTHS, values, strict=True):
        if value is not None and ((width is not None and len(value) > width) or "\x00" in value):
            changes[name] = bounded(value, width)
    return replace(record, **changes) if changes else record  # type: ignore[arg-type]


def is_transient(exc: BaseException) -> bool:
    """A failure of the connection, not of the rows: splitting the batch cannot help."""
    if isinstance(exc, OSError):
        return True
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"OperationalError", "InterfaceError"})


def write_splitting(
    rows: Sequence[T],
    write: Callable[[Sequence[T]], None],
    park: Callable[[T, BaseException], bool],
) -> tuple[int, int, int]:
    """Write `rows`; refused rows are parked. Returns (written, parked, lost) where lost
    counts rows neither written nor parked. Raises when the database is unreachable."""
    try:
        write(rows)
    except Exception as exc:
        if is_transient(exc):
            raise
        if len(rows) == 1:
            return (0, 1, 0) if park(rows[0], exc) else (0, 0, 1)
        mid = len(rows) // 2
        a = write_splitting(rows[:mid], write, park)
        b = write_splitting(rows[mid:], write, park)
        return a[0] + b[0], a[1] + b[1], a[2] + b[2]
    return len(rows), 0, 0
