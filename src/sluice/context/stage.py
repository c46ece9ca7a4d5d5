"""The token-policy stage: output caps, context budgets and server-side sessions.

For each call it looks up the policy of the route or public model asked for, then:
1. fills in `max_tokens` when the caller gave none and caps it at the ceiling;
2. with a session (`policy.sessions.enabled` and `x-sluice-session`): prepends the stored
   history (running summary right after the system prompt, then the latest turns) to the
   caller's new turn, folding older turns into the summary first when the history is over
   its token budget; after a complete answer, stores the turn pair;
3. without one: checks the input against the budget and applies `context.strategy`
   (truncate_oldest, summarize, reject);
4. learns how its estimates compare with the usage the provider reports (`Calibration`).
A model whose policy is the default passes straight through.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence

from sluice.collect import WatchedStream
from sluice.context.config import TokenPolicy
from sluice.context.sessions import Session, SessionStore, session_id
from sluice.context.summarize import summarize, with_summary
from sluice.context.tokens import Calibration, TokenCount, count_request, prepare
from sluice.context.trim import split_for_summary, truncate_oldest, turns
from sluice.errors import InvalidRequestError, NotFoundError, SluiceError
from sluice.pipeline.context import CallContext, Handler, Result
from sluice.providers.base import Deployment
from sluice.types import ChatRequest, ChatResponse, Message, Part, TextPart, ThinkingPart

log = logging.getLogger("sluice.tokens")

_DEFAULT = TokenPolicy()
Deployments = Callable[[str], Sequence[Deployment]]


@dataclasses.dataclass(slots=True, frozen=True)
class _Target:
    upstream_model: str  # what the first deployment calls the model (counting, calibration)
    context_window: int | None  # the smallest window among the model's deployments
    max_output: int | None


class TokenPolicyStage:
    def __init__(
        self,
        policies: Mapping[str, TokenPolicy],
        deployments: Deployments,
        sessions: SessionStore | None = None,
        calibration: Calibration | None = None,
    ) -> None:
        self.policies = dict(policies)  # route and public model names → policy
        self._deployments = deployments
        self.sessions = sessions
        self.calibration = calibration or Calibration()
        # id(policy) → (policy, not the default): comparing with == costs ~5 µs a call.
        self._active: dict[int, tuple[TokenPolicy, bool]] = {}

    def policy_for(self, ctx: CallContext) -> TokenPolicy:
        if ctx.route is not None and ctx.route in self.policies:
            return self.policies[ctx.route]
        return self.policies.get(ctx.request.model, _DEFAULT)

    def _is_active(self, policy: TokenPolicy) -> bool:
        known = self._active.get(id(policy))
        if known is None or known[0] is not policy:
            known = self._active[id(policy)] = (policy, policy != _DEFAULT)
        return known[1]

    async def __call__(self, ctx: CallContext, nxt: Handler) -> Result:
        policy = self.policy_for(ctx)
        if not self._is_active(policy):
            return await nxt(ctx)
        ctx.rewrite(apply_max_tokens(ctx, policy), "token policy: max_tokens")
        target = self._target(ctx.request.model)
        await prepare(target.upstream_model)
        sid = session_id(ctx.request) if policy.sessions.enabled else None
        session: Session | None = None
        new_turn = ctx.request.messages
        if sid is not None:
            if self.sessions is None:
                raise InvalidRequestError("sessions are not available on this gateway")
            session = await self.sessions.load(ctx.identity.tenant, sid)
            if await self._fold(ctx, nxt, policy, session, target):
                await self._save(
                    ctx, ctx.request, sid, session, policy
                )  # kept even if the call fails
            ctx.rewrite(
                dataclasses.replace(
                    ctx.request,
                    system=with_summary(ctx.request.system, session.summary),
                    messages=[*session.messages, *new_turn],
                ),
                "token policy: session history",
            )
            ctx.response_headers["x-sluice-session-turns"] = str(
                session.summarized_turns + len(turns(session.messages))
            )
        if policy.context.strategy != "none":  # sessions too: history may outgrow the window
            await self._fit(ctx, nxt, policy, target)
        sent = ctx.request
        estimate = count_request(sent, target.upstream_model)
        ctx.response_headers["x-sluice-input-tokens-estimate"] = str(
            self.calibration.correct(target.upstream_model, estimate)
        )
        result = await nxt(ctx)

        async def settled(resp: ChatResponse, completed: bool) -> None:
            if not completed:
                return  # a broken stream: its usage and its answer are partial
            self._calibrate(ctx, target, estimate, resp)
            if session is not None and sid is not None and not ctx.degraded:
                session.messages = [*session.messages, *new_turn, _answer_message(resp)]
                await self._save(ctx, sent, sid, session, policy)

        if isinstance(result, ChatResponse):
            await settled(result, True)
            return result
        return WatchedStream(result, settled)

    # --- targets and calibration ---------------------------------------------------------

    def _target(self, model: str) -> _Target:
        try:
            deps = self._deployments(model)
        except NotFoundError:
            deps = []
        if not deps:
            return _Target(model, None, None)
        windows = [d.context_window for d in deps if d.context_window]
        outputs = [d.max_output_tokens for d in deps if d.max_output_tokens]
        return _Target(
            deps[0].model, min(windows) if windows else None, min(outputs) if outputs else None
        )

    def _calibrate(
        self, ctx: CallContext, target: _Target, estimate: TokenCount, resp: ChatResponse
    ) -> None:
        served = ctx.deployment
        if served is None or served.model != target.upstream_model or ctx.degraded:
            return  # another model answered: its usage says nothing about this estimate
        if ctx.response_headers.get("x-sluice-repairs", "0") != "0":
            return  # repair turns were added after the estimate
        self.calibration.observe(target.upstream_model, estimate.tokens, resp.usage.input_tokens)

    def _tokens(self, req: ChatRequest, target: _Target) -> int:
        return self.calibration.correct(
            target.upstream_model, count_request(req, target.upstream_model)
        )

    # --- sessions ------------------------------------------------------------------------

    async def _fold(
        self,
        ctx: CallContext,
        nxt: Handler,
        policy: TokenPolicy,
        session: Session,
        target: _Target,
    ) -> bool:
        """Summarize older turns when the stored turns are over their token budget (the
        summary itself is bounded by `summary_max_tokens`, so it is not counted)."""
        cfg = policy.sessions
        history = ChatRequest(ctx.request.model, session.messages)
        if self._tokens(history, target) <= cfg.summarize_over_tokens:
            return False
        older, recent = split_for_summary(session.messages, cfg.keep_turns)
        if not older:
            return False  # only the turns kept verbatim: nothing to fold
        model = cfg.summary_model or ctx.request.model
        try:
            session.summary = await summarize(
                ctx, nxt, model, session.summary, older, cfg.summary_max_tokens
            )
        except SluiceError as err:  # the conversation goes on, just longer this time
            log.warning("session summary with %s failed: %s", model, err.message)
            return False
        session.summarized_turns += len(turns(older))
        session.messages = recent
        return True

    async def _save(
        self, ctx: CallContext, req: ChatRequest, sid: str, session: Session, policy: TokenPolicy
    ) -> None:
        assert self.sessions is not None
        try:
            await self.sessions.save(ctx.identity.tenant, sid, session, policy.sessions.ttl_s)
        except Exception:  # the answer is already given; losing the turn is logged, not raised
            log.exception("request %s: could not store the session turn", req.meta.request_id)

    # --- stateless context budget --------------------------------------------------------

    async def _fit(
        self, ctx: CallContext, nxt: Handler, policy: TokenPolicy, target: _Target
    ) -> None:
        req = ctx.request
        cfg = policy.context
        budget = input_budget(policy, req, target.context_window, target.max_output)
        if budget is None:
            return
        total = self._tokens(req, target)
        if total <= budget:
            return
        if cfg.strategy == "reject":
            raise _too_long(req.model, total, budget)
        room = budget - (cfg.summary_max_tokens if cfg.strategy == "summarize" else 0)
        base = self._tokens(dataclasses.replace(req, messages=[]), target)
        empty = self._tokens(_alone(req), target)  # framing counted once, in `base`
        costs = {id(m): self._tokens(_alone(req, m), target) - empty for m in req.messages}
        cut = truncate_oldest(
            req.messages, lambda kept: base + sum(costs[id(m)] for m in kept) <= room
        )
        if cut is None:
            raise _too_long(req.model, total, budget, latest_alone=True)
        kept, dropped = cut
        system = req.system
        how = "truncated"
        if cfg.strategy == "summarize":
            model = cfg.summary_model or req.model
            try:
                summary = await summarize(ctx, nxt, model, None, dropped, cfg.summary_max_tokens)
                system = with_summary(req.system, summary)
                how = "summarized"
            except SluiceError as err:
                log.warning("context summary with %s failed, truncating: %s", model, err.message)
        ctx.rewrite(dataclasses.replace(req, system=system, messages=kept), f"token policy: {how}")
        ctx.response_headers["x-sluice-context"] = f"{how}; dropped={len(dropped)}"


def apply_max_tokens(ctx: CallContext, policy: TokenPolicy) -> ChatRequest:
    """The request with the policy's default output cap and ceiling applied."""
    req = ctx.request
    wanted = req.max_tokens
    ceiling = policy.max_tokens_ceiling
    if wanted is None:
        wanted = policy.default_max_tokens or ceiling
    if ceiling is not None and wanted is not None and wanted > ceiling:
        ctx.response_headers["x-sluice-max-tokens-capped"] = f"{wanted}->{ceiling}"
        wanted = ceiling
    return req if wanted == req.max_tokens else dataclasses.replace(req, max_tokens=wanted)


def input_budget(
    policy: TokenPolicy, req: ChatRequest, window: int | None, max_output: int | None
) -> int | None:
    """policy max_input_tokens, else the context window minus the output reserved."""
    if policy.context.max_input_tokens is not None:
        return policy.context.max_input_tokens
    if window is None:
        return None
    return max(1, window - (req.max_tokens or max_output or 0))


def _alone(req: ChatRequest, *messages: Message) -> ChatRequest:
    return dataclasses.replace(req, system=[], tools=[], messages=list(messages))


def _too_long(model: str, total: int, budget: int, *, latest_alone: bool = False) -> SluiceError:
    detail = " even with only its latest turn" if latest_alone else ""
    return InvalidRequestError(
        f"this request needs about {total} input tokens{detail}; the input budget for model "
        f"'{model}' is {budget} tokens. Shorten the conversation or start a new one.",
        param="messages",
        code="context_length_exceeded",
    )


def _answer_message(resp: ChatResponse) -> Message:
    """The answer as an assistant turn (reasoning text is not replayed)."""
    parts: list[Part] = [p for p in resp.parts if not isinstance(p, ThinkingPart)]
    return Message("assistant", parts or [TextPart("")])
