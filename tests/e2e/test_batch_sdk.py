"""Batches end to end with the official SDKs against the simulator, in run mode:
OpenAI Batches (`client.files` + `client.batches`) and Anthropic Message Batches
(`client.messages.batches`), per-line validation errors, tenant isolation, cancellation
mid-batch (completed items kept), and a call record per item linked to its batch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import update

from sluice.cli import main
from sluice.config import SluiceConfig
from sluice.observe.report import run_report
from sluice.sim.config import SimConfig, SimModel
from sluice.sim.server import start as start_sim
from sluice.state.tables import batches as batches_table
from sluice.web.appkeys import GATEWAY
from sluice.web.batches import STORE
from tests.conftest import gateway_config
from tests.governance_rig import (
    admin,
    create_key,
    gateway,
    keyed_config,
    postgres_schema,
    set_env,
)

_OPEN: list[openai.AsyncOpenAI | anthropic.AsyncAnthropic] = []


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    while _OPEN:
        await _OPEN.pop().close()


def oai(base: str, key: str = "sk-none") -> openai.AsyncOpenAI:
    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
    _OPEN.append(client)
    return client


def ant(base: str, key: str = "sk-none") -> anthropic.AsyncAnthropic:
    client = anthropic.AsyncAnthropic(base_url=base, api_key=key, max_retries=0)
    _OPEN.append(client)
    return client


def batch_config(config: SluiceConfig, **batch: Any) -> SluiceConfig:
    data = config.model_dump()
    data["cache"]["semantic"]["enabled"] = False
    data["cache"]["exact"]["enabled"] = False
    data["batch"].update({"poll_s": 0.05, **batch})
    return SluiceConfig.model_validate(data)


def line(custom_id: str, model: str = "gpt-4o-mini", text: str = "hello") -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 20},
    }


def jsonl(lines: list[Any]) -> bytes:
    return b"\n".join(orjson.dumps(x) for x in lines) + b"\n"


async def until(check: Callable[[], Awaitable[Any]], what: str, limit_s: float = 60) -> Any:
    """Poll `check` until it returns something truthy (a correctness wait, not a timing)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while loop.time() < deadline:
        got = await check()
        if got:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def finished(client: openai.AsyncOpenAI, batch_id: str) -> Any:
    async def done() -> Any:
        b = await client.batches.retrieve(batch_id)
        return b if b.status in ("completed", "failed", "expired", "cancelled") else None

    return await until(done, f"batch {batch_id} to end")


async def submit(client: openai.AsyncOpenAI, lines: list[Any]) -> Any:
    """Upload `lines` as a batch input file and create a chat-completions batch of it."""
    upload = await client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    return await client.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    )


async def completed(client: openai.AsyncOpenAI, batch_id: str, count: int) -> None:
    """Wait until `count` items of the batch have finished."""

    async def enough() -> Any:
        b = await client.batches.retrieve(batch_id)
        return b.request_counts is not None and b.request_counts.completed >= count

    await until(enough, f"{count} items of {batch_id} to finish")


