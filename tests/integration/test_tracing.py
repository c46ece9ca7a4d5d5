"""OpenTelemetry: spans exported over OTLP/HTTP to a collector, trace context carried from
the client through the gateway to the upstream."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sluice import server
from tests.conftest import gateway_config

pytestmark = pytest.mark.integration

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


async def collector() -> tuple[web.AppRunner, str, list[dict[str, Any]]]:
    spans: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.read())
        for resource in export.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    spans.append(
                        {
                            "name": span.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent": span.parent_span_id.hex(),
                        }
                    )
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/v1/traces", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/v1/traces", spans


async def test_spans_follow_the_request_from_client_to_upstream(sim_url: str) -> None:
    col_runner, endpoint, spans = await collector()
    data = gateway_config(sim_url).model_dump()
    data["observability"]["tracing"] = {"enabled": True, "otlp_endpoint": endpoint}
    runner, port = await server.start(gateway_config(sim_url).model_validate(data))
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "trace me"}]}
    traceparent = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json=body,
            headers={"traceparent": traceparent},
        ) as r:
            assert r.status == 200
        async with http.get(sim_url + "/sim/stats") as r:
            upstream_traceparent = (await r.json())["last_traceparent"]
    await runner.cleanup()  # flushes the span exporter
    await col_runner.cleanup()

    by_name = {s["name"]: s for s in spans}
    request = by_name["POST /v1/chat/completions"]
    assert request["trace_id"] == TRACE_ID and request["parent"] == CLIENT_SPAN
    stages = [s for s in spans if s["name"].startswith("sluice.stage.")]
    assert {s["name"] for s in stages} >= {"sluice.stage.structuredoutput", "sluice.stage.settle"}
    attempt = by_name["sluice.attempt"]
    assert attempt["trace_id"] == TRACE_ID
    # the upstream got the attempt's span as its parent
    assert upstream_traceparent == f"00-{TRACE_ID}-{attempt['span_id']}-01"
    assert all(s["trace_id"] == TRACE_ID for s in spans)


async def test_tracing_off_sends_no_traceparent_upstream(sim_url: str) -> None:
    runner, port = await server.start(gateway_config(sim_url))
    body = {
        "model": "claude-haiku",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": "hi"}],
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body) as r:
            assert r.status == 200
        async with http.get(sim_url + "/sim/stats") as r:
            assert (await r.json())["last_traceparent"] is None
    await runner.cleanup()
    await asyncio.sleep(0)
