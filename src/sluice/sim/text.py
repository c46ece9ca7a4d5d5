"""Deterministic answers: the same request always gets the same simulated reply.

The reply is a pure function of (model, conversation, request seed, simulator seed), so
tests can compare a gateway's output with the simulator's and caches have something
stable to hit. Lengths are measured with `sluice.tokens`, the same estimator the gateway
uses, so simulated usage and gateway estimates agree exactly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from sluice.sim.schema import WORDS as FIELD_WORDS
from sluice.sim.schema import asks_for_json, fill_schema, instance, schema_in_texts
from sluice.tokens import count_text, split_tokens

__all__ = ["FIELD_WORDS", "fill_schema"]

PREFIX = "[simulated] "
INVALID_JSON_TEXT = '```json\n{"broken": \n```'

# Short words (1-2 tokens each) so an answer can hit any exact token count.
VOCAB: tuple[str, ...] = (
    "the", "gateway", "routes", "each", "request", "to", "a", "model", "and", "tokens",
    "flow", "back", "as", "stream", "of", "small", "pieces", "while", "cache", "hits",
    "save", "time", "retry", "logic", "keeps", "calls", "alive", "when", "upstream", "fails",
    "budget", "limits", "guard", "cost", "every", "answer", "is", "simulated", "here", "so",
    "tests", "stay", "fast", "clean", "wire", "format", "speaks", "both", "dialects", "with",
    "care", "latency", "stays", "low", "under", "load", "queue", "drains", "steady", "rate",
    "sluice", "opens", "gate", "water",
)  # fmt: skip
_VOCAB_PIECES = tuple(tuple(split_tokens(" " + w)) for w in VOCAB)
_SHORT_PIECES = tuple(p for p in _VOCAB_PIECES if len(p) == 1)[:8]
_PREFIX_PIECES = split_tokens(PREFIX)

Finish = Literal["stop", "length", "tool_calls", "stop_sequence"]


@dataclass(slots=True)
class ToolSpec:
    name: str
    schema: dict[str, Any]


@dataclass(slots=True)
class Prompt:
    """What the answer depends on, extracted from either wire format."""

    model: str
    key: Any  # JSON-able conversation used for hashing (messages, system)
    texts: list[str]  # every text-bearing prompt piece, for token counting
    n_messages: int
    tools: list[ToolSpec] = field(default_factory=list)
    tool_mode: Literal["auto", "none", "any", "tool"] = "auto"
    forced_tool: str | None = None
    parallel_allowed: bool = True
    last_user_text: str | None = None  # set when the last turn is a plain user turn
    tool_result_text: str | None = None  # set when the last turn is a tool result
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    json_schema: dict[str, Any] | None = None
    json_mode: bool = False  # a JSON object answer is required


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # compact JSON text
    input: Any  # the same, parsed (Anthropic `input`)


@dataclass(slots=True)
class Answer:
    text: str
    pieces: list[str]  # the text split in tokens, as streamed
    tool_calls: list[ToolCall]
    finish: Finish
    output_tokens: int
    stop_sequence: str | None = None


def digest(prompt: Prompt, sim_seed: int) -> bytes:
    """A stable 16-byte hash of the conversation, model and seeds."""
    h = hashlib.blake2b(digest_size=16)
    h.update(prompt.model.encode())
    h.update(b"\x00")
    h.update(orjson.dumps(prompt.key, option=orjson.OPT_SORT_KEYS))
    h.update(f"\x00{prompt.seed}\x00{sim_seed}".encode())
    return h.digest()


def _word_pieces(rng: random.Random, lead: list[str], n_tokens: int) -> list[str]:
    """Token pieces of `lead`, vocabulary words and a final period: `n_tokens` of them.

    Built from precomputed pieces, so the result equals `split_tokens("".join(result))`
    without re-tokenizing. Longer than `n_tokens` only when `lead` is; callers cut.
    """
    pieces = list(lead)
    room = n_tokens - 1 - len(pieces)
    while room > 0:
        word = _VOCAB_PIECES[rng.getrandbits(6)]
        if len(word) > room:
            word = _SHORT_PIECES[rng.getrandbits(3)]
        pieces.extend(word)
        room -= len(word)
    if len(pieces) < n_tokens:
        pieces.append(".")
    return pieces


def _words(rng: random.Random, n_tokens: int) -> str:
    return "".join(_word_pieces(rng, _PREFIX_PIECES, n_tokens))


def _apply_stop(pieces: list[str], stop: list[str]) -> tuple[list[str], str | None]:
    text = "".join(pieces)
    best: tuple[int, str] | None = None
    for seq in stop:
        if not seq:
            continue
        at = text.find(seq)
        if at >= 0 and (best is None or at < best[0]):
            best = (at, seq)
    if best is None:
        return pieces, None
    return split_tokens(text[: best[0]]), best[1]


def _tool_calls(prompt: Prompt, key: bytes, rng: random.Random, id_prefix: str) -> list[ToolCall]:
    by_name = {t.name: t for t in prompt.tools}
    if prompt.tool_mode == "tool" and prompt.forced_tool:
        chosen = [by_name.get(prompt.forced_tool, ToolSpec(prompt.forced_tool, {}))]
    elif (
        prompt.parallel_allowed
        and len(prompt.tools) >= 2
        and "parallel" in (prompt.last_user_text or "").lower()
    ):
        chosen = prompt.tools[:2]
    else:
        chosen = prompt.tools[:1]
    calls = []
    for i, tool in enumerate(chosen):
        value = fill_schema(tool.schema or {"type": "object"}, rng)
        if not isinstance(value, dict):
            value = {"value": value}
        call_id = id_prefix + hashlib.blake2b(key + bytes([i]), digest_size=12).hexdigest()
        calls.append(ToolCall(call_id, tool.name, orjson.dumps(value).decode(), value))
    return calls


def _wants_tools(prompt: Prompt) -> bool:
    return bool(prompt.tools) and prompt.tool_mode != "none" and prompt.last_user_text is not None


def plan_answer(
    prompt: Prompt,
    output_tokens: int,
    sim_seed: int = 0,
    id_prefix: str = "call_",
    invalid_json: bool = False,
) -> Answer:
    """The simulated answer to a prompt: text, or tool calls, with its finish reason."""
    key = digest(prompt, sim_seed)
    rng = random.Random(int.from_bytes(key, "big"))
    if _wants_tools(prompt) and not invalid_json:
        calls = _tool_calls(prompt, key, rng, id_prefix)
        tokens = sum(count_text(c.name) + count_text(c.arguments) for c in calls)
        return Answer("", [], calls, "tool_calls", tokens)
    cap = prompt.max_tokens
    schema, json_mode = prompt.json_schema, prompt.json_mode
    if schema is None and prompt.tool_result_text is None:
        schema = schema_in_texts(prompt.texts)  # JSON asked for in words, schema in the prompt
        json_mode = json_mode or asks_for_json(prompt.texts)
    if invalid_json or schema is not None or json_mode:
        if invalid_json:
            text = INVALID_JSON_TEXT
        else:
            value = (
                instance(schema, rng)
                if schema is not None
                else {"answer": _words(rng, output_tokens)}
            )
            text = orjson.dumps(value).decode()
        pieces = split_tokens(text)
    else:
        lead = _PREFIX_PIECES
        if prompt.tool_result_text is not None:
            snippet = " ".join(prompt.tool_result_text.split())[:60]
            lead = split_tokens(f"{PREFIX}Tool result: {snippet}")
        pieces = _word_pieces(rng, lead, output_tokens)[:output_tokens]
    finish: Finish = "stop"
    if cap is not None and len(pieces) > cap:
        pieces = pieces[: max(cap, 0)]
        finish = "length"
    stop_seq = None
    if prompt.stop:
        pieces, stop_seq = _apply_stop(pieces, prompt.stop)
        if stop_seq is not None:
            finish = "stop_sequence"
    return Answer("".join(pieces), pieces, [], finish, len(pieces), stop_seq)


def with_prefix(answer: Answer, prefix: str) -> Answer:
    """The same text answer with `prefix` in front (cascade tests: an unsure cheap model)."""
    if answer.tool_calls:
        return answer
    pieces = split_tokens(prefix) + answer.pieces
    return dataclasses.replace(
        answer, text=prefix + answer.text, pieces=pieces, output_tokens=len(pieces)
    )


def with_suffix(answer: Answer, suffix: str) -> Answer:
    """The same text answer with `suffix` after it (grounded-chat tests: citation markers)."""
    if answer.tool_calls:
        return answer
    pieces = answer.pieces + split_tokens(suffix)
    return dataclasses.replace(
        answer, text=answer.text + suffix, pieces=pieces, output_tokens=len(pieces)
    )


def split_fragments(text: str, parts: int = 4) -> list[str]:
    """Split JSON text into a few fragments, as providers stream tool arguments."""
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def tool_json(name: str, description: str | None, parameters: Any) -> str:
    """A tool definition as counted for prompt usage (same for both wire formats)."""
    tool: dict[str, Any] = {"name": name, "parameters": parameters}
    if description is not None:
        tool["description"] = description
    return orjson.dumps(tool, option=orjson.OPT_SORT_KEYS).decode()
