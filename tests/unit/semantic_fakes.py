"""Fakes for the semantic cache: a deterministic embedder whose similarities a test chooses,
a counting upstream, a settable clock."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncGenerator

import numpy as np
import numpy.typing as npt

from sluice.pipeline.context import CallContext, Result
from sluice.types import (
    ChatResponse,
    EventStream,
    Finish,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    Usage,
)

DIM = 16


def unit(seed: str) -> npt.NDArray[np.float32]:
    digest = hashlib.sha256(seed.encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    v = rng.standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def at_cosine(base: npt.NDArray[np.float32], cosine: float, seed: str) -> npt.NDArray[np.float32]:
    """A unit vector whose cosine with `base` is exactly `cosine`."""
    other = unit(seed)
    other = other - float(other @ base) * base
    other /= np.linalg.norm(other)
    v = cosine * base + np.sqrt(1 - cosine**2) * other
    out: npt.NDArray[np.float32] = (v / np.linalg.norm(v)).astype(np.float32)
    return out


class FakeEmbedder:
    """Every text gets a stable pseudo-random unit vector unless `alias` ties it to another
    text at a chosen cosine; `fail` / `delay_s` make it break or stall."""

    def __init__(self) -> None:
        self.vectors: dict[str, npt.NDArray[np.float32]] = {}
        self.fail = False
        self.delay_s = 0.0
        self.calls = 0

    @property
    def dim(self) -> int:
        return DIM

    def alias(self, text: str, like: str, cosine: float) -> None:
        self.vectors[text] = at_cosine(self.vector(like), cosine, text)

    def vector(self, text: str) -> npt.NDArray[np.float32]:
        return self.vectors.setdefault(text, unit(text))

    async def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        self.calls += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("embedder broke")
        return np.stack([self.vector(t) for t in texts])


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Upstream:
    """Answers `answer <n>` for its n-th call; streams when asked; can cut a stream."""

    def __init__(self) -> None:
        self.calls = 0
        self.cut_stream = False

    def answer(self, n: int) -> ChatResponse:
        return ChatResponse(
            id=f"resp-{n}",
            model="m",
            parts=[TextPart(f"answer {n}")],
            finish_reason="stop",
            usage=Usage(10, n),
            created=1_700_000_000 + n,
        )

    async def __call__(self, ctx: CallContext) -> Result:
        self.calls += 1
        resp = self.answer(self.calls)
        ctx.last_response = resp
        if not ctx.request.stream:
            return resp
        return self._stream(resp)

    async def _stream(self, resp: ChatResponse) -> AsyncGenerator[StreamEvent]:
        yield StreamStart(resp.id, resp.model, resp.created)
        yield TextDelta("answer ")
        if self.cut_stream:
            raise ConnectionResetError("upstream went away")
        yield TextDelta(str(self.calls))
        yield Finish("stop", None)


async def drain(stream: EventStream) -> list[StreamEvent]:
    return [event async for event in stream]
