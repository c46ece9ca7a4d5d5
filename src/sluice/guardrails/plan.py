"""A guard set ready to run (`Plan`), one call's verdicts (`Verdicts`), and the steps the
input side, the JSON answer and the stream share: a check's hit, and the custom guards."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from sluice.guardrails.base import Guard, GuardBlockedError, GuardCall, Verdict
from sluice.guardrails.config import GuardSet
from sluice.guardrails.custom import WebhookGuard, load_custom
from sluice.pipeline.context import CallContext
from sluice.types import ChatRequest, ChatResponse

HEADER = "x-sluice-guard"
MAX_VERDICTS = 16

Count = Callable[[str, str], None]  # (guard, outcome) → the metrics counter
Ask = Callable[[ChatRequest], Awaitable[ChatResponse]]


@dataclasses.dataclass(slots=True)
class Plan:
    """A guard set, with its custom guards built."""

    cfg: GuardSet
    guards: list[tuple[Guard, str, tuple[str, ...]]]  # guard, mode, phases
    fail_closed: frozenset[str]  # names of webhooks that fail closed

    @property
    def holds_output(self) -> bool:
        out = self.cfg.output
        return (
            out.secrets != "off" or out.system_prompt_leak != "off" or self.cfg.pii.output != "off"
        )


def make_plan(cfg: GuardSet) -> Plan:
    guards: list[tuple[Guard, str, tuple[str, ...]]] = []
    for custom in cfg.custom:
        if custom.mode != "off":
            guards.append((load_custom(custom), custom.mode, tuple(custom.phases)))
    closed: set[str] = set()
    for hook in cfg.webhooks:
        if hook.mode != "off":
            guards.append((WebhookGuard(hook), hook.mode, tuple(hook.phases)))
            if hook.fail == "closed":
                closed.add(hook.name)
    return Plan(cfg, guards, frozenset(closed))


class Verdicts:
    """One call's verdicts: the header, and the counter."""

    __slots__ = ("_count", "_ctx", "items")

    def __init__(self, ctx: CallContext, count: Count | None) -> None:
        self._ctx = ctx
        self._count = count
        self.items: list[Verdict] = []

    def add(self, verdict: Verdict) -> None:
        if self._count is not None:
            self._count(verdict.guard, verdict.outcome)
        if len(self.items) < MAX_VERDICTS:
            self.items.append(verdict)
        self._ctx.response_headers[HEADER] = ", ".join(v.label for v in self.items)


def hit(guard: str, mode: str, rule: str, verdicts: Verdicts) -> None:
    """An output check found something: flag it, or block the answer."""
    if mode == "flag":
        verdicts.add(Verdict(guard, "flag", rule=rule))
        return
    verdicts.add(Verdict(guard, "block", rule=rule))
    what = "a secret" if guard == "output_secrets" else "the system prompt"
    raise GuardBlockedError(
        f"the answer was withheld: it contained {what}",
        code="output_blocked",
        guard=guard,
        rule=rule,
    )


async def run_guards(plan: Plan, call: GuardCall, phase: str, verdicts: Verdicts) -> None:
    """The custom guards and webhooks of `phase`, in order (raises on a block)."""
    for guard, mode, phases in plan.guards:
        if phase not in phases:
            continue
        call.phase = "output" if phase == "output" else "input"
        try:
            verdict = await guard.check(call)
        except Exception as err:  # a custom guard's bug: its own `error` verdict
            verdict = Verdict(guard.name, "error", rule=type(err).__name__)
        outcome = verdict.outcome
        if outcome == "error":
            closed = guard.name in plan.fail_closed
            verdicts.add(verdict)
            if closed and mode == "block":
                raise GuardBlockedError(
                    f"guard {guard.name} could not check this call and fails closed",
                    code="guard_unavailable",
                    guard=guard.name,
                    rule=verdict.rule,
                )
            continue
        if outcome in ("pass", "mask"):
            verdicts.add(verdict)
            continue
        if mode == "flag":
            verdicts.add(dataclasses.replace(verdict, outcome="flag"))
            continue
        verdicts.add(dataclasses.replace(verdict, outcome="block"))
        raise GuardBlockedError(
            verdict.message
            or f"blocked by guard {verdict.guard}"
            + (f" (rule: {verdict.rule})" if verdict.rule else ""),
            code="guard_blocked",
            guard=verdict.guard,
            rule=verdict.rule,
        )
