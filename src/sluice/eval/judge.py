"""LLM-as-judge: a rubric, the item and the answer -> a validated verdict (score 1-5, reason).

The judge is a model called *through the gateway* like any other call, with an OpenAI
`response_format` of type `json_schema` (`VERDICT_SCHEMA`, strict): Sluice's structured-output
path validates (and repairs) the JSON, and the answer is validated again here, so a verdict
is always an integer 1-5 and a bounded reason, or a `JudgeError`. Each judge call carries
`x-sluice-feature: sluice-eval-judge` and `x-sluice-parent-request-id: <the judged call>`,
so it is costed and recorded as a helper call of the item it judges.

A judge's score is mapped to [0, 1] as (verdict - 1) / 4, and passes at `pass_at` (4 by
default). With the simulator as judge, verdicts are deterministic (seeded by the prompt) but
say nothing about quality: real quality numbers need a real judge model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from jsonschema import Draft202012Validator

if TYPE_CHECKING:
    import openai

MAX_REASON_CHARS = 500
VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "reason": {"type": "string", "maxLength": MAX_REASON_CHARS},
    },
    "required": ["score", "reason"],
    "additionalProperties": False,
}
RESPONSE_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {"name": "verdict", "strict": True, "schema": VERDICT_SCHEMA},
}
_VALIDATOR = Draft202012Validator(VERDICT_SCHEMA)
SYSTEM = (
    "You are a strict evaluator. Grade the ANSWER to the QUESTION against the RUBRIC on a "
    "scale of 1 (fails the rubric) to 5 (fully meets it). Reply with JSON only: "
    '{"score": <integer 1-5>, "reason": "<one short sentence>"}.'
)


class JudgeError(Exception):
    """The judge's reply was not a valid verdict (or the judge call failed)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    score: int  # 1-5
    reason: str
    request_id: str | None = None  # the judge call's own request id

    @property
    def normalized(self) -> float:
        return (self.score - 1) / 4

    def to_json(self) -> dict[str, Any]:
        return {"score": self.score, "reason": self.reason, "request_id": self.request_id}


def judge_messages(
    rubric: str, question: str, answer: str, expected: str | None
) -> list[dict[str, str]]:
    """The judge's prompt: the rubric, the question, the reference answer (if any), the answer."""
    parts = [f"RUBRIC:\n{rubric}", f"QUESTION:\n{question}"]
    if expected is not None:
        parts.append(f"REFERENCE ANSWER:\n{expected}")
    parts.append(f"ANSWER:\n{answer}")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


def parse_verdict(text: str, request_id: str | None = None) -> Verdict:
    """The verdict in a judge's reply, validated against `VERDICT_SCHEMA`."""
    try:
        doc = orjson.loads(text.strip())
    except orjson.JSONDecodeError:
        raise JudgeError(f"judge reply is not JSON: {text[:80]!r}") from None
    error = next(iter(_VALIDATOR.iter_errors(doc)), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "verdict"
        raise JudgeError(f"judge verdict is invalid at {where}: {error.message[:200]}")
    return Verdict(int(doc["score"]), str(doc["reason"]), request_id)


async def judge(
    client: openai.AsyncOpenAI,
    model: str,
    messages: list[dict[str, str]],
    headers: dict[str, str],
) -> Verdict:
    """One judge call through the gateway; raises `JudgeError`."""
    import openai

    try:
        raw = await client.chat.completions.with_raw_response.create(  # type: ignore[call-overload]
            model=model,
            messages=messages,
            response_format=RESPONSE_FORMAT,
            temperature=0,
            extra_headers=headers,
        )
        completion = raw.parse()
    except openai.APIError as exc:
        raise JudgeError(f"judge call failed: {type(exc).__name__}: {exc}"[:300]) from None
    text = completion.choices[0].message.content if completion.choices else None
    return parse_verdict(text or "", raw.headers.get("x-sluice-request-id"))
