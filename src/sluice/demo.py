"""`sluice demo`: simulator + gateway on loopback, a scripted workload through the official
`openai` and `anthropic` SDKs (plain, streaming, tool call; both SDKs x both provider kinds),
then a summary. Everything it starts, it stops. The SDKs are the `demo` extra
(`pip install 'sluice[demo]'`, which `make demo` does); without them `sluice demo` says so."""

from __future__ import annotations

import importlib.util
import json
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sluice.bench.load import percentile
from sluice.bench.processes import sim_and_gateway

WEATHER_TOOL_OPENAI: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
WEATHER_TOOL_ANTHROPIC: Any = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": WEATHER_TOOL_OPENAI["function"]["parameters"],
}
MODELS = ["gpt-4o-mini", "claude-haiku"]  # one served by each provider kind


@dataclass
class Call:
    sdk: str
    kind: str
    model: str
    deployment: str
    latency_ms: float
    ttft_ms: float | None
    input_tokens: int
    output_tokens: int


def _openai_calls(base_url: str, model: str, tools: bool = True) -> list[Call]:
    from openai import OpenAI

    client = OpenAI(base_url=base_url + "/v1", api_key="sk-demo", max_retries=0)
    calls = []
    messages: list[Any] = [{"role": "user", "content": "Say hello to the Sluice demo."}]

    start = time.perf_counter()
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=messages, max_tokens=60
    )
    resp = raw.parse()
    calls.append(
        Call(
            "openai",
            "plain",
            model,
            raw.headers.get("x-sluice-deployment", "?"),
            (time.perf_counter() - start) * 1000,
            None,
            resp.usage.prompt_tokens if resp.usage else 0,
            resp.usage.completion_tokens if resp.usage else 0,
        )
    )

    start = time.perf_counter()
    stream = client.chat.completions.create(
        model=model,
        messages=messages,
        max_tokens=60,
        stream=True,
        stream_options={"include_usage": True},
    )
    ttft = None
    usage = None
    for chunk in stream:
        if ttft is None and chunk.choices and chunk.choices[0].delta.content:
            ttft = (time.perf_counter() - start) * 1000
        usage = chunk.usage or usage
    calls.append(
        Call(
            "openai",
            "stream",
            model,
            stream.response.headers.get("x-sluice-deployment", "?"),
            (time.perf_counter() - start) * 1000,
            ttft,
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else 0,
        )
    )

    if not tools:
        client.close()
        return calls
    start = time.perf_counter()
    ask: Any = [{"role": "user", "content": "What is the weather in Lisbon?"}]
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=ask, tools=[WEATHER_TOOL_OPENAI], max_tokens=100
    )
    resp = raw.parse()
    tool_call = resp.choices[0].message.tool_calls[0]  # type: ignore[index]
    follow: Any = [
        *ask,
        resp.choices[0].message.model_dump(exclude_none=True),
        {
            "role": "tool",
            "tool_call_id": tool_call.id,
            "content": json.dumps({"city": "Lisbon", "temp_c": 21}),
        },
    ]
    final = client.chat.completions.create(
        model=model, messages=follow, tools=[WEATHER_TOOL_OPENAI], max_tokens=100
    )
    calls.append(
        Call(
            "openai",
            "tool",
            model,
            raw.headers.get("x-sluice-deployment", "?"),
            (time.perf_counter() - start) * 1000,
            None,
            (resp.usage.prompt_tokens if resp.usage else 0)
            + (final.usage.prompt_tokens if final.usage else 0),
            (resp.usage.completion_tokens if resp.usage else 0)
            + (final.usage.completion_tokens if final.usage else 0),
        )
    )
    client.close()
    return calls


