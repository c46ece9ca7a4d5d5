"""Which client request headers a provider passes upstream (`forward_headers` in config)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sluice.types import CallMeta


class HeaderFilter:
    """Exact names or `prefix*` patterns, matched case-insensitively."""

    __slots__ = ("_exact", "_prefixes")

    def __init__(self, patterns: Iterable[str]) -> None:
        lowered = [p.lower() for p in patterns]
        self._exact = frozenset(p for p in lowered if not p.endswith("*"))
        self._prefixes = tuple(p[:-1] for p in lowered if p.endswith("*"))

    def __bool__(self) -> bool:
        return bool(self._exact or self._prefixes)

    def select(self, headers: Mapping[str, str]) -> dict[str, str]:
        out = {}
        for name, value in headers.items():
            low = name.lower()
            if low in self._exact or low.startswith(self._prefixes):
                out[low] = value
        return out


def upstream_headers(base: dict[str, str], forward: HeaderFilter, meta: CallMeta) -> dict[str, str]:
    """A provider's headers for one call: its own, plus forwarded client headers and the
    trace context when there are any (the common case returns `base` itself, no copy)."""
    if not (forward and meta.forward_headers) and meta.traceparent is None:
        return base
    headers = {**forward.select(meta.forward_headers), **base}
    if meta.traceparent is not None:
        headers["traceparent"] = meta.traceparent
    return headers
