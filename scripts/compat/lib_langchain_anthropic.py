"""langchain-anthropic: invoke, stream, bind_tools, bind_tools(strict=True),
with_structured_output, abatch — for a Claude model and an OpenAI model through the
Anthropic front end."""

from __future__ import annotations

import pydantic
from checks import CONCURRENCY, KEY, MODELS, URL, expect, run
from langchain_anthropic import ChatAnthropic


class Weather(pydantic.BaseModel):
    """Weather of a city."""

    city: str
    celsius: int


def chat(model: str) -> ChatAnthropic:
    return ChatAnthropic(  # type: ignore[call-arg]
        model=model, base_url=URL, api_key=KEY, max_retries=0, max_tokens=300
    )


def plain(model: str) -> None:
    expect(chat(model).invoke("Say hi").content, "no text")


def stream(model: str) -> None:
    text = "".join(str(c.content) for c in chat(model).stream("Say hi"))
    expect(text, "no streamed text")


def tools(model: str, strict: bool) -> None:
    llm = chat(model)
    bound = llm.bind_tools([Weather], strict=True) if strict else llm.bind_tools([Weather])
    msg = bound.invoke("Weather in Paris?")
    expect(msg.tool_calls and msg.tool_calls[0]["name"] == "Weather", f"{msg.tool_calls}")
    Weather.model_validate(msg.tool_calls[0]["args"])


def structured(model: str, method: str | None) -> None:
    llm = chat(model)
    runnable = (
        llm.with_structured_output(Weather)
        if method is None
        else llm.with_structured_output(Weather, method=method)  # type: ignore[arg-type]
    )
    out = runnable.invoke("Paris weather")
    expect(isinstance(out, Weather), f"got {out!r}")


async def concurrent(model: str) -> None:
    answers = await chat(model).abatch([f"Question {i}" for i in range(CONCURRENCY)])
    expect(all(a.content for a in answers), "an empty answer")


checks = {}
for m in reversed(MODELS):
    checks.update(
        {
            f"{m} invoke": lambda m=m: plain(m),
            f"{m} stream": lambda m=m: stream(m),
            f"{m} bind_tools": lambda m=m: tools(m, strict=False),
            f"{m} bind_tools strict": lambda m=m: tools(m, strict=True),
            f"{m} structured (default)": lambda m=m: structured(m, None),
            f"{m} structured json_schema": lambda m=m: structured(m, "json_schema"),
            f"{m} abatch x{CONCURRENCY}": lambda m=m: concurrent(m),
        }
    )
run("langchain-anthropic", checks)
