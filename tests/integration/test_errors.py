"""Bad input and upstream failures: right status, the caller's error shape, never a traceback."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from multidict import CIMultiDict

from sluice import server
from sluice.config import TimeoutConfig
from tests.conftest import Servers, gateway_config
from tests.sse import parse_sse

pytestmark = pytest.mark.integration

OPENAI = "/v1/chat/completions"
ANTHROPIC = "/v1/messages"


def ok_body(path: str, **extra: Any) -> dict[str, Any]:
    if path == OPENAI:
        return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], **extra}
    return {
        "model": "claude-haiku",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }


async def post(
    s: Servers,
    path: str,
    body: Any,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, CIMultiDict[str], Any]:
    data = raw if raw is not None else orjson.dumps(body)
    async with s.http.post(
        s.gateway_url + path,
        data=data,
        headers={"content-type": "application/json", **(headers or {})},
    ) as r:
        text = await r.read()
        return r.status, CIMultiDict(r.headers), text


def assert_openai_error(body: bytes, param: str | None = None) -> dict[str, Any]:
    err = orjson.loads(body)["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert "Traceback" not in err["message"]
    if param is not None:
        assert err["param"] == param
    return err  # type: ignore[no-any-return]


def assert_anthropic_error(body: bytes, err_type: str) -> dict[str, Any]:
    parsed = orjson.loads(body)
    assert parsed["type"] == "error"
    assert parsed["error"]["type"] == err_type
    assert "Traceback" not in parsed["error"]["message"]
    return parsed["error"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
async def test_malformed_json_is_400(servers: Servers, path: str) -> None:
    status, headers, body = await post(servers, path, None, raw=b'{"model": "x", ')
    assert status == 400
    assert headers["x-sluice-request-id"]
    if path == OPENAI:
        assert "not valid JSON" in assert_openai_error(body)["message"]
    else:
        assert_anthropic_error(body, "invalid_request_error")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "gpt-4o-mini"}, "messages"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        (ok_body(OPENAI, messages=[{"role": "wizard", "content": "x"}]), "messages[0].role"),
        (ok_body(OPENAI, messages=[{"role": "user", "content": 5}]), "messages[0].content"),
        (ok_body(OPENAI, temperature=3), "temperature"),
        (ok_body(OPENAI, n=2), "n"),
        (ok_body(OPENAI, max_tokens=0), "max_tokens"),
        (ok_body(OPENAI, stop=["a", "b", "c", "d", "e"]), "stop"),
        (ok_body(OPENAI, tools=[{"type": "function", "function": {}}]), "tools[0].function.name"),
        (ok_body(OPENAI, messages=[{"role": "tool", "content": "x"}]), "messages[0].tool_call_id"),
        (ok_body(OPENAI, tool_choice="sometimes"), "tool_choice"),
        (["not", "an", "object"], None),
    ],
)
async def test_openai_schema_violations_name_the_field(
    servers: Servers, body: Any, param: str | None
) -> None:
    status, _, raw = await post(servers, OPENAI, body)
    assert status == 400
    err = assert_openai_error(raw, param)
    assert err["type"] == "invalid_request_error"
    if param:
        assert param in err["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "claude-haiku", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        (ok_body(ANTHROPIC, messages=[{"role": "system", "content": "x"}]), "messages[0].role"),
        (ok_body(ANTHROPIC, temperature=1.5), "temperature"),
        (
            ok_body(ANTHROPIC, messages=[{"role": "user", "content": [{"type": "video"}]}]),
            "messages[0].content[0].type",
        ),
    ],
)
async def test_anthropic_schema_violations_name_the_field(
    servers: Servers, body: Any, field: str
) -> None:
    status, _, raw = await post(servers, ANTHROPIC, body)
    assert status == 400
    assert field in assert_anthropic_error(raw, "invalid_request_error")["message"]


async def test_unknown_model_is_404_in_both_formats(servers: Servers) -> None:
    status, _, raw = await post(servers, OPENAI, ok_body(OPENAI, model="gpt-99"))
    assert status == 404
    err = assert_openai_error(raw, "model")
    assert err["code"] == "model_not_found" and "gpt-99" in err["message"]
    status, _, raw = await post(servers, ANTHROPIC, ok_body(ANTHROPIC, model="claude-99"))
    assert status == 404
    assert_anthropic_error(raw, "not_found_error")


@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
async def test_body_over_limit_is_413(servers: Servers, path: str) -> None:
    big = ok_body(path, messages=[{"role": "user", "content": "x" * 70_000}])
    status, _, raw = await post(servers, path, big)
    assert status == 413
    if path == OPENAI:
        assert_openai_error(raw)
    else:
        assert_anthropic_error(raw, "request_too_large")


async def test_unknown_route_and_method_are_json(servers: Servers) -> None:
    async with servers.http.get(servers.gateway_url + "/v1/nothing") as r:
        assert r.status == 404
        assert_openai_error(await r.read())
    async with servers.http.get(servers.gateway_url + OPENAI) as r:
        assert r.status == 405
        assert_openai_error(await r.read())


@pytest.mark.parametrize(
    ("fault", "status", "anthropic_type"),
    [
        ("429", 429, "rate_limit_error"),
        ("500", 500, "api_error"),
        ("502", 502, "api_error"),
        ("503", 503, "overloaded_error"),
        ("529", 503, "overloaded_error"),
        ("malformed", 502, "api_error"),
        ("refuse", 502, "api_error"),
    ],
)
async def test_upstream_failures_are_mapped(
    servers: Servers, fault: str, status: int, anthropic_type: str
) -> None:
    headers = {"x-sim-fault": fault}
    for model in ("gpt-4o-mini", "claude-haiku"):  # both adapters
        got, hdrs, raw = await post(servers, OPENAI, ok_body(OPENAI, model=model), headers)
        assert got == status, (model, raw)
        assert_openai_error(raw)
        if fault == "429":
            assert int(hdrs["retry-after"]) >= 1
        got, hdrs, raw = await post(servers, ANTHROPIC, ok_body(ANTHROPIC, model=model), headers)
        assert got == status
        assert_anthropic_error(raw, anthropic_type)


async def test_upstream_timeout_is_504(sim_url: str) -> None:
    import aiohttp

    config = gateway_config(sim_url)
    fast = TimeoutConfig(connect_s=1, ttft_s=0.5, idle_s=0.5, total_s=0.5)
    config = config.model_copy(
        update={
            "deployments": [d.model_copy(update={"timeouts": fast}) for d in config.deployments]
        }
    )
    runner, port = await server.start(config)
    try:
        async with aiohttp.ClientSession() as http:
            for stream in (False, True):
                body = ok_body(OPENAI, stream=stream)
                async with http.post(
                    f"http://127.0.0.1:{port}{OPENAI}", json=body, headers={"x-sim-fault": "hang"}
                ) as r:
                    assert r.status == 504
                    assert assert_openai_error(await r.read())["code"] == "upstream_timeout"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku"])
async def test_stream_cut_mid_way_ends_with_error_event(servers: Servers, model: str) -> None:
    headers = {"x-sim-fault": "cut"}
    status, _, raw = await post(servers, OPENAI, ok_body(OPENAI, model=model, stream=True), headers)
    assert status == 200
    events = parse_sse(raw)
    assert "error" in events[-1][1] and events[-1][1] != "[DONE]"
    status, _, raw = await post(
        servers, ANTHROPIC, ok_body(ANTHROPIC, model=model, stream=True), headers
    )
    events = parse_sse(raw)
    assert events[-1][0] == "error"
    assert not any(name == "message_stop" for name, _ in events)


async def test_unexpected_exception_is_500_with_request_id(
    servers: Servers, monkeypatch: Any
) -> None:
    async def explode(ctx: Any) -> Any:
        raise RuntimeError("secret internal detail")

    runner, port = await server.start(gateway_config(servers.sim_url))
    try:
        gateway = runner.app[server.GATEWAY]
        monkeypatch.setattr(gateway, "handler", explode)
        async with servers.http.post(
            f"http://127.0.0.1:{port}{OPENAI}",
            json=ok_body(OPENAI),
            headers={"x-sluice-request-id": "req-abc"},
        ) as r:
            assert r.status == 500
            err = assert_openai_error(await r.read())
            assert "req-abc" in err["message"] and "secret" not in err["message"]
            assert r.headers["x-sluice-request-id"] == "req-abc"
    finally:
        await runner.cleanup()
