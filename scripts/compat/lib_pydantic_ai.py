"""pydantic-ai with both providers (OpenAI chat model and Anthropic model, each pointed at
Sluice): plain run, streamed run, a tool loop, structured output (tool output and native
output), concurrent runs — for an OpenAI model and a Claude model through each."""

from __future__ import annotations

import asyncio

import pydantic
from checks import CONCURRENCY, KEY, MODELS, URL, expect, run
from pydantic_ai import Agent, NativeOutput
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.openai import OpenAIProvider


class Weather(pydantic.BaseModel):
    city: str
    celsius: int


def model(kind: str, name: str) -> object:
    if kind == "openai":
        return OpenAIChatModel(name, provider=OpenAIProvider(base_url=URL + "/v1", api_key=KEY))
    return AnthropicModel(name, provider=AnthropicProvider(base_url=URL, api_key=KEY))


def plain(kind: str, name: str) -> None:
    result = Agent(model(kind, name)).run_sync("Say hi")  # type: ignore[arg-type]
    expect(result.output, "no output")


async def streamed(kind: str, name: str) -> None:
    agent = Agent(model(kind, name))  # type: ignore[arg-type]
    async with agent.run_stream("Say hi") as result:
        text = "".join([t async for t in result.stream_text(delta=True)])
    expect(text, "no streamed text")


def tool_loop(kind: str, name: str) -> None:
    agent = Agent(model(kind, name))  # type: ignore[arg-type]
    called: list[str] = []

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """Weather of a city."""
        called.append(city)
        return "sunny"

    result = agent.run_sync("Weather in Paris?")
    expect(called and result.output, f"called {called}, output {result.output!r}")


def structured(kind: str, name: str, native: bool) -> None:
    output = NativeOutput(Weather) if native else Weather
    agent = Agent(model(kind, name), output_type=output)  # type: ignore[arg-type,call-overload]
    result = agent.run_sync("Paris is 21 degrees")
    expect(isinstance(result.output, Weather), f"got {result.output!r}")


async def concurrent(kind: str, name: str) -> None:
    agent = Agent(model(kind, name))  # type: ignore[arg-type]
    results = await asyncio.gather(*(agent.run(f"Question {i}") for i in range(CONCURRENCY)))
    expect(all(r.output for r in results), "an empty answer")


checks = {}
for kind in ("openai", "anthropic"):
    for m in MODELS:
        tag = f"{kind}-provider {m}"
        checks.update(
            {
                f"{tag} run": lambda k=kind, m=m: plain(k, m),
                f"{tag} run_stream": lambda k=kind, m=m: streamed(k, m),
                f"{tag} tool loop": lambda k=kind, m=m: tool_loop(k, m),
                f"{tag} output_type (tool)": lambda k=kind, m=m: structured(k, m, False),
                f"{tag} async x{CONCURRENCY}": lambda k=kind, m=m: concurrent(k, m),
            }
        )
# pydantic-ai itself allows NativeOutput on Anthropic only for models its profiles know
# (Claude 4.5+): checked with such a name; with other names it refuses before any call.
checks["openai-provider gpt-4o-mini NativeOutput"] = lambda: structured("openai", MODELS[0], True)
checks["openai-provider claude-haiku NativeOutput"] = lambda: structured("openai", MODELS[1], True)
checks["anthropic-provider claude-sonnet-4-5 NativeOutput"] = lambda: structured(
    "anthropic", "claude-sonnet-4-5", True
)
run("pydantic-ai", checks)
