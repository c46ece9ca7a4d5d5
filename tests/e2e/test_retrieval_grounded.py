"""Grounded chat through each front end (simulator upstream): Chat Completions with the
`x-sluice-retrieval` header, Chat Completions with `metadata.vector_store_ids`, Messages with
the header, and the Responses API's `file_search` tool with `file_citation` annotations.
The sources header names real chunks of the caller's store; citations are checked against it;
another tenant's store cannot be used for grounding."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from sluice.config import SluiceConfig
from sluice.observe.store import RecordStore
from tests.conftest import gateway_config
from tests.governance_rig import create_key, gateway, keyed_config, set_env

DOC = b"""# Vacuum

## Autovacuum
The autovacuum daemon reclaims storage occupied by dead tuples. It runs in the background.

## Freezing
Transaction ID wraparound is prevented by freezing old rows.
"""
OTHER = b"Sourdough bread needs a starter made of flour and water. Let the dough rise overnight."

_OPEN: list[Any] = []


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    while _OPEN:
        await _OPEN.pop().close()


def _oa(base: str, key: str = "sk-none") -> openai.AsyncOpenAI:
    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
    _OPEN.append(client)
    return client


async def _store(client: openai.AsyncOpenAI) -> tuple[str, set[str]]:
    ids = []
    for name, data in (("vacuum.md", DOC), ("bread.txt", OTHER)):
        ids.append((await client.files.create(file=(name, data), purpose="assistants")).id)
    vs = await client.vector_stores.create(name="kb", file_ids=ids)
    store = await client.vector_stores.retrieve(vs.id)
    for _ in range(600):
        store = await client.vector_stores.retrieve(vs.id)
        if store.status == "completed":
            break
        await asyncio.sleep(0.1)
    assert store.file_counts.completed == 2
    return vs.id, set(ids)


def _sources(headers: Any) -> list[dict[str, Any]]:
    sources: list[dict[str, Any]] = json.loads(headers["x-sluice-retrieval-sources"])
    return sources


async def test_grounded_chat_through_each_front_end(sim_url: str) -> None:
    async with gateway(gateway_config(sim_url)) as (base, _app):
        client = _oa(base)
        vs_id, file_ids = await _store(client)
        question = [{"role": "user", "content": "How are dead tuples cleaned up?"}]

        plain = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=question,  # type: ignore[arg-type]
        )
        assert "x-sluice-retrieval-sources" not in plain.headers
        plain_in = plain.parse().usage.prompt_tokens  # type: ignore[union-attr]

        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=question,  # type: ignore[arg-type]
            extra_headers={"x-sluice-retrieval": vs_id, "x-sim-append": "[1][9]"},
        )
        sources = _sources(raw.headers)
        assert sources and {s["file_id"] for s in sources} <= file_ids
        assert sources[0]["n"] == 1 and sources[0]["chunk_id"].startswith(vs_id)
        assert any(s["filename"] == "vacuum.md" for s in sources)
        assert raw.headers["x-sluice-citations"] == "1"
        assert raw.headers["x-sluice-grounded"] == "false"  # [9] names no source
        grounded_in = raw.parse().usage.prompt_tokens  # type: ignore[union-attr]
        assert grounded_in > plain_in + 20  # the context went upstream
        assert int(raw.headers["x-sluice-retrieval-tokens"]) > 20

        meta = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=question,  # type: ignore[arg-type]
            metadata={"vector_store_ids": vs_id},
            store=False,
            extra_headers={"x-sim-append": "[1]"},
        )
        assert meta.headers["x-sluice-grounded"] == "true"
        assert _sources(meta.headers) == sources  # same documents: same context, same order

        stream = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=question,  # type: ignore[arg-type]
            stream=True,
            extra_headers={"x-sluice-retrieval": vs_id, "x-sim-append": "[1]"},
        )
        assert _sources(stream.headers) == sources  # known before the first token
        streamed = ""
        async for chunk in stream.parse():  # type: ignore[union-attr]
            if chunk.choices and chunk.choices[0].delta.content:
                streamed += chunk.choices[0].delta.content
        assert streamed.endswith("[1]")

        claude = anthropic.AsyncAnthropic(base_url=base, api_key="sk-none", max_retries=0)
        _OPEN.append(claude)
        msg = await claude.messages.with_raw_response.create(
            model="claude-haiku",
            max_tokens=64,
            messages=question,  # type: ignore[arg-type]
            extra_headers={"x-sluice-retrieval": vs_id, "x-sim-append": "[1]"},
        )
        assert msg.headers["x-sluice-grounded"] == "true"
        assert {s["file_id"] for s in _sources(msg.headers)} <= file_ids

        resp = await client.responses.with_raw_response.create(
            model="gpt-4o-mini",
            input="How are dead tuples cleaned up?",
            tools=[{"type": "file_search", "vector_store_ids": [vs_id]}],
            extra_headers={"x-sim-append": "See [1]."},
        )
        parsed = resp.parse()
        assert parsed.tools and parsed.tools[0].type == "file_search"
        text = parsed.output[0].content[0]  # type: ignore[union-attr,index]
        notes = text.annotations  # type: ignore[union-attr]
        assert notes and notes[0].type == "file_citation"
        first = _sources(resp.headers)[0]
        assert notes[0].file_id == first["file_id"]  # type: ignore[union-attr]
        assert text.text[notes[0].index : notes[0].index + 3] == "[1]"  # type: ignore[union-attr]


async def test_grounding_needs_the_callers_own_store(
    sim_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_env(monkeypatch)
    config = keyed_config(sim_url, "sqlite:///keys.db")
    async with gateway(config) as (base, _app), aiohttp.ClientSession() as http:
        acme = _oa(base, (await create_key(http, base, tenant="acme"))["key"])
        globex = _oa(base, (await create_key(http, base, tenant="globex"))["key"])
        vs_id, _ = await _store(acme)
        with pytest.raises(openai.NotFoundError):
            await globex.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "dead tuples?"}],
                extra_headers={"x-sluice-retrieval": vs_id},
            )
        with pytest.raises(openai.BadRequestError):
            await acme.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "dead tuples?"}],
                extra_headers={"x-sluice-retrieval": '{"vector_store_ids": 5}'},
            )
        with pytest.raises(openai.BadRequestError):
            await acme.responses.create(
                model="gpt-4o-mini",
                input="x",
                tools=[{"type": "file_search", "vector_store_ids": []}],
            )


async def test_grounded_calls_leave_retrieval_on_their_record(sim_url: str, tmp_path: Path) -> None:
    """retrieval_tokens / retrieval_cost_usd / retrieval_sources / grounded on the record, for
    plain and streamed answers (a stream's citation check runs at its end); a call without
    retrieval leaves them empty."""
    db = f"sqlite:///{tmp_path / 'records.db'}"
    data = gateway_config(sim_url).model_dump()
    data["observability"]["records"]["store_url"] = db
    ids: dict[str, str] = {}
    expect: dict[str, tuple[int, int]] = {}  # label -> (tokens header, sources)
    async with gateway(SluiceConfig.model_validate(data)) as (base, _app):
        client = _oa(base)
        vs_id, _ = await _store(client)
        question = [{"role": "user", "content": "How are dead tuples cleaned up?"}]
        for label, append, stream in (
            ("ok", "[1]", False),
            ("unsupported", "[1][9]", False),
            ("none", "", False),
            ("stream_ok", "[1]", True),
            ("stream_bad", "[1][7][8]", True),
        ):
            headers = {"x-sluice-retrieval": vs_id, "x-sim-append": append}
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini",
                messages=question,  # type: ignore[arg-type]
                stream=stream,
                extra_headers=headers,
            )
            if stream:
                async for _chunk in raw.parse():  # type: ignore[union-attr]
                    pass
            ids[label] = raw.headers["x-sluice-request-id"]
            expect[label] = (
                int(raw.headers["x-sluice-retrieval-tokens"]),
                len(_sources(raw.headers)),
            )
        plain = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=question,  # type: ignore[arg-type]
        )
        ids["plain"] = plain.headers["x-sluice-request-id"]
    store = RecordStore.open(db)
    try:
        records = {r.request_id: r for r in store.query() if r.kind == "call"}
    finally:
        store.close()
    got = {label: records[rid] for label, rid in ids.items()}
    assert {label: r.grounded for label, r in got.items()} == {
        "ok": "ok",
        "unsupported": "unsupported:1",
        "none": "no_citations",
        "stream_ok": "ok",
        "stream_bad": "unsupported:2",  # [7] and [8] name no source
        "plain": None,
    }
    for label, (tokens, sources) in expect.items():
        record = got[label]
        assert record.retrieval_tokens == tokens > 20
        assert record.retrieval_sources == sources >= 1
        assert record.retrieval_cost_usd is not None and record.retrieval_cost_usd > 0
        assert record.cost_usd is not None and record.retrieval_cost_usd < record.cost_usd
    plain_record = got["plain"]
    assert plain_record.retrieval_tokens is None and plain_record.grounded is None
    assert plain_record.retrieval_sources is None and plain_record.retrieval_cost_usd is None


async def test_a_grounded_stream_the_client_drops_is_recorded_as_cut(
    sim_url: str, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'records.db'}"
    data = gateway_config(sim_url).model_dump()
    data["observability"]["records"]["store_url"] = db
    async with gateway(SluiceConfig.model_validate(data)) as (base, _app):
        client = _oa(base)
        vs_id, _ = await _store(client)
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "How are dead tuples cleaned up?"}],
            stream=True,
            extra_headers={
                "x-sluice-retrieval": vs_id,
                "x-sim-output-tokens": "400",
                "x-sim-tps": "20",
            },
        )
        stream = raw.parse()
        async for _chunk in stream:
            break  # the client goes away after the first chunk
        await stream.close()
        rid = raw.headers["x-sluice-request-id"]
        tokens = int(raw.headers["x-sluice-retrieval-tokens"])
    store = RecordStore.open(db)
    try:
        record = next(r for r in store.query() if r.request_id == rid)
    finally:
        store.close()
    assert record.grounded == "cut"
    assert record.retrieval_tokens == tokens > 20
    assert record.usage_source == "estimated"  # the stream was charged for what it delivered
