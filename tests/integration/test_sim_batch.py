"""The simulator's batch APIs through the official SDKs: OpenAI Files + Batches and
Anthropic Message Batches, with their delays and faults."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import openai
import orjson
import pytest

from sluice.sim.config import SimConfig
from sluice.sim.server import RunningSim, running

pytestmark = pytest.mark.integration


_open: list[openai.AsyncOpenAI | anthropic.AsyncAnthropic] = []


@pytest.fixture
async def sim() -> AsyncIterator[RunningSim]:
    async with running(SimConfig(port=0)) as s:
        yield s
        while _open:
            await _open.pop().close()


def _oa(sim: RunningSim, retries: int = 2) -> openai.AsyncOpenAI:
    client = openai.AsyncOpenAI(base_url=sim.openai_url, api_key="sk-sim", max_retries=retries)
    _open.append(client)
    return client


def _an(sim: RunningSim, retries: int = 2) -> anthropic.AsyncAnthropic:
    client = anthropic.AsyncAnthropic(base_url=sim.url, api_key="sk-sim", max_retries=retries)
    _open.append(client)
    return client


def _jsonl(n: int, *, fail: tuple[int, ...] = ()) -> bytes:
    lines = []
    for i in range(n):
        cid = f"sim-fail-{i}" if i in fail else f"req-{i}"
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"hi {i}"}]}
        lines.append(
            orjson.dumps(
                {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": body}
            )
        )
    return b"\n".join(lines) + b"\n"


async def _submit(client: openai.AsyncOpenAI, data: bytes, **headers: str) -> str:
    file = await client.files.create(file=("in.jsonl", data), purpose="batch")
    batch = await client.batches.create(
        input_file_id=file.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"team": "a"},
        extra_headers=headers or None,
    )
    assert batch.status == "validating"
    assert batch.request_counts is not None and batch.request_counts.total >= 0
    return batch.id


async def test_openai_batch_completes_with_output_and_error_files(sim: RunningSim) -> None:
    client = _oa(sim)
    batch_id = await _submit(client, _jsonl(5, fail=(3,)))
    batch = await client.batches.retrieve(batch_id)
    assert batch.status == "completed"
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed) == (5, 4)
    assert batch.request_counts.failed == 1
    assert batch.metadata == {"team": "a"}
    assert batch.output_file_id and batch.error_file_id
    out = (await client.files.content(batch.output_file_id)).text.splitlines()
    rows = [orjson.loads(line) for line in out]
    assert sorted(r["custom_id"] for r in rows) == ["req-0", "req-1", "req-2", "req-4"]
    for r in rows:
        assert r["response"]["status_code"] == 200
        body = r["response"]["body"]
        assert body["object"] == "chat.completion"
        assert body["usage"]["prompt_tokens"] > 0 and body["usage"]["completion_tokens"] > 0
    err = [orjson.loads(line) for line in (await client.files.content(batch.error_file_id)).text
           .splitlines()]  # fmt: skip
    assert [e["custom_id"] for e in err] == ["sim-fail-3"]
    assert err[0]["response"]["status_code"] == 500
    listed = await client.batches.list()
    assert [b.id for b in listed.data] == [batch_id]


async def test_openai_answers_are_deterministic(sim: RunningSim) -> None:
    client = _oa(sim)
    texts = []
    for _ in range(2):
        batch = await client.batches.retrieve(await _submit(client, _jsonl(3)))
        assert batch.output_file_id
        rows = [orjson.loads(x) for x in (await client.files.content(batch.output_file_id))
                .text.splitlines()]  # fmt: skip
        texts.append({r["custom_id"]: r["response"]["body"]["choices"][0]["message"]["content"]
                      for r in rows})  # fmt: skip
    assert texts[0] == texts[1]


async def test_openai_fail_every_and_expire_headers(sim: RunningSim) -> None:
    client = _oa(sim)
    batch = await client.batches.retrieve(
        await _submit(client, _jsonl(6), **{"x-sim-batch-fail-every": "2"})
    )
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (3, 3)
    expired = await client.batches.retrieve(
        await _submit(client, _jsonl(4), **{"x-sim-batch-expire": "1"})
    )
    assert expired.status == "expired"
    assert expired.output_file_id is None and expired.error_file_id
    err = [orjson.loads(x) for x in (await client.files.content(expired.error_file_id))
           .text.splitlines()]  # fmt: skip
    assert {e["error"]["code"] for e in err} == {"batch_expired"}
    assert len(err) == 4


async def test_openai_poll_5xx_then_recovers(sim: RunningSim) -> None:
    client = _oa(sim, retries=0)
    batch_id = await _submit(client, _jsonl(2), **{"x-sim-batch-poll-5xx": "2"})
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await client.batches.retrieve(batch_id)
    assert (await client.batches.retrieve(batch_id)).status == "completed"


async def test_openai_cancel_mid_batch_keeps_done_items(sim: RunningSim) -> None:
    client = _oa(sim)
    batch_id = await _submit(client, _jsonl(4), **{"x-sim-batch-duration-ms": "3600000"})
    running_batch = await client.batches.retrieve(batch_id)
    assert running_batch.status == "in_progress"
    cancelling = await client.batches.cancel(batch_id)
    assert cancelling.status == "cancelling"
    done = await client.batches.retrieve(batch_id)
    assert done.status == "cancelled"
    assert done.request_counts is not None and done.request_counts.completed == 0
    with pytest.raises(openai.ConflictError):
        await client.batches.cancel(batch_id)


async def test_openai_bad_input_file_fails_with_line_errors(sim: RunningSim) -> None:
    client = _oa(sim)
    data = _jsonl(2) + b"{not json\n" + b'{"custom_id": "x", "url": "/v1/embeddings", "body": {}}\n'
    batch = await client.batches.retrieve(await _submit(client, data))
    assert batch.status == "failed"
    assert batch.errors is not None and batch.errors.data
    assert [(e.code, e.line) for e in batch.errors.data] == [
        ("invalid_json_line", 3),
        ("invalid_url", 4),
    ]
    with pytest.raises(openai.NotFoundError):
        await client.batches.retrieve("batch_nope")
    with pytest.raises(openai.NotFoundError):
        await client.files.retrieve("file-nope")


def _requests(n: int, *, fail: tuple[int, ...] = ()) -> list[dict[str, object]]:
    return [
        {
            "custom_id": f"sim-fail-{i}" if i in fail else f"req-{i}",
            "params": {
                "model": "claude-3-5-haiku-latest",
                "max_tokens": 64,
                "messages": [{"role": "user", "content": f"hello {i}"}],
            },
        }
        for i in range(n)
    ]


async def test_anthropic_message_batch_results(sim: RunningSim) -> None:
    client = _an(sim)
    created = await client.messages.batches.create(requests=_requests(4, fail=(1,)))  # type: ignore[arg-type]
    assert created.processing_status == "in_progress"
    batch = await client.messages.batches.retrieve(created.id)
    assert batch.processing_status == "ended"
    assert batch.request_counts.succeeded == 3 and batch.request_counts.errored == 1
    results = {r.custom_id: r.result async for r in await client.messages.batches.results(batch.id)}
    assert set(results) == {"req-0", "sim-fail-1", "req-2", "req-3"}
    ok = results["req-0"]
    assert ok.type == "succeeded"
    assert ok.message.usage.input_tokens > 0 and ok.message.usage.output_tokens > 0
    assert results["sim-fail-1"].type == "errored"
    listed = await client.messages.batches.list()
    assert [b.id for b in listed.data] == [created.id]


async def test_anthropic_cancel_and_expire(sim: RunningSim) -> None:
    client = _an(sim)
    slow = await client.messages.batches.create(
        requests=_requests(3),  # type: ignore[arg-type]
        extra_headers={"x-sim-batch-duration-ms": "3600000"},
    )
    assert (await client.messages.batches.retrieve(slow.id)).processing_status == "in_progress"
    cancelling = await client.messages.batches.cancel(slow.id)
    assert cancelling.processing_status == "canceling"
    ended = await client.messages.batches.retrieve(slow.id)
    assert ended.processing_status == "ended" and ended.request_counts.canceled == 3
    expired = await client.messages.batches.create(
        requests=_requests(2),  # type: ignore[arg-type]
        extra_headers={"x-sim-batch-expire": "1"},
    )
    results = [r.result.type async for r in await client.messages.batches.results(expired.id)]
    assert results == ["expired", "expired"]
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.batches.retrieve("msgbatch_nope")


async def test_anthropic_poll_5xx(sim: RunningSim) -> None:
    client = _an(sim, retries=0)
    created = await client.messages.batches.create(
        requests=_requests(1),  # type: ignore[arg-type]
        extra_headers={"x-sim-batch-poll-5xx": "1"},
    )
    with pytest.raises(anthropic.InternalServerError):
        await client.messages.batches.retrieve(created.id)
    assert (await client.messages.batches.retrieve(created.id)).processing_status == "ended"
