"""anthropic SDK: plain, stream, tools, strict tools, structured output (output_config),
async concurrency, betas — for a Claude model and an OpenAI model, both through the
Anthropic front end."""

from __future__ import annotations

import asyncio
import json

import anthropic
import pydantic
from checks import CONCURRENCY, KEY, MODELS, URL, expect, run


class Weather(pydantic.BaseModel):
    city: str
    celsius: int


TOOL = {
    "name": "get_weather",
    "description": "Weather of a city",
    "input_schema": {**Weather.model_json_schema(), "additionalProperties": False},
}


def client() -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=URL, api_key=KEY)


def plain(model: str) -> None:
    msg = client().messages.create(
        model=model, max_tokens=100, messages=[{"role": "user", "content": "Say hi"}]
    )
    expect(msg.content and msg.content[0].type == "text", f"content {msg.content}")
    expect(msg.id.startswith("msg_"), f"id {msg.id}")
    expect(msg._request_id, "no request id")


def stream(model: str) -> None:
    with client().messages.stream(
        model=model, max_tokens=100, messages=[{"role": "user", "content": "Say hi"}]
    ) as events:
        text = "".join(events.text_stream)
        final = events.get_final_message()
    expect(text, "no streamed text")
    expect(final.usage.input_tokens > 0 and final.usage.output_tokens > 0, f"{final.usage}")


def tools(model: str, strict: bool) -> None:
    tool = {**TOOL, "strict": True} if strict else TOOL
    msg = client().messages.create(
        model=model,
        max_tokens=200,
        tools=[tool],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    )
    uses = [b for b in msg.content if b.type == "tool_use"]
    expect(uses and uses[0].name == "get_weather", f"content {msg.content}")
    expect(msg.stop_reason == "tool_use", f"stop_reason {msg.stop_reason}")
    Weather.model_validate(uses[0].input)


def structured(model: str) -> None:
    msg = client().messages.create(
        model=model,
        max_tokens=200,
        messages=[{"role": "user", "content": "Weather in Paris"}],
        extra_body={
            "output_config": {
                "format": {"type": "json_schema", "schema": TOOL["input_schema"]}
            }
        },
    )
    Weather.model_validate(json.loads(msg.content[0].text))  # type: ignore[union-attr]


def stop_sequence(model: str) -> None:
    msg = client().messages.create(
        model=model,
        max_tokens=100,
        stop_sequences=["simulated]"],
        messages=[{"role": "user", "content": "Say hi"}],
    )
    expect(msg.stop_reason == "stop_sequence", f"stop_reason {msg.stop_reason}")
    expect(msg.stop_sequence == "simulated]", f"stop_sequence {msg.stop_sequence}")


def betas(model: str) -> None:
    msg = client().beta.messages.create(
        model=model,
        max_tokens=100,
        betas=["context-1m-2025-08-07"],
        messages=[{"role": "user", "content": "Say hi"}],
    )
    expect(msg.content, "no content")


async def concurrent(model: str) -> None:
    async with anthropic.AsyncAnthropic(base_url=URL, api_key=KEY) as aclient:
        answers = await asyncio.gather(
            *(
                aclient.messages.create(
                    model=model,
                    max_tokens=100,
                    messages=[{"role": "user", "content": f"Question {i}"}],
                )
                for i in range(CONCURRENCY)
            )
        )
    expect(all(a.content for a in answers), "an empty answer")


checks = {}
for m in reversed(MODELS):
    checks.update(
        {
            f"{m} plain": lambda m=m: plain(m),
            f"{m} stream": lambda m=m: stream(m),
            f"{m} tools": lambda m=m: tools(m, strict=False),
            f"{m} strict tools": lambda m=m: tools(m, strict=True),
            f"{m} structured (output_config)": lambda m=m: structured(m),
            f"{m} stop_sequence": lambda m=m: stop_sequence(m),
            f"{m} betas": lambda m=m: betas(m),
            f"{m} async x{CONCURRENCY}": lambda m=m: concurrent(m),
        }
    )
run("anthropic", checks)
