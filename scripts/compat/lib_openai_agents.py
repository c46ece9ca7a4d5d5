"""openai-agents: Runner.run (plain), run_streamed, a function tool (strict by default),
structured output_type, concurrent runs — Chat Completions models on Sluice for an OpenAI
model and a Claude model."""

from __future__ import annotations

import asyncio

import pydantic
from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from checks import CONCURRENCY, KEY, MODELS, URL, expect, run
from openai import AsyncOpenAI

set_tracing_disabled(True)  # no trace upload to OpenAI


class Weather(pydantic.BaseModel):
    city: str
    celsius: int


called: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """Weather of a city."""
    called.append(city)
    return "sunny"


def model(name: str) -> OpenAIChatCompletionsModel:
    client = AsyncOpenAI(base_url=URL + "/v1", api_key=KEY, max_retries=0)
    return OpenAIChatCompletionsModel(model=name, openai_client=client)


async def plain(name: str) -> None:
    result = await Runner.run(Agent(name="a", model=model(name)), "Say hi")
    expect(result.final_output, "no output")


async def streamed(name: str) -> None:
    result = Runner.run_streamed(Agent(name="a", model=model(name)), "Say hi")
    events = [e async for e in result.stream_events()]
    expect(events and result.final_output, "no streamed output")


async def tool_loop(name: str) -> None:
    called.clear()
    agent = Agent(name="a", model=model(name), tools=[get_weather])
    result = await Runner.run(agent, "Weather in Paris?")
    expect(called and result.final_output, f"called {called}")


async def structured(name: str) -> None:
    agent = Agent(name="a", model=model(name), output_type=Weather)
    result = await Runner.run(agent, "Paris is 21 degrees")
    expect(isinstance(result.final_output, Weather), f"got {result.final_output!r}")


async def concurrent(name: str) -> None:
    agent = Agent(name="a", model=model(name))
    results = await asyncio.gather(
        *(Runner.run(agent, f"Question {i}") for i in range(CONCURRENCY))
    )
    expect(all(r.final_output for r in results), "an empty answer")


checks = {}
for m in MODELS:
    checks.update(
        {
            f"{m} run": lambda m=m: plain(m),
            f"{m} run_streamed": lambda m=m: streamed(m),
            f"{m} function tool (strict)": lambda m=m: tool_loop(m),
            f"{m} output_type": lambda m=m: structured(m),
            f"{m} async x{CONCURRENCY}": lambda m=m: concurrent(m),
        }
    )
run("openai-agents", checks)
