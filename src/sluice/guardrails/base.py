"""The guard seam: one Protocol every guard implements, and the verdicts they return.

Why one small Protocol: built-in guards (input limits, PII, prompt injection, output checks)
and a user's own guard (named by import path in the config) or a webhook to an external
moderation service all plug into the same guard stage the same way. The stage owns the
policy — which guards run for which route or model, and in which mode (`off | flag |
block`, PII also `mask`) — and a guard only says what it found.

A guard is asked twice at most: once about the request before it goes upstream
(`phase="input"`), once about the answer (`phase="output"`, the answer's text; for a stream
the text held in a bounded rolling window). A guard that has nothing to say about a phase
returns `PASS`.

Verdicts are bounded: `guard` and `rule` are short labels (at most `MAX_LABEL` characters,
cut otherwise) because they reach the call record, the `x-sluice-guard` response header and
Prometheus labels. A verdict never carries the text it matched: a guard that found a card
number must not put it in a record.

The prompt-injection detector lives in `sluice.guardrails.injection` (its own package); what
the stage needs from it is `InjectionDetectorLike` below, so the stage type-checks and its
tests run with a tiny fake while that package is absent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from sluice.errors import InvalidRequestError, RequestTooLargeError
from sluice.types import ChatRequest, ChatResponse

Phase = Literal["input", "output"]
# What a guard found. `mask`: the guard changed the text (PII placeholders) and the call
# goes on; `error`: the guard itself failed (a webhook timed out) — the stage applies the
# guard's fail-open / fail-closed choice.
Outcome = Literal["pass", "flag", "mask", "block", "error"]
Mode = Literal["off", "flag", "block"]
PiiMode = Literal["off", "flag", "mask", "block"]
Source = Literal["user", "tool", "document", "system"]

MAX_LABEL = 64


def bounded(label: str | None, limit: int = MAX_LABEL) -> str | None:
    """A label cut to `limit` characters, with only [A-Za-z0-9_.:+-] kept (safe in a header,
    a metric label and a record)."""
    if label is None:
        return None
    kept = "".join(ch if ch.isalnum() or ch in "_.:+-" else "_" for ch in label[:limit])
    return kept or None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one guard found about one phase of one call."""

    guard: str
    outcome: Outcome = "pass"
    rule: str | None = None  # which rule fired (bounded label), e.g. "ignore_previous"
    score: float | None = None  # a classifier's score, when one decided
    message: str | None = None  # for the caller's 400: never the matched text itself

    def __post_init__(self) -> None:
        object.__setattr__(self, "guard", bounded(self.guard) or "guard")
        object.__setattr__(self, "rule", bounded(self.rule))

    @property
    def label(self) -> str:
        """`name=outcome` or `name=outcome:rule`, as in the header and the record."""
        return f"{self.guard}={self.outcome}" + (f":{self.rule}" if self.rule else "")


def passed(guard: str) -> Verdict:
    return Verdict(guard)


@dataclass(slots=True)
class GuardCall:
    """What a guard is shown: the request as it will be sent, who makes it, and for the
    output phase the answer's text. `helper_call` makes a model call charged to this call
    (guards that ask a model are helper calls, costed to the call they guard)."""

    request: ChatRequest
    tenant: str
    model: str  # the public model or route the caller asked for
    phase: Phase = "input"
    answer: str | None = None
    system_text: str = ""  # the request's system prompt (leak checks compare against it)
    helper_call: Callable[[ChatRequest], Awaitable[ChatResponse]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Guard(Protocol):
    """A guard: a name (its label everywhere) and one async check per phase.

    Custom guards implement this and are named in the config by import path
    (`guardrails.custom: [{path: "mypkg.guards:NoFrench", mode: block, options: {...}}]`);
    the class is built with the `options` mapping as keyword arguments.
    """

    name: str

    async def check(self, call: GuardCall) -> Verdict: ...


# --- the prompt-injection detector's interface (implemented in guardrails.injection) -------


class InjectionResult(Protocol):
    """`sluice.guardrails.injection.InjectionVerdict`: flagged, score in [0, 1], the rule
    that fired (None when the classifier decided), and the layer ("rules" | "classifier" |
    "model")."""

    @property
    def flagged(self) -> bool: ...

    @property
    def score(self) -> float: ...

    @property
    def rule(self) -> str | None: ...

    @property
    def layer(self) -> str: ...


class InjectionDetectorLike(Protocol):
    """`sluice.guardrails.injection.InjectionDetector`, built with no arguments. `check` is
    synchronous and cheap (rules, then the embedding classifier); `source` tells user text
    from indirect text (a tool result, a retrieved document, the system prompt).

    The optional model check, used when `guardrails.injection.model_check` is on, is looked
    up with `getattr`: `async def acheck(text, *, source, ask, model) -> InjectionVerdict`,
    where `ask(ChatRequest) -> ChatResponse` is a helper call charged to the guarded call
    (None when the stage has no model to ask) and `model` the served model to ask
    (`guardrails.injection.model`); it calls `check` first and asks only near the
    threshold."""

    def check(self, text: str, *, source: str) -> InjectionResult: ...


# --- errors a blocking guard raises (rendered in the caller's format by the front ends) ---


class GuardBlockedError(InvalidRequestError):
    """A guard in `block` mode refused the request or the answer (400)."""

    def __init__(self, message: str, *, code: str, guard: str, rule: str | None) -> None:
        super().__init__(message, code=code)
        self.guard = guard
        self.rule = rule


class InputTooLargeError(RequestTooLargeError):
    """An input limit on size (input bytes or tokens, an image) was passed (413)."""

    def __init__(self, message: str, *, code: str, rule: str, guard: str = "input_limits") -> None:
        super().__init__(message, code=code)
        self.guard = guard
        self.rule = rule