async def test_openai_batch_run_mode(sim_url: str) -> None:
    async with gateway(batch_config(gateway_config(sim_url))) as (base, _app):
        client = oai(base)
        lines = [line(f"req-{n}", text=f"question {n}") for n in range(6)]
        lines.append(line("bad-model", model="no-such-model"))
        upload = await client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
        made = await client.batches.create(
            input_file_id=upload.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata={"job": "nightly"},
        )
        assert made.id.startswith("batch_") and made.status == "in_progress"
        assert made.request_counts is not None and made.request_counts.total == 7
        done = await finished(client, made.id)
        assert done.status == "completed", done
        assert done.request_counts.completed == 6 and done.request_counts.failed == 1
        assert done.metadata == {"job": "nightly"} and done.completed_at is not None
        out = [
            orjson.loads(x)
            for x in (await client.files.content(done.output_file_id)).content.splitlines()
        ]
        assert [o["custom_id"] for o in out] == [f"req-{n}" for n in range(6)]
        for o in out:
            assert o["response"]["status_code"] == 200 and o["error"] is None
            body = o["response"]["body"]
            assert body["object"] == "chat.completion"
            assert body["choices"][0]["message"]["content"].startswith("[simulated]")
            line_no = 1 + [x["custom_id"] for x in lines].index(o["custom_id"])
            assert o["response"]["request_id"] == f"{made.id}-{line_no}"  # its call record
        errors = (await client.files.content(done.error_file_id)).content.splitlines()
        assert len(errors) == 1
        err = orjson.loads(errors[0])
        assert err["custom_id"] == "bad-model" and err["response"]["status_code"] == 404
        assert (await client.files.retrieve(done.output_file_id)).purpose == "batch_output"
        assert [b.id async for b in client.batches.list()] == [made.id]
        async with aiohttp.ClientSession() as http, http.get(base + "/ui/api/batches") as r:
            shown = (await r.json())["batches"]  # the dashboard's listing (loopback admin)
        assert [(b["id"], b["status"], b["done"], b["total"]) for b in shown] == [
            (made.id, "completed", 7, 7)
        ]
        async with aiohttp.ClientSession() as http, http.get(base + "/metrics") as r:
            metrics = await r.text()
        assert 'sluice_batch_items_total{outcome="succeeded"} 6.0' in metrics
        assert 'sluice_batch_items_total{outcome="errored"} 1.0' in metrics
        assert "sluice_batch_queue_depth" in metrics

    # Every item left a call record linked to its batch: `sluice report --by batch`.
    url = _app[GATEWAY].config.observability.records.store_url
    assert url is not None
    report = orjson.loads(run_report(url, "1h", "batch", as_json=True))
    row = next(g for g in report["groups"] if g["group"] == made.id)
    assert row["calls"] == 7 and row["errors"] == 1 and row["output_tokens"] > 0


async def test_bad_lines_fail_the_batch_with_line_numbers(sim_url: str) -> None:
    async with gateway(batch_config(gateway_config(sim_url))) as (base, _app):
        client = oai(base)
        raw = jsonl([line("a")]) + b"{not json\n" + jsonl([line("a"), {"custom_id": "c"}])
        upload = await client.files.create(file=("in.jsonl", raw), purpose="batch")
        made = await client.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        assert made.status == "failed"
        assert made.errors is not None and made.errors.data is not None
        by_line = {e.line: e.code for e in made.errors.data}
        assert by_line == {2: "invalid_json_line", 3: "duplicate_custom_id", 4: "invalid_value"}
        with pytest.raises(openai.NotFoundError):
            await client.batches.create(
                input_file_id="file-nope",
                endpoint="/v1/chat/completions",
                completion_window="24h",
            )
        with pytest.raises(openai.BadRequestError):
            await client.batches.create(
                input_file_id=upload.id, endpoint="/v1/embeddings", completion_window="24h"
            )
        with pytest.raises(openai.BadRequestError):
            await client.batches.create(
                input_file_id=upload.id,
                endpoint="/v1/chat/completions",
                completion_window="7d",  # type: ignore[arg-type]
            )


async def test_anthropic_message_batches(sim_url: str) -> None:
    async with gateway(batch_config(gateway_config(sim_url))) as (base, _app):
        client = ant(base)
        requests: list[Any] = [
            {
                "custom_id": f"q{n}",
                "params": {
                    "model": "claude-haiku",
                    "max_tokens": 20,
                    "messages": [{"role": "user", "content": f"hi {n}"}],
                },
            }
            for n in range(4)
        ]
        requests.append(
            {
                "custom_id": "broken",
                "params": {"model": "claude-haiku", "max_tokens": 20, "messages": "not a list"},
            }
        )
        made = await client.messages.batches.create(requests=requests)
        assert made.id.startswith("msgbatch_") and made.processing_status == "in_progress"

        async def ended() -> Any:
            b = await client.messages.batches.retrieve(made.id)
            return b if b.processing_status == "ended" else None

        done = await until(ended, "the message batch to end")
        assert done.request_counts.succeeded == 4 and done.request_counts.errored == 1
        assert done.results_url and done.ended_at is not None
        results = {
            r.custom_id: r.result async for r in await client.messages.batches.results(made.id)
        }
        assert set(results) == {"q0", "q1", "q2", "q3", "broken"}
        for n in range(4):
            ok = results[f"q{n}"]
            assert ok.type == "succeeded"
            assert ok.message.content[0].text.startswith("[simulated]")  # type: ignore[union-attr]
        assert results["broken"].type == "errored"
        listed = [b.id async for b in client.messages.batches.list()]
        assert listed == [made.id]
        with pytest.raises(anthropic.BadRequestError):
            await client.messages.batches.create(requests=[])


