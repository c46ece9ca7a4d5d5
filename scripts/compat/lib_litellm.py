"""litellm as a client (never 1.82.7 / 1.82.8): completion, streaming, tools, strict tools,
response_format (json_schema), acompletion concurrency — `openai/<model>` against the
OpenAI front end and `anthropic/<model>` against the Anthropic front end, each model of
both providers."""

from __future__ import annotations

import asyncio
import json

import litellm
from checks import CONCURRENCY, KEY, MODELS, URL, expect, run

litellm.drop_params = False
litellm.suppress_debug_info = True
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
SCHEMA = {"name": "weather", "schema": TOOL["function"]["parameters"], "strict": True}  # type: ignore[index]


def target(front: str, model: str) -> dict[str, str]:
    if front == "openai":
        return {"model": f"openai/{model}", "api_base": URL + "/v1", "api_key": KEY}
    return {"model": f"anthropic/{model}", "api_base": URL, "api_key": KEY}


def plain(front: str, model: str) -> None:
    resp = litellm.completion(messages=[{"role": "user", "content": "Say hi"}], **target(front, model))
    expect(resp.choices[0].message.content, "no text")  # type: ignore[union-attr]


def stream(front: str, model: str) -> None:
    chunks = litellm.completion(
        messages=[{"role": "user", "content": "Say hi"}], stream=True, **target(front, model)
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks)  # type: ignore[union-attr]
    expect(text, "no streamed text")


def tools(front: str, model: str, strict: bool) -> None:
    tool = json.loads(json.dumps(TOOL))
    if strict:
        tool["function"]["strict"] = True
    resp = litellm.completion(
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[tool],
        **target(front, model),
    )
    calls = resp.choices[0].message.tool_calls  # type: ignore[union-attr]
    expect(calls and calls[0].function.name == "get_weather", f"calls {calls}")
    expect("city" in json.loads(calls[0].function.arguments), "arguments")


def structured(front: str, model: str) -> None:
    resp = litellm.completion(
        messages=[{"role": "user", "content": "Weather in Paris as JSON"}],
        response_format={"type": "json_schema", "json_schema": SCHEMA},
        **target(front, model),
    )
    value = json.loads(resp.choices[0].message.content)  # type: ignore[union-attr,arg-type]
    expect("city" in value, f"got {value}")


async def concurrent(front: str, model: str) -> None:
    answers = await asyncio.gather(
        *(
            litellm.acompletion(
                messages=[{"role": "user", "content": f"Question {i}"}], **target(front, model)
            )
            for i in range(CONCURRENCY)
        )
    )
    expect(all(a.choices[0].message.content for a in answers), "an empty answer")  # type: ignore[union-attr]


checks = {}
for front in ("openai", "anthropic"):
    for m in MODELS:
        tag = f"{front}/{m}"
        checks.update(
            {
                f"{tag} completion": lambda f=front, m=m: plain(f, m),
                f"{tag} stream": lambda f=front, m=m: stream(f, m),
                f"{tag} tools": lambda f=front, m=m: tools(f, m, False),
                f"{tag} strict tools": lambda f=front, m=m: tools(f, m, True),
                f"{tag} response_format": lambda f=front, m=m: structured(f, m),
                f"{tag} acompletion x{CONCURRENCY}": lambda f=front, m=m: concurrent(f, m),
            }
        )
run("litellm", checks)
