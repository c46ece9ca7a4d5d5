"""langchain-openai: invoke, stream, bind_tools, bind_tools(strict=True),
with_structured_output (json_schema and function calling), abatch — for an OpenAI model and
a Claude model through the OpenAI front end."""

from __future__ import annotations

import json

import pydantic
from checks import CONCURRENCY, KEY, MODELS, URL, expect, run
from langchain_openai import ChatOpenAI


class Weather(pydantic.BaseModel):
    """Weather of a city."""

    city: str
    celsius: int


def chat(model: str) -> ChatOpenAI:
    return ChatOpenAI(model=model, base_url=URL + "/v1", api_key=KEY, max_retries=0)  # type: ignore[arg-type]


def plain(model: str) -> None:
    expect(chat(model).invoke("Say hi").content, "no text")


def stream(model: str) -> None:
    text = "".join(str(c.content) for c in chat(model).stream("Say hi"))
    expect(text, "no streamed text")


def tools(model: str, strict: bool) -> None:
    bound = chat(model).bind_tools([Weather], strict=strict)
    msg = bound.invoke("Weather in Paris?")
    expect(msg.tool_calls and msg.tool_calls[0]["name"] == "Weather", f"{msg.tool_calls}")
    Weather.model_validate(msg.tool_calls[0]["args"])


def structured(model: str, method: str) -> None:
    # json_mode carries no schema: the caller writes it in the prompt, as LangChain's docs say.
    prompt = f"Paris weather. Answer in JSON matching {json.dumps(Weather.model_json_schema())}"
    runnable = chat(model).with_structured_output(Weather, method=method)  # type: ignore[arg-type]
    out = runnable.invoke(prompt)
    expect(isinstance(out, Weather), f"got {out!r}")


async def concurrent(model: str) -> None:
    answers = await chat(model).abatch([f"Question {i}" for i in range(CONCURRENCY)])
    expect(all(a.content for a in answers), "an empty answer")


checks = {}
for m in MODELS:
    checks.update(
        {
            f"{m} invoke": lambda m=m: plain(m),
            f"{m} stream": lambda m=m: stream(m),
            f"{m} bind_tools": lambda m=m: tools(m, strict=False),
            f"{m} bind_tools strict": lambda m=m: tools(m, strict=True),
            f"{m} structured json_schema": lambda m=m: structured(m, "json_schema"),
            f"{m} structured function_calling": lambda m=m: structured(m, "function_calling"),
            f"{m} structured json_mode": lambda m=m: structured(m, "json_mode"),
            f"{m} abatch x{CONCURRENCY}": lambda m=m: concurrent(m),
        }
    )
run("langchain-openai", checks)
