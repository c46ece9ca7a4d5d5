"""Classifier routing: a cheap model labels the request, the label maps to a target.

The call has its own timeout; a timeout, an error, or an unknown label gives no decision
(the route's default then applies), so a slow classifier never blocks a request beyond
`timeout_s`. Labels are cached per distinct text.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sluice.routing.config import ClassifierConfig
from sluice.types import CallMeta, ChatRequest, ChatResponse, Message, TextPart

log = logging.getLogger("sluice.routing")

# Makes one model call and returns its answer (the gateway passes its executor path).
Complete = Callable[[ChatRequest], Awaitable[ChatResponse]]
_WORD = re.compile(r"[A-Za-z_]+")


@dataclass(frozen=True, slots=True)
class ClassifierVerdict:
    target: str | None  # None: no decision
    reason: str


class Classifier:
    def __init__(
        self,
        config: ClassifierConfig,
        complete: Complete,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cfg = config
        self._complete = complete
        self._clock = clock
        self._cache: OrderedDict[bytes, tuple[float, str]] = OrderedDict()

    async def classify(self, text: str, parent: CallMeta | None = None) -> ClassifierVerdict:
        text = text[: self._cfg.max_input_chars]
        key = hashlib.blake2b(text.encode(), digest_size=16).digest()
        label = self._cached(key)
        source = "cached label"
        if label is None:
            source = "label"
            try:
                answer = await asyncio.wait_for(
                    self._complete(self._request(text, parent)), self._cfg.timeout_s
                )
            except TimeoutError:
                return ClassifierVerdict(None, f"classifier timed out after {self._cfg.timeout_s}s")
            except Exception as exc:  # any failure: fall back, never fail the request
                log.info("routing classifier failed: %s", exc)
                return ClassifierVerdict(None, f"classifier failed ({type(exc).__name__})")
            label = parse_label(answer, list(self._cfg.labels))
            if label is None:
                return ClassifierVerdict(None, "classifier gave no known label")
            self._store(key, label)
        return ClassifierVerdict(self._cfg.labels[label], f"{source} {label}")

    def _request(self, text: str, parent: CallMeta | None) -> ChatRequest:
        meta = CallMeta(
            request_id=(parent.request_id if parent else "") + ":route-classifier",
        )  # the caller's identity comes with the call (Gateway._helper_call)
        return ChatRequest(
            model=self._cfg.model,
            system=[TextPart(self._cfg.prompt)],
            messages=[Message("user", [TextPart(text)])],
            max_tokens=self._cfg.max_tokens,
            temperature=0.0,
            meta=meta,
        )

    def _cached(self, key: bytes) -> str | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        expires, label = entry
        if expires < self._clock():
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return label

    def _store(self, key: bytes, label: str) -> None:
        if self._cfg.cache_size == 0:
            return
        self._cache[key] = (self._clock() + self._cfg.cache_ttl_s, label)
        while len(self._cache) > self._cfg.cache_size:
            self._cache.popitem(last=False)


def parse_label(answer: ChatResponse, labels: list[str]) -> str | None:
    """The first word of the answer that is one of the labels (case-insensitive)."""
    text = "".join(p.text for p in answer.parts if isinstance(p, TextPart))
    known = set(labels)
    words: list[str] = _WORD.findall(text.upper())
    for word in words[:4]:
        if word in known:
            return word
    return None
