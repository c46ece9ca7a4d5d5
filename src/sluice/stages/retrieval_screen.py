"""The grounding stage's `DocumentScreen` (sluice.retrieval.screen) over the guardrails'
injection detector: retrieved chunks are checked as `document` text (indirect injection)
with the mode of the caller's guard set. Lives here, not in either package, because
retrieval may not import guardrails (layers); the gateway wires the two together.

The detector is the guard stage's own (one classifier in memory). Verdicts are remembered
by a digest of the chunk text (never the text), so the same document retrieved again costs
nothing; the detector's model check (`injection.model_check`) is a helper call charged to
the call, as in the guard stage.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence

from sluice.guardrails.base import InjectionDetectorLike, InjectionResult
from sluice.guardrails.config import GuardrailsConfig
from sluice.retrieval.screen import ScreenVerdict
from sluice.types import ChatRequest, ChatResponse

Ask = Callable[[ChatRequest], Awaitable[ChatResponse]]

SEEN = 16_384  # chunk verdicts remembered (by digest)
# Text up to this size is checked inline (rules ~0.1-1 ms, embedding on the embedder's
# thread); more goes to a worker thread, as in the guard stage.
INLINE_CHARS = 16_384


def wants_document_screen(config: GuardrailsConfig) -> bool:
    """Whether any guard set checks retrieved documents for injection."""
    sets = [config, *config.models.values()]
    return config.enabled and any(
        s.injection.mode != "off" and "document" in s.injection.sources for s in sets
    )


class InjectionScreen:
    """Satisfies `sluice.retrieval.screen.DocumentScreen`."""

    def __init__(
        self, config: GuardrailsConfig, detector: InjectionDetectorLike, ask: Ask | None = None
    ) -> None:
        self._config = config
        self._detector = detector
        self._ask = ask
        self._seen: OrderedDict[tuple[str, bytes], ScreenVerdict] = OrderedDict()

    def mode(self, model: str) -> str:
        if not self._config.enabled:
            return "off"
        cfg = self._config.for_model(model).injection
        return cfg.mode if "document" in cfg.sources else "off"

    async def check(self, model: str, texts: Sequence[str]) -> list[ScreenVerdict]:
        cfg = self._config.for_model(model).injection
        detector = self._detector
        acheck = getattr(detector, "acheck", None) if cfg.model_check else None
        check_async = getattr(detector, "check_async", None)
        scope = "m" if acheck is not None else "f"  # a model-checked verdict is its own entry
        out: list[ScreenVerdict] = []
        for text in texts:
            key = (scope, hashlib.blake2b(text.encode(), digest_size=16).digest())
            hit = self._seen.get(key)
            if hit is not None:
                self._seen.move_to_end(key)
                out.append(hit)
                continue
            found: InjectionResult
            if acheck is not None:
                found = await acheck(text, source="document", ask=self._ask, model=cfg.model)
            elif check_async is not None and len(text) <= INLINE_CHARS:
                found = await check_async(text, source="document")
            else:
                found = await asyncio.to_thread(detector.check, text, source="document")
            rule = getattr(found, "rule", None) or getattr(found, "layer", None)
            verdict = ScreenVerdict(
                bool(found.flagged), rule if found.flagged else None, found.score
            )
            self._seen[key] = verdict
            while len(self._seen) > SEEN:
                self._seen.popitem(last=False)
            out.append(verdict)
        return out