def _anthropic_calls(base_url: str, model: str, tools: bool = True) -> list[Call]:
    from anthropic import Anthropic

    client = Anthropic(base_url=base_url, api_key="sk-demo", max_retries=0)
    calls = []
    messages: list[Any] = [{"role": "user", "content": "Say hello to the Sluice demo."}]

    start = time.perf_counter()
    raw = client.messages.with_raw_response.create(model=model, messages=messages, max_tokens=60)
    msg = raw.parse()
    calls.append(
        Call(
            "anthropic",
            "plain",
            model,
            raw.headers.get("x-sluice-deployment", "?"),
            (time.perf_counter() - start) * 1000,
            None,
            msg.usage.input_tokens + (msg.usage.cache_read_input_tokens or 0),
            msg.usage.output_tokens,
        )
    )

    start = time.perf_counter()
    ttft = None
    with client.messages.stream(model=model, messages=messages, max_tokens=60) as stream:
        for _ in stream.text_stream:
            if ttft is None:
                ttft = (time.perf_counter() - start) * 1000
        final_msg = stream.get_final_message()
        deployment = stream.response.headers.get("x-sluice-deployment", "?")
    calls.append(
        Call(
            "anthropic",
            "stream",
            model,
            deployment,
            (time.perf_counter() - start) * 1000,
            ttft,
            final_msg.usage.input_tokens + (final_msg.usage.cache_read_input_tokens or 0),
            final_msg.usage.output_tokens,
        )
    )

    if not tools:
        client.close()
        return calls
    start = time.perf_counter()
    ask: Any = [{"role": "user", "content": "What is the weather in Lisbon?"}]
    raw = client.messages.with_raw_response.create(
        model=model, messages=ask, tools=[WEATHER_TOOL_ANTHROPIC], max_tokens=100
    )
    msg = raw.parse()
    tool_use = next(b for b in msg.content if b.type == "tool_use")
    follow: Any = [
        *ask,
        {"role": "assistant", "content": [b.model_dump() for b in msg.content]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": tool_use.id,
                    "content": json.dumps({"temp_c": 21}),
                }
            ],
        },
    ]
    final = client.messages.create(
        model=model, messages=follow, tools=[WEATHER_TOOL_ANTHROPIC], max_tokens=100
    )
    calls.append(
        Call(
            "anthropic",
            "tool",
            model,
            raw.headers.get("x-sluice-deployment", "?"),
            (time.perf_counter() - start) * 1000,
            None,
            msg.usage.input_tokens + final.usage.input_tokens,
            msg.usage.output_tokens + final.usage.output_tokens,
        )
    )
    client.close()
    return calls


def _cache_and_idempotency(base_url: str, echo: Any) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=base_url + "/v1", api_key="sk-demo", max_retries=0)
    ask: Any = [{"role": "user", "content": "What is Sluice's exact cache for?"}]
    for attempt in (1, 2):
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=ask, temperature=0, max_tokens=40
        )
        echo(
            f"temperature-0 call {attempt}: x-sluice-cache: {raw.headers['x-sluice-cache']}"
            + (f" (age {raw.headers['x-sluice-cache-age']} s)" if attempt == 2 else "")
        )
    para: Any = [{"role": "user", "content": "What is Sluice's exact cache used for?"}]
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=para, temperature=0, max_tokens=40
    )
    similarity = raw.headers.get("x-sluice-cache-similarity")
    echo(
        f"paraphrased call: x-sluice-cache: {raw.headers['x-sluice-cache']}"
        + (f" (similarity {similarity})" if similarity else "")
    )
    key = {"Idempotency-Key": "demo-order-42"}
    first = client.chat.completions.create(
        model="claude-haiku", messages=ask, max_tokens=40, extra_headers=key
    )
    raw = client.chat.completions.with_raw_response.create(
        model="claude-haiku", messages=ask, max_tokens=40, extra_headers=key
    )
    same = raw.parse().choices[0].message.content == first.choices[0].message.content
    echo(
        f"retry with Idempotency-Key: replayed={raw.headers.get('x-sluice-idempotent-replay')}"
        f", same answer={same}"
    )
    for text in ("What is the capital of Canada?", "Prove that there are infinitely many primes."):
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": text}], max_tokens=40
        )
        echo(f"route auto, {text!r}: {raw.headers.get('x-sluice-route-decision')}")
    client.close()


def summarize(calls: list[Call]) -> str:
    lines = [
        f"{'sdk':<10}{'kind':<8}{'model':<14}{'served by':<20}{'in':>6}{'out':>6}"
        f"{'latency ms':>12}{'ttft ms':>9}"
    ]
    for c in calls:
        ttft = f"{c.ttft_ms:.1f}" if c.ttft_ms is not None else "-"
        lines.append(
            f"{c.sdk:<10}{c.kind:<8}{c.model:<14}{c.deployment:<20}{c.input_tokens:>6}"
            f"{c.output_tokens:>6}{c.latency_ms:>12.1f}{ttft:>9}"
        )
    latencies = [c.latency_ms for c in calls]
    ttfts = [c.ttft_ms for c in calls if c.ttft_ms is not None]
    by_dep = Counter(c.deployment for c in calls)
    lines += [
        "",
        f"requests (scenarios): {len(calls)}  "
        f"(tool scenarios make two calls each: {len(calls) + sum(c.kind == 'tool' for c in calls)}"
        " HTTP requests)",
        "served by: " + ", ".join(f"{d} x {n}" for d, n in sorted(by_dep.items())),
        f"tokens: {sum(c.input_tokens for c in calls)} in, "
        f"{sum(c.output_tokens for c in calls)} out",
        f"latency ms: p50 {percentile(latencies, 50):.1f}, p95 {percentile(latencies, 95):.1f}",
        f"TTFT ms (streams): p50 {percentile(ttfts, 50):.1f}, p95 {percentile(ttfts, 95):.1f}",
    ]
    return "\n".join(lines)