async def test_batches_belong_to_their_tenant(
    sim_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_env(monkeypatch)
    config = batch_config(keyed_config(sim_url, "sqlite:///keys.db"))
    async with gateway(config) as (base, _app), aiohttp.ClientSession() as http:
        acme = (await create_key(http, base, tenant="acme"))["key"]
        other = (await create_key(http, base, tenant="globex"))["key"]
        mine = oai(base, acme)
        upload = await mine.files.create(file=("in.jsonl", jsonl([line("a")])), purpose="batch")
        theirs = oai(base, other)
        with pytest.raises(openai.NotFoundError):  # not even with my file id
            await theirs.batches.create(
                input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
        made = await mine.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        for call in (theirs.batches.retrieve, theirs.batches.cancel):
            with pytest.raises(openai.NotFoundError):
                await call(made.id)
        assert [b.id async for b in theirs.batches.list()] == []
        done = await finished(mine, made.id)
        assert done.status == "completed"
        with pytest.raises(openai.NotFoundError):
            await theirs.files.content(done.output_file_id or "")
        a_mine, a_theirs = ant(base, acme), ant(base, other)
        amade = await a_mine.messages.batches.create(
            requests=[
                {
                    "custom_id": "x",
                    "params": {
                        "model": "claude-haiku",
                        "max_tokens": 5,
                        "messages": [{"role": "user", "content": "hi"}],
                    },
                }
            ]
        )
        for acall in (a_theirs.messages.batches.retrieve, a_theirs.messages.batches.cancel):
            with pytest.raises(anthropic.NotFoundError):
                await acall(amade.id)
        with pytest.raises(openai.NotFoundError):  # an Anthropic batch is not an OpenAI one
            await mine.batches.retrieve(amade.id)


@pytest.fixture
async def slow_sim() -> AsyncIterator[str]:
    models = {"gpt-4o-mini": SimModel(name="gpt-4o-mini", ttft_ms=150)}
    runner, port = await start_sim(SimConfig(port=0, models=models))
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_cancel_stops_new_items_and_keeps_finished_ones(slow_sim: str) -> None:
    config = batch_config(gateway_config(slow_sim), max_concurrency=2)
    async with gateway(config) as (base, _app):
        client = oai(base)
        lines = [line(f"r{n}", text=f"slow {n}") for n in range(40)]
        made = await submit(client, lines)

        await completed(client, made.id, 2)
        cancelling = await client.batches.cancel(made.id)
        assert cancelling.status == "cancelling"
        assert cancelling.request_counts is not None
        at_cancel = cancelling.request_counts.completed
        done = await finished(client, made.id)
        assert done.status == "cancelled" and done.cancelled_at is not None
        counts = done.request_counts
        assert counts.total == 40 and 2 <= counts.completed < 40
        # No new item starts after the cancel: only the (at most 2) in flight may finish.
        assert counts.completed <= at_cancel + 2
        assert counts.completed + counts.failed == 40
        out = (await client.files.content(done.output_file_id)).content.splitlines()
        assert len(out) == counts.completed  # every finished item kept, once
        errors = [
            orjson.loads(x)
            for x in (await client.files.content(done.error_file_id)).content.splitlines()
        ]
        assert {e["error"]["code"] for e in errors} == {"batch_cancelled"}
        with pytest.raises(openai.BadRequestError):  # a completed batch cannot be cancelled
            upload2 = await client.files.create(
                file=("b.jsonl", jsonl([line("z")])), purpose="batch"
            )
            b2 = await client.batches.create(
                input_file_id=upload2.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            await finished(client, b2.id)
            await client.batches.cancel(b2.id)


async def test_items_over_budget_fail_with_budget_exceeded(
    sim_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_env(monkeypatch)
    config = keyed_config(sim_url, "sqlite:///keys.db")
    data = batch_config(config, max_concurrency=1).model_dump()
    data["limits"]["enabled"] = True
    config = SluiceConfig.model_validate(data)
    async with gateway(config) as (base, _app), aiohttp.ClientSession() as http:
        key = (await create_key(http, base, budgets=[{"period": "total", "tokens": 150}]))["key"]
        client = oai(base, key)
        lines = [line(f"b{n}", text=f"budget question {n}") for n in range(12)]
        made = await submit(client, lines)
        done = await finished(client, made.id)
        assert done.status == "completed" and done.request_counts is not None
        assert 1 <= done.request_counts.completed < 12  # reserved as it ran, not up front
        assert done.error_file_id is not None
        errors = [
            orjson.loads(x)
            for x in (await client.files.content(done.error_file_id)).content.splitlines()
        ]
        assert len(errors) == 12 - done.request_counts.completed
        for e in errors:
            assert e["response"]["status_code"] == 429
            assert e["response"]["body"]["error"]["code"] == "budget_exceeded"


async def test_watch_shows_the_finished_batch(sim_url: str) -> None:
    async with gateway(batch_config(gateway_config(sim_url))) as (base, _app):
        client = oai(base)
        made = await submit(client, [line("w")])
        await finished(client, made.id)
        result = await asyncio.to_thread(
            CliRunner().invoke,
            main,
            ["batch", "watch", made.id, "--url", base, "--interval", "0.1"],
        )
        assert result.exit_code == 0, result.output
        assert "100.0%" in result.output and "1/1" in result.output
        missing = await asyncio.to_thread(
            CliRunner().invoke, main, ["batch", "watch", "batch_nope", "--url", base]
        )
        assert missing.exit_code == 1 and "404" in missing.output


async def test_past_its_completion_window_a_batch_expires(slow_sim: str) -> None:
    config = batch_config(gateway_config(slow_sim), max_concurrency=1)
    async with gateway(config) as (base, app):
        client = oai(base)
        lines = [line(f"e{n}", text=f"expiring {n}") for n in range(30)]
        made = await submit(client, lines)

        await completed(client, made.id, 1)
        store = app[STORE]  # the window ends now (as if 24 hours had passed)
        with store.engine.begin() as conn:
            conn.execute(
                update(batches_table).where(batches_table.c.id == made.id).values(expires_at=0)
            )
        done = await finished(client, made.id)
        assert done.status == "expired" and done.expired_at is not None
        assert done.request_counts is not None
        kept = done.request_counts.completed
        assert 1 <= kept < 30 and kept + done.request_counts.failed == 30
        assert done.error_file_id is not None and done.output_file_id is not None
        errors = [
            orjson.loads(x)
            for x in (await client.files.content(done.error_file_id)).content.splitlines()
        ]
        assert {e["error"]["code"] for e in errors} == {"batch_expired"}
        assert len(errors) == 30 - kept


def forward_config(sim_url: str) -> SluiceConfig:
    models = {"gpt-4o-mini": "forward", "claude-haiku": "forward"}
    return batch_config(gateway_config(sim_url), models=models, forward_poll_s=0.1)


async def test_forward_mode_openai(sim_url: str) -> None:
    async with gateway(forward_config(sim_url)) as (base, app):
        client = oai(base)
        lines = [line(f"f{n}", text=f"forwarded {n}") for n in range(5)]
        made = await submit(client, lines)
        done = await finished(client, made.id)
        assert done.status == "completed" and done.request_counts is not None
        assert done.request_counts.completed == 5 and done.output_file_id is not None
        out = [
            orjson.loads(x)
            for x in (await client.files.content(done.output_file_id)).content.splitlines()
        ]
        assert sorted(o["custom_id"] for o in out) == [f"f{n}" for n in range(5)]
        for o in out:
            assert o["response"]["status_code"] == 200
            assert o["response"]["body"]["choices"][0]["message"]["content"]
        stored = await app[STORE].get_any(made.id)
        assert stored is not None and stored.mode == "forward"
        assert stored.provider is not None and stored.provider["id"].startswith("batch_")
        # Mixed models cannot be forwarded together.
        mixed = [line("a"), line("b", model="gpt-4o")]
        upload2 = await client.files.create(file=("m.jsonl", jsonl(mixed)), purpose="batch")
        with pytest.raises(openai.BadRequestError):
            await client.batches.create(
                input_file_id=upload2.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
    url = app[GATEWAY].config.observability.records.store_url
    assert url is not None
    report = orjson.loads(run_report(url, "1h", "batch", as_json=True))
    row = next(g for g in report["groups"] if g["group"] == made.id)
    assert row["calls"] == 5 and row["output_tokens"] > 0
    # at the provider's batch price: half of 0.15 / 0.60 per million tokens
    full = (row["input_tokens"] * 0.15 + row["output_tokens"] * 0.60) / 1e6
    assert abs(float(row["cost_usd"]) - full / 2) < 1e-9


async def test_forward_mode_anthropic(sim_url: str) -> None:
    async with gateway(forward_config(sim_url)) as (base, _app):
        client = ant(base)
        requests: list[Any] = [
            {
                "custom_id": f"a{n}",
                "params": {
                    "model": "claude-haiku",
                    "max_tokens": 20,
                    "messages": [{"role": "user", "content": f"forward {n}"}],
                },
            }
            for n in range(3)
        ]
        made = await client.messages.batches.create(requests=requests)

        async def ended() -> Any:
            b = await client.messages.batches.retrieve(made.id)
            return b if b.processing_status == "ended" else None

        done = await until(ended, "the forwarded message batch to end")
        assert done.request_counts.succeeded == 3
        results = {
            r.custom_id: r.result async for r in await client.messages.batches.results(made.id)
        }
        assert set(results) == {"a0", "a1", "a2"}
        assert all(r.type == "succeeded" for r in results.values())


async def test_batches_on_postgres_with_the_pgqueuer_queue(sim_url: str) -> None:
    with postgres_schema() as url:
        config = batch_config(gateway_config(sim_url), store_url=url)
        data = config.model_dump()
        data["files"]["store_url"] = url
        data["queue"]["url"] = url
        config = SluiceConfig.model_validate(data)
        async with gateway(config) as (base, _app):
            client = oai(base)
            lines = [line(f"pg{n}", text=f"shared {n}") for n in range(10)]
            made = await submit(client, lines)
            done = await finished(client, made.id)
            assert done.status == "completed" and done.request_counts is not None
            assert done.request_counts.completed == 10 and done.output_file_id is not None
            out = (await client.files.content(done.output_file_id)).content.splitlines()
            assert sorted(orjson.loads(x)["custom_id"] for x in out) == sorted(
                f"pg{n}" for n in range(10)
            )


async def test_a_key_revoked_mid_batch_stops_charging_it(
    slow_sim: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_env(monkeypatch)
    config = batch_config(keyed_config(slow_sim, "sqlite:///keys.db"), max_concurrency=1)
    async with gateway(config) as (base, _app), aiohttp.ClientSession() as http:
        made_key = await create_key(http, base)
        client = oai(base, made_key["key"])
        lines = [line(f"k{n}", text=f"revoked {n}") for n in range(30)]
        made = await submit(client, lines)

        await completed(client, made.id, 1)
        status, _ = await admin(http, "DELETE", f"{base}/admin/keys/{made_key['key_id']}")
        assert status == 200
        owner = await create_key(http, base)  # same tenant, to read the batch afterwards
        reader = oai(base, owner["key"])
        done = await finished(reader, made.id)
        assert done.request_counts is not None and done.error_file_id is not None
        assert 1 <= done.request_counts.completed < 30
        errors = [
            orjson.loads(x)
            for x in (await reader.files.content(done.error_file_id)).content.splitlines()
        ]
        assert {e["response"]["status_code"] for e in errors} == {401}
