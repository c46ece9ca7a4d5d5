"""Summaries of older turns, made by a (cheap) model through the rest of the pipeline.

The summary call is a real upstream call: it runs through the same handler as the caller's
request (so it is retried, load-balanced and priced like any call), and its usage and cost
are added to the caller's call context, which is what its record and budgets see.
"""

from __future__ import annotations

from sluice.pipeline.context import CallContext, Handler, add_child_cost
from sluice.types import (
    CallMeta,
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)

SUMMARY_HEADING = "Summary of the earlier conversation (kept by the gateway):"
INSTRUCTIONS = (
    "You keep the running summary of a conversation between a user and an assistant. "
    "Merge the new turns into the current summary. Keep every decision made, fact stated, "
    "preference or constraint the user gave, and open question or unfinished task. "
    "Drop greetings and wording. Write compact notes. Answer with the summary only."
)


def transcript(messages: list[Message]) -> str:
    """The turns as plain labelled lines for the summarizer."""
    lines: list[str] = []
    for msg in messages:
        who = {"user": "User", "assistant": "Assistant", "tool": "Tool"}[msg.role]
        for part in msg.parts:
            if isinstance(part, TextPart):
                lines.append(f"{who}: {part.text}")
            elif isinstance(part, ToolCallPart):
                lines.append(f"{who} called {part.name}({part.arguments})")
            elif isinstance(part, ToolResultPart):
                text = " ".join(p.text for p in part.content if isinstance(p, TextPart))
                lines.append(f"Tool result: {text}")
            elif isinstance(part, ImagePart):
                lines.append(f"{who}: [image]")
    return "\n".join(lines)


def summary_request(
    caller: ChatRequest, model: str, previous: str | None, older: list[Message], max_tokens: int
) -> ChatRequest:
    meta = caller.meta
    prompt = (
        f"Current summary:\n{previous or '(none yet)'}\n\nNew turns to merge:\n{transcript(older)}"
    )
    return ChatRequest(
        model=model,
        system=[TextPart(INSTRUCTIONS)],
        messages=[Message("user", [TextPart(prompt)])],
        max_tokens=max_tokens,
        temperature=0,
        meta=CallMeta(
            request_id=f"{meta.request_id}:summary",
            wire=meta.wire,
            headers=dict(meta.headers),
            forward_headers=dict(meta.forward_headers),
            feature=meta.feature,
            session=meta.session,
        ),
    )


async def summarize(
    ctx: CallContext,
    nxt: Handler,
    model: str,
    previous: str | None,
    older: list[Message],
    max_tokens: int,
) -> str:
    """One call to `model`; returns the new running summary. Raises what the call raises."""
    child = CallContext(
        summary_request(ctx.request, model, previous, older, max_tokens),
        identity=ctx.identity,  # the summary is made for, and charged to, the same caller
        on_settled=ctx.on_settled,  # budgets count the summary's cost too
    )
    result = await nxt(child)
    assert isinstance(result, ChatResponse)  # the summary request is not streamed
    add_child_cost(ctx, child)
    ctx.response_headers["x-sluice-summary-calls"] = str(
        int(ctx.response_headers.get("x-sluice-summary-calls", "0")) + 1
    )
    text = "".join(p.text for p in result.parts if isinstance(p, TextPart)).strip()
    return text or (previous or "")


def with_summary(system: list[TextPart], summary: str | None) -> list[TextPart]:
    """The summary right after the caller's system prompt, so that prefix stays cacheable."""
    if not summary:
        return list(system)
    return [*system, TextPart(f"{SUMMARY_HEADING}\n{summary}")]
