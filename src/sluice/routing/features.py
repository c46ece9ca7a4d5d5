"""What routing looks at in a request, extracted once (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

from sluice.tokens import estimate_request_tokens
from sluice.types import ChatRequest, ImagePart, TextPart, ToolResultPart

SOFT_BUDGET_FLAG = "_sluice_soft_budget_exceeded"


@dataclass(frozen=True, slots=True)
class RouteInput:
    text: str  # the last user message's text
    task: str | None
    input_tokens: int  # estimated
    max_output_tokens: int  # what the caller asked for (0: not given)
    tools: bool
    images: bool
    tier: str | None
    over_soft_budget: bool
    previous: str = ""  # the user turn before the last one (learned routing reads a little)
    depth: int = 0  # user turns before the last one

    @property
    def tokens_needed(self) -> int:
        return self.input_tokens + self.max_output_tokens


def route_input(
    req: ChatRequest, over_soft_budget: bool = False, tier: str | None = None
) -> RouteInput:
    """What routing rules see of a call; `tier` is the caller's (its identity's)."""
    meta = req.meta
    task = meta.headers.get("x-sluice-task") or meta.metadata.get("task")
    flagged = meta.metadata.get(SOFT_BUDGET_FLAG) is True
    users = user_texts(req)
    return RouteInput(
        text=users[-1] if users else "",
        task=task.strip().lower() if isinstance(task, str) and task.strip() else None,
        input_tokens=estimate_request_tokens(req),
        max_output_tokens=req.max_tokens or 0,
        tools=bool(req.tools),
        images=_has_images(req),
        tier=tier,
        over_soft_budget=over_soft_budget or flagged,
        previous=users[-2] if len(users) > 1 else "",
        depth=max(len(users) - 1, 0),
    )


def text_input(
    text: str,
    task: str | None = None,
    tier: str | None = None,
    earlier: list[str] | None = None,
    tools: bool = False,
) -> RouteInput:
    """A RouteInput for a bare prompt (benchmarks, `sluice route explain`); `earlier` are
    the user turns before it, oldest first."""
    from sluice.tokens import count_prompt

    earlier = earlier or []
    return RouteInput(
        text, task, count_prompt([*earlier, text], 1 + len(earlier)), 0, tools, False, tier,
        False, earlier[-1] if earlier else "", len(earlier),
    )  # fmt: skip


def last_user_text(req: ChatRequest) -> str:
    users = user_texts(req)
    return users[-1] if users else ""


def user_texts(req: ChatRequest) -> list[str]:
    """The text of every user turn, oldest first ("" for a turn of tool results only)."""
    return [
        " ".join(p.text for p in msg.parts if isinstance(p, TextPart))
        for msg in req.messages
        if msg.role == "user"
    ]


def _has_images(req: ChatRequest) -> bool:
    for msg in req.messages:
        for part in msg.parts:
            if isinstance(part, ImagePart):
                return True
            if isinstance(part, ToolResultPart) and any(
                isinstance(p, ImagePart) for p in part.content
            ):
                return True
    return False
