"""openai SDK: plain, stream, tools, strict tools, structured output, async concurrency —
for an OpenAI model and a Claude model, both through the OpenAI front end."""

from __future__ import annotations

import asyncio

import openai
import pydantic
from checks import CONCURRENCY, KEY, MODELS, URL, expect, run


class Weather(pydantic.BaseModel):
    city: str
    celsius: int


def client() -> openai.OpenAI:
    return openai.OpenAI(base_url=URL + "/v1", api_key=KEY)


def plain(model: str) -> None:
    done = client().chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hi"}]
    )
    expect(done.choices[0].message.content, "no text")
    expect(done.id.startswith("chatcmpl-"), f"id {done.id}")
    expect(done._request_id, "no request id")


def stream(model: str) -> None:
    chunks = client().chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Say hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    parts, usage = [], None
    for chunk in chunks:
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
    expect("".join(parts), "no streamed text")
    expect(usage is not None and usage.completion_tokens > 0, "no usage")


def tools(model: str, strict: bool) -> None:
    tool = openai.pydantic_function_tool(Weather, name="get_weather")
    if not strict:
        tool["function"].pop("strict", None)
    done = client().chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[tool],
    )
    calls = done.choices[0].message.tool_calls or []
    expect(calls and calls[0].function.name == "get_weather", f"calls {calls}")
    Weather.model_validate_json(calls[0].function.arguments)


def parse_tools(model: str) -> None:
    done = client().chat.completions.parse(
        model=model,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[openai.pydantic_function_tool(Weather)],
    )
    call = done.choices[0].message.tool_calls[0]
    expect(isinstance(call.function.parsed_arguments, Weather), "not parsed")


def structured(model: str) -> None:
    done = client().chat.completions.parse(
        model=model,
        messages=[{"role": "user", "content": "Weather in Paris as JSON"}],
        response_format=Weather,
    )
    expect(isinstance(done.choices[0].message.parsed, Weather), "not parsed")


def json_object(model: str) -> None:
    done = client().chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Answer in JSON"}],
        response_format={"type": "json_object"},
    )
    import json

    expect(isinstance(json.loads(done.choices[0].message.content or ""), dict), "not an object")


async def concurrent(model: str) -> None:
    async with openai.AsyncOpenAI(base_url=URL + "/v1", api_key=KEY) as aclient:
        answers = await asyncio.gather(
            *(
                aclient.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": f"Question {i}"}]
                )
                for i in range(CONCURRENCY)
            )
        )
    expect(all(a.choices[0].message.content for a in answers), "an empty answer")


checks = {}
for m in MODELS:
    checks.update(
        {
            f"{m} plain": lambda m=m: plain(m),
            f"{m} stream": lambda m=m: stream(m),
            f"{m} tools": lambda m=m: tools(m, strict=False),
            f"{m} strict tools": lambda m=m: tools(m, strict=True),
            f"{m} parse tools": lambda m=m: parse_tools(m),
            f"{m} structured (parse)": lambda m=m: structured(m),
            f"{m} json_object": lambda m=m: json_object(m),
            f"{m} async x{CONCURRENCY}": lambda m=m: concurrent(m),
        }
    )
run("openai", checks)
