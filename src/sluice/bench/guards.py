"""What the default guard set costs a request: `sluice bench guards`.

The guard stage runs in-process around a stub upstream (no network, no model call): input
limits, PII masking of the request, prompt-injection detection (when
`sluice.guardrails.injection` is installed; its rules and classifier, no model check),
then the answer's output checks (secrets, system-prompt leak, PII), placeholder restore —
for a JSON answer and for the same answer streamed in ~4-character deltas. Prints p50/p99
wall time and mean CPU time per request. Goal: p50 ≤ 2 ms without a model call.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from typing import Any

from sluice.guardrails.base import InjectionDetectorLike
from sluice.guardrails.config import GuardrailsConfig
from sluice.guardrails.custom import GuardLoadError
from sluice.guardrails.stage import GuardStage, load_injection_detector
from sluice.pipeline.context import CallContext, Result
from sluice.types import (
    FLUSH,
    ChatRequest,
    ChatResponse,
    Finish,
    Message,
    StreamStart,
    TextDelta,
    TextPart,
)

DEFAULT_SET: dict[str, Any] = {
    "input_limits": {"mode": "block", "max_input_bytes": 1_000_000, "max_messages": 200},
    "pii": {"mode": "mask", "output": "mask"},
    "injection": {"mode": "block"},
    "output": {"secrets": "block", "system_prompt_leak": "flag"},
}

SYSTEM = (
    "You are the support assistant of Acme Bank. Answer politely and briefly, never reveal "
    "internal procedures, and ask for a ticket number when the customer reports a problem. "
)
TURNS = [
    "Hi, my card ending 1111 was charged twice yesterday. My e-mail is jane.doe@example.com "
    "and my phone +44 20 7946 0958. Could you check the payments on my account please?",
    "I can help with that. Could you give me the ticket number you got from the app, and "
    "the dates and amounts of both payments as they appear on your statement?",
    "Ticket 48213. Both were 42.50 GBP on 3 December, at the coffee shop near the station. "
    "The IBAN of my account is GB82 WEST 1234 5698 7654 32. Thanks for looking into it!",
]
ANSWER = (
    "Thank you. I found both payments of 42.50 GBP on 3 December on the account ending "
    "<IBAN_1>; the second one is a duplicate and has been reversed. You will receive a "
    "confirmation at <EMAIL_1> within the hour, and the money is back in 2-3 working days. "
    "Is there anything else I can help you with today? "
) * 2


_turn = 0


def request() -> ChatRequest:
    """The conversation with a new last turn each time (as in a chat: the history repeats,
    the last message is new, so the injection detector sees one new text per request)."""
    global _turn
    _turn += 1
    roles = ("user", "assistant", "user")
    texts = [*TURNS[:-1], f"{TURNS[-1]} (message {_turn})"]
    return ChatRequest(
        "bench-model",
        [Message(role, [TextPart(t)]) for role, t in zip(roles, texts, strict=True)],  # type: ignore[arg-type]
        system=[TextPart(SYSTEM)],
    )


async def _json(ctx: CallContext) -> Result:
    return ChatResponse(id="r", model="m", parts=[TextPart(ANSWER)])


async def _events() -> Any:
    yield StreamStart("r", "m")
    for i in range(0, len(ANSWER), 4):
        yield TextDelta(ANSWER[i : i + 4])
        yield FLUSH
    yield Finish("stop")


async def _stream(ctx: CallContext) -> Result:
    events: Any = _events()
    return events  # type: ignore[no-any-return]


async def _one(stage: GuardStage, stream: bool) -> None:
    ctx = CallContext(request())
    result = await stage(ctx, _stream if stream else _json)
    if not isinstance(result, ChatResponse):
        async for _event in result:
            pass
        await result.aclose()


async def _measure(stage: GuardStage, stream: bool, repeat: int) -> tuple[float, float, float]:
    for _ in range(50):
        await _one(stage, stream)
    samples: list[float] = []
    cpu = time.thread_time()
    for _ in range(repeat):
        started = time.perf_counter()
        await _one(stage, stream)
        samples.append((time.perf_counter() - started) * 1e6)
    cpu_mean = (time.thread_time() - cpu) * 1e6 / repeat
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1], cpu_mean


def run(repeat: int = 2000) -> None:
    detector: InjectionDetectorLike | None
    config = dict(DEFAULT_SET)
    try:
        detector = load_injection_detector()
        note = "with sluice.guardrails.injection (rules + classifier, no model check)"
    except GuardLoadError:
        detector = None
        config.pop("injection")
        note = "WITHOUT injection detection (sluice.guardrails.injection not installed)"
    cfg = GuardrailsConfig.model_validate(config)
    stage = GuardStage(cfg, injection=detector)
    chars = sum(len(t) for t in TURNS) + len(SYSTEM)
    _say(f"default guard set, {note}")
    _say(f"request: system + 3 turns, {chars} chars; answer {len(ANSWER)} chars")
    for stream in (False, True):
        p50, p99, cpu = asyncio.run(_measure(stage, stream, repeat))
        kind = f"stream ({len(ANSWER) // 4} deltas)" if stream else "JSON"
        _say(
            f"{kind:20} p50 {p50 / 1000:6.3f} ms  p99 {p99 / 1000:6.3f} ms  "
            f"CPU mean {cpu / 1000:6.3f} ms"
        )


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")


if __name__ == "__main__":
    run()
