"""llama-index: complete, chat, stream_chat, a tool call (predict_and_call), structured_predict,
async concurrency — the OpenAI-like LLM (OpenAI front end) for an OpenAI model and a Claude
model (the Anthropic LLM: see TARGETS)."""

from __future__ import annotations

import asyncio
import os

import pydantic
from checks import CONCURRENCY, KEY, MODELS, URL, expect, run
from llama_index.core.llms import ChatMessage
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from llama_index.llms.anthropic import Anthropic
from llama_index.llms.openai_like import OpenAILike


class Weather(pydantic.BaseModel):
    city: str
    celsius: int


def llm(front: str, name: str) -> object:
    if front == "openai":
        # OpenAILike: any model name (llama-index's OpenAI class only knows OpenAI's names)
        return OpenAILike(
            model=name,
            api_base=URL + "/v1",
            api_key=KEY,
            is_chat_model=True,
            is_function_calling_model=True,
            context_window=128000,
        )
    return Anthropic(model=name, base_url=URL, api_key=KEY, max_tokens=300)


def complete(front: str, name: str) -> None:
    expect(str(llm(front, name).complete("Say hi")), "no text")  # type: ignore[attr-defined]


def chat(front: str, name: str) -> None:
    resp = llm(front, name).chat([ChatMessage(role="user", content="Say hi")])  # type: ignore[attr-defined]
    expect(resp.message.content, "no text")


def stream(front: str, name: str) -> None:
    gen = llm(front, name).stream_chat([ChatMessage(role="user", content="Say hi")])  # type: ignore[attr-defined]
    expect("".join(r.delta or "" for r in gen), "no streamed text")


def tool(front: str, name: str) -> None:
    called: list[str] = []

    def get_weather(city: str) -> str:
        """Weather of a city."""
        called.append(city)
        return "sunny"

    out = llm(front, name).predict_and_call(  # type: ignore[attr-defined]
        [FunctionTool.from_defaults(fn=get_weather)], "Weather in Paris?"
    )
    expect(called and str(out), f"called {called}")


def structured(front: str, name: str) -> None:
    out = llm(front, name).structured_predict(  # type: ignore[attr-defined]
        Weather, PromptTemplate("Weather of {city}"), city="Paris"
    )
    if not isinstance(out, Weather) and os.environ.get("SLUICE_COMPAT_VERBOSE"):
        print(repr(out))
    expect(isinstance(out, Weather), f"got {out!r}")


async def concurrent(front: str, name: str) -> None:
    model = llm(front, name)
    outs = await asyncio.gather(
        *(model.achat([ChatMessage(role="user", content=f"Q {i}")]) for i in range(CONCURRENCY))  # type: ignore[attr-defined]
    )
    expect(all(o.message.content for o in outs), "an empty answer")


# llama-index's Anthropic LLM is not in the lane: llama-index-llms-anthropic 0.12.3 fails
# inside the client before any request with anthropic 2.17 ("Cannot instantiate
# typing.Union") and with anthropic 1.17 ("unexpected keyword argument 'temperature'").
# `SLUICE_COMPAT_LLAMA_ANTHROPIC=1` runs it anyway (with a Claude name it knows).
TARGETS = [("openai", m) for m in MODELS]
if os.environ.get("SLUICE_COMPAT_LLAMA_ANTHROPIC"):
    TARGETS.append(("anthropic", "claude-3-5-haiku-latest"))
checks = {}
for front, m in TARGETS:
    if True:
        tag = f"{front}-llm {m}"
        checks.update(
            {
                f"{tag} complete": lambda f=front, m=m: complete(f, m),
                f"{tag} chat": lambda f=front, m=m: chat(f, m),
                f"{tag} stream_chat": lambda f=front, m=m: stream(f, m),
                f"{tag} predict_and_call": lambda f=front, m=m: tool(f, m),
                f"{tag} structured_predict": lambda f=front, m=m: structured(f, m),
                f"{tag} achat x{CONCURRENCY}": lambda f=front, m=m: concurrent(f, m),
            }
        )
run("llama-index", checks)