def _real_extras(base_url: str, echo: Any) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=base_url + "/v1", api_key="sk-demo", max_retries=0)
    ask: Any = [{"role": "user", "content": "Name a planet."}]
    for attempt in (1, 2):
        start = time.perf_counter()
        raw = client.chat.completions.with_raw_response.create(
            model="local", messages=ask, temperature=0, max_tokens=20
        )
        echo(
            f"temperature-0 call {attempt}: x-sluice-cache: {raw.headers['x-sluice-cache']}, "
            f"{(time.perf_counter() - start) * 1000:.0f} ms: "
            f"{raw.parse().choices[0].message.content!r}"
        )
    long: Any = [{"role": "user", "content": "word " * 5000}]
    raw = client.chat.completions.with_raw_response.create(
        model="local", messages=long, max_tokens=10
    )
    echo(
        "a 5,000-token prompt (local window 4,096) was served by "
        f"{raw.headers['x-sluice-deployment']} (the fallback)"
    )
    client.close()


def run_real_demo(echo: Any) -> None:
    """The same workload against a real model: llama.cpp + SmolLM2 (`sluice local-model`)."""
    from sluice.bench.processes import start_gateway, start_local_model, start_sim
    from sluice.observe.report import run_report

    config = str(Path(__file__).parent / "localmodel" / "local-llm.yaml")
    with tempfile.TemporaryDirectory(prefix="sluice-demo-") as tmp:
        store = f"sqlite:///{Path(tmp) / 'records.db'}"
        model = start_local_model(Path(tmp))
        try:
            sim = start_sim(Path(tmp))
            try:
                env = {"SLUICE_RECORDS_URL": store, "LOCAL_LLM_URL": model.url}
                gateway = start_gateway(Path(tmp), sim.url, config=config, env=env)
                try:
                    echo(f"llama.cpp: {model.url} (pid {model.pid}, SmolLM2-135M-Instruct Q4_1)")
                    echo(f"simulator: {sim.url} (the fallback)")
                    echo(f"gateway:   {gateway.url} (examples/local-llm.yaml)")
                    echo("running the workload: openai + anthropic SDKs x model 'local'\n")
                    calls = _openai_calls(gateway.url, "local", tools=False)
                    calls += _anthropic_calls(gateway.url, "local", tools=False)
                    echo(summarize(calls))
                    echo("")
                    _real_extras(gateway.url, echo)
                finally:
                    gateway.stop()
            finally:
                sim.stop()
        finally:
            model.stop()
        echo("\nWhat the gateway recorded (`sluice report --by model`):\n")
        echo(run_report(store, "1h", "model"))


def missing_sdks() -> list[str]:
    """The official SDKs the demo drives that are not installed (the `demo` extra)."""
    return [name for name in ("openai", "anthropic") if importlib.util.find_spec(name) is None]


def run_demo(echo: Any) -> None:
    from sluice.observe.report import run_report

    with tempfile.TemporaryDirectory(prefix="sluice-demo-") as tmp:
        sim_args = ["--ttft-ms", "120", "--tps", "250"]
        store = f"sqlite:///{Path(tmp) / 'records.db'}"
        env = {"SLUICE_RECORDS_URL": store}
        with sim_and_gateway(Path(tmp), sim_args=sim_args, env=env) as (sim, gateway):
            echo(f"simulator: {sim.url} (pid {sim.pid}, TTFT 120 ms, 250 tokens/s)")
            echo(f"gateway:   {gateway.url} (pid {gateway.pid}, built-in config)")
            echo(
                "running the workload: openai + anthropic SDKs x "
                "(gpt-4o-mini on the OpenAI adapter, claude-haiku on the Anthropic adapter)\n"
            )
            calls: list[Call] = []
            for model in MODELS:
                calls += _openai_calls(gateway.url, model)
                calls += _anthropic_calls(gateway.url, model)
            echo(summarize(calls))
            echo("")
            _cache_and_idempotency(gateway.url, echo)
        echo(
            "\nstopped the simulator and the gateway. What the gateway recorded "
            "(`sluice report --by model`):\n"
        )
        echo(run_report(store, "1h", "model"))
