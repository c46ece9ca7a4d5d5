"""SDK clients and a ready vector store for the retrieval end-to-end tests: clients made here
are closed by `close_clients()` (each module calls it from an autouse fixture)."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import openai

_OPEN: list[Any] = []


async def close_clients() -> None:
    while _OPEN:
        await _OPEN.pop().close()


def openai_client(base: str) -> openai.AsyncOpenAI:
    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="sk-none", max_retries=0)
    _OPEN.append(client)
    return client


def anthropic_client(base: str) -> anthropic.AsyncAnthropic:
    client = anthropic.AsyncAnthropic(base_url=base, api_key="sk-none", max_retries=0)
    _OPEN.append(client)
    return client


async def ready_store(
    client: openai.AsyncOpenAI, docs: tuple[tuple[str, bytes], ...], **extra: Any
) -> tuple[str, dict[str, str]]:
    """A vector store holding `docs` (name, bytes), every file ingested: (store id, file ids)."""
    ids = {}
    for name, data in docs:
        ids[name] = (await client.files.create(file=(name, data), purpose="assistants")).id
    vs = await client.vector_stores.create(name="kb", file_ids=list(ids.values()), **extra)
    store = vs
    for _ in range(600):
        store = await client.vector_stores.retrieve(vs.id)
        if store.status == "completed":
            break
        await asyncio.sleep(0.1)
    assert store.file_counts.completed == len(docs)
    return vs.id, ids
