"""Deterministic stand-ins for routing tests: a bag-of-words embedder and route configs."""

from __future__ import annotations

import asyncio
import hashlib
import re

import numpy as np
import numpy.typing as npt

from sluice.config import SluiceConfig, default_config
from sluice.routing.config import RouteConfig

DIM = 4096


def _axis(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "big") % DIM


class WordEmbedder:
    """Each word hashes to one axis; texts sharing words are similar. Unit-length rows."""

    dim = DIM

    def __init__(self) -> None:
        self.calls = 0

    def embed_sync(self, texts: list[str]) -> npt.NDArray[np.float32]:
        self.calls += 1
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[i, _axis(word)] += 1
            norm = float(np.linalg.norm(out[i]))
            if norm:
                out[i] /= norm
        return out

    async def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        return await asyncio.to_thread(self.embed_sync, texts)


def config_with(routes: dict[str, object]) -> SluiceConfig:
    """The built-in simulator config plus the given `routes` section."""
    base = default_config({"SLUICE_SIM_URL": "http://127.0.0.1:1"})
    data = base.model_dump()
    data["routes"] = routes
    return SluiceConfig.model_validate(data)


def route(**fields: object) -> RouteConfig:
    fields.setdefault("targets", ["gpt-4o-mini", "gpt-4o"])
    fields.setdefault("default", "gpt-4o-mini")
    return RouteConfig.model_validate(fields)
