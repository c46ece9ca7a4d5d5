"""instructor: the modes users pick — OpenAI TOOLS, TOOLS_STRICT, JSON, JSON_SCHEMA, MD_JSON;
Anthropic ANTHROPIC_TOOLS, ANTHROPIC_JSON; partial streaming; async concurrency — each
against an OpenAI model and a Claude model."""

from __future__ import annotations

import asyncio

import anthropic
import instructor
import openai
import pydantic
from checks import ANTHROPIC_MODEL, CONCURRENCY, KEY, MODELS, URL, expect, run


class Weather(pydantic.BaseModel):
    city: str
    celsius: int


def _openai(mode: instructor.Mode) -> instructor.Instructor:
    return instructor.from_openai(
        openai.OpenAI(base_url=URL + "/v1", api_key=KEY, max_retries=0), mode=mode
    )


def _anthropic(mode: instructor.Mode) -> instructor.Instructor:
    return instructor.from_anthropic(
        anthropic.Anthropic(base_url=URL, api_key=KEY, max_retries=0), mode=mode
    )


def extract(client: instructor.Instructor, model: str) -> None:
    out = client.chat.completions.create(
        model=model,
        max_tokens=300,
        response_model=Weather,
        messages=[{"role": "user", "content": "Paris is 21 degrees"}],
        max_retries=1,
    )
    expect(isinstance(out, Weather), f"got {out!r}")


def partial(model: str) -> None:
    client = _openai(instructor.Mode.TOOLS)
    last = None
    for last in client.chat.completions.create_partial(
        model=model,
        response_model=Weather,
        messages=[{"role": "user", "content": "Paris is 21 degrees"}],
    ):
        pass
    expect(last is not None and last.city, f"got {last!r}")


async def concurrent(model: str) -> None:
    client = instructor.from_openai(
        openai.AsyncOpenAI(base_url=URL + "/v1", api_key=KEY, max_retries=0)
    )
    outs = await asyncio.gather(
        *(
            client.chat.completions.create(
                model=model,
                response_model=Weather,
                messages=[{"role": "user", "content": f"City {i}"}],
            )
            for i in range(CONCURRENCY)
        )
    )
    expect(all(isinstance(o, Weather) for o in outs), "not all parsed")


OPENAI_MODES = ["TOOLS", "TOOLS_STRICT", "JSON", "JSON_SCHEMA", "MD_JSON"]
ANTHROPIC_MODES = ["ANTHROPIC_TOOLS", "ANTHROPIC_JSON"]
checks = {}
for m in MODELS:
    for mode in OPENAI_MODES:
        checks[f"{m} openai {mode}"] = lambda m=m, mode=mode: extract(
            _openai(instructor.Mode[mode]), m
        )
    for mode in ANTHROPIC_MODES:
        checks[f"{m} anthropic {mode}"] = lambda m=m, mode=mode: extract(
            _anthropic(instructor.Mode[mode]), m
        )
    checks[f"{m} create_partial"] = lambda m=m: partial(m)
    checks[f"{m} async x{CONCURRENCY}"] = lambda m=m: concurrent(m)
_ = ANTHROPIC_MODEL
run("instructor", checks)
