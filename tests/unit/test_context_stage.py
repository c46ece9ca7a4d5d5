"""The token-policy stage with a fake upstream: caps, budgets, summaries and sessions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from sluice.cache.backends import MemoryBackend
from sluice.config import TimeoutConfig
from sluice.context.config import ContextPolicy, SessionPolicy, TokenPolicy
from sluice.context.sessions import SessionStore
from sluice.context.stage import TokenPolicyStage
from sluice.context.summarize import INSTRUCTIONS, SUMMARY_HEADING
from sluice.context.tokens import count_request
from sluice.context.trim import truncate_oldest, units
from sluice.errors import InvalidRequestError, ModelNotFoundError, UpstreamConnectError
from sluice.identity import Identity
from sluice.pipeline.context import CallContext, Result
from sluice.providers.base import Deployment
from sluice.types import (
    CallMeta,
    ChatRequest,
    ChatResponse,
    Message,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
)

DEPLOYMENTS = {
    name: Deployment(f"d-{name}", "p", name, (name,), TimeoutConfig(), None, window, 1000)
    for name, window in [("gpt-4o", 128_000), ("gpt-4o-mini", 128_000)]
}


def deployments(model: str) -> Sequence[Deployment]:
    if model not in DEPLOYMENTS:
        raise ModelNotFoundError(model)
    return [DEPLOYMENTS[model]]


class Upstream:
    """The rest of the pipeline: records what it was sent, answers with fixed text."""

    def __init__(
        self, answer: str = "fine", summary: str = "S: the user likes tea", input_tokens: int = 100
    ) -> None:
        self.sent: list[ChatRequest] = []
        self.input_tokens = input_tokens
        self.answer = answer
        self.summary = summary

    @property
    def summaries(self) -> list[ChatRequest]:
        return [r for r in self.sent if r.system and r.system[0].text == INSTRUCTIONS]

    @property
    def calls(self) -> list[ChatRequest]:
        return [r for r in self.sent if r not in self.summaries]

    async def __call__(self, ctx: CallContext) -> Result:
        req = ctx.request
        self.sent.append(req)
        ctx.deployment = DEPLOYMENTS[req.model]
        text = self.summary if req.system and req.system[0].text == INSTRUCTIONS else self.answer
        usage = Usage(input_tokens=self.input_tokens, output_tokens=10)
        ctx.usage.input_tokens += usage.input_tokens  # what the settle stage would do
        return ChatResponse("r", req.model, [TextPart(text)], usage=usage)


def stage(
    policies: Mapping[str, TokenPolicy], backend: MemoryBackend | None = None
) -> TokenPolicyStage:
    return TokenPolicyStage(
        policies, deployments, SessionStore(backend if backend is not None else MemoryBackend())
    )


def user(text: str) -> Message:
    return Message("user", [TextPart(text)])


def bot(text: str) -> Message:
    return Message("assistant", [TextPart(text)])


def request(messages: list[Message], model: str = "gpt-4o", **meta: object) -> ChatRequest:
    return ChatRequest(model, messages, system=[TextPart("You are terse.")], meta=CallMeta(**meta))  # type: ignore[arg-type]


# --- max_tokens -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "default", "ceiling", "sent", "capped"),
    [
        (None, 300, 1000, 300, False),  # the default fills in
        (None, None, 800, 800, False),  # no default: the ceiling is the cap
        (500, 300, 1000, 500, False),  # the caller's value under the ceiling stays
        (5000, 300, 1000, 1000, True),  # over the ceiling: capped, and said so
    ],
)
async def test_default_and_ceiling_max_tokens(
    given: int | None, default: int | None, ceiling: int, sent: int, capped: bool
) -> None:
    policy = TokenPolicy(default_max_tokens=default, max_tokens_ceiling=ceiling)
    up = Upstream()
    ctx = CallContext(ChatRequest("gpt-4o", [user("hi")], max_tokens=given))
    await stage({"gpt-4o": policy})(ctx, up)
    assert up.sent[0].max_tokens == sent
    assert ("x-sluice-max-tokens-capped" in ctx.response_headers) is capped


async def test_default_policy_passes_through_untouched() -> None:
    up = Upstream()
    req = ChatRequest("gpt-4o", [user("hi")])
    ctx = CallContext(req)
    await stage({"gpt-4o": TokenPolicy()})(ctx, up)
    assert up.sent == [req] and ctx.response_headers == {}


async def test_a_route_policy_wins_over_the_model_policy() -> None:
    up = Upstream()
    ctx = CallContext(ChatRequest("gpt-4o", [user("hi")]), route="cheap-chat")
    policies = {
        "gpt-4o": TokenPolicy(default_max_tokens=100),
        "cheap-chat": TokenPolicy(default_max_tokens=42),
    }
    await stage(policies)(ctx, up)
    assert up.sent[0].max_tokens == 42


# --- stateless budgets ------------------------------------------------------------------

TOOL_CONVERSATION = [
    user("first question " * 30),
    Message("assistant", [ToolCallPart("c1", "search", '{"q": "' + "a " * 40 + '"}')]),
    Message("tool", [ToolResultPart("c1", [TextPart("result one " * 40)])]),
    bot("an answer " * 20),
    user("second question " * 5),
    Message("assistant", [ToolCallPart("c2", "search", '{"q": "b"}')]),
    Message("tool", [ToolResultPart("c2", [TextPart("result two " * 30)])]),
    bot("final"),
    user("latest question"),
]


def _pairs_intact(messages: list[Message]) -> bool:
    calls = {p.id for m in messages for p in m.parts if isinstance(p, ToolCallPart)}
    results = {p.tool_call_id for m in messages for p in m.parts if isinstance(p, ToolResultPart)}
    return calls == results


def test_units_keep_tool_calls_with_their_results() -> None:
    groups = units(TOOL_CONVERSATION)
    assert [len(g) for g in groups] == [1, 2, 1, 1, 2, 1, 1]
    for size in range(1, len(TOOL_CONVERSATION) + 1):

        def fits(kept: list[Message], n: int = size) -> bool:
            return len(kept) <= n

        cut = truncate_oldest(TOOL_CONVERSATION, fits)
        assert cut is not None
        kept, dropped = cut
        assert _pairs_intact(kept) and _pairs_intact(dropped)
        assert kept[0].role == "user"  # never starts mid-exchange
        assert kept[-1] is TOOL_CONVERSATION[-1]


@pytest.mark.parametrize("budget", [150, 200, 260, 320])
async def test_truncate_oldest_fits_the_budget_and_keeps_pairs(budget: int) -> None:
    policy = TokenPolicy(context=ContextPolicy(strategy="truncate_oldest", max_input_tokens=budget))
    up = Upstream()
    ctx = CallContext(request(TOOL_CONVERSATION))
    st = stage({"gpt-4o": policy})
    await st(ctx, up)
    sent = up.sent[0]
    assert sent.system == [TextPart("You are terse.")]
    assert sent.messages[-1] == TOOL_CONVERSATION[-1]
    assert _pairs_intact(sent.messages)
    assert int(ctx.response_headers["x-sluice-input-tokens-estimate"]) <= budget
    assert ctx.response_headers["x-sluice-context"].startswith("truncated; dropped=")
    assert len(sent.messages) < len(TOOL_CONVERSATION)


async def test_reject_is_a_400_that_names_the_budget() -> None:
    policy = TokenPolicy(context=ContextPolicy(strategy="reject", max_input_tokens=50))
    up = Upstream()
    with pytest.raises(InvalidRequestError) as err:
        await stage({"gpt-4o": policy})(CallContext(request(TOOL_CONVERSATION)), up)
    assert err.value.http_status == 400
    assert err.value.code == "context_length_exceeded"
    assert "budget" in err.value.message and "50" in err.value.message
    assert up.sent == []


async def test_a_latest_turn_too_big_alone_is_a_400() -> None:
    policy = TokenPolicy(context=ContextPolicy(strategy="truncate_oldest", max_input_tokens=20))
    with pytest.raises(InvalidRequestError, match="latest turn"):
        await stage({"gpt-4o": policy})(CallContext(request([user("word " * 200)])), Upstream())


async def test_within_budget_nothing_changes() -> None:
    policy = TokenPolicy(context=ContextPolicy(strategy="reject", max_input_tokens=10_000))
    up = Upstream()
    req = request(TOOL_CONVERSATION)
    await stage({"gpt-4o": policy})(CallContext(req), up)
    assert up.sent[0].messages == TOOL_CONVERSATION


async def test_summarize_calls_the_cheap_model_once_and_places_the_summary() -> None:
    policy = TokenPolicy(
        context=ContextPolicy(
            strategy="summarize",
            max_input_tokens=300,
            summary_model="gpt-4o-mini",
            summary_max_tokens=64,
        )
    )
    up = Upstream(summary="Decided: use search. Open: the latest question.")
    ctx = CallContext(request(TOOL_CONVERSATION))
    await stage({"gpt-4o": policy})(ctx, up)
    assert len(up.summaries) == 1
    summary_call = up.summaries[0]
    assert summary_call.model == "gpt-4o-mini" and summary_call.max_tokens == 64
    assert "first question" in summary_call.messages[0].parts[0].text  # type: ignore[union-attr]
    sent = up.calls[0]
    assert sent.system[0] == TextPart("You are terse.")  # the stable prefix first
    assert sent.system[1].text.startswith(SUMMARY_HEADING)
    assert "Decided: use search." in sent.system[1].text
    assert _pairs_intact(sent.messages)
    assert ctx.response_headers["x-sluice-summary-calls"] == "1"
    assert ctx.usage.input_tokens == 200  # the summary call is counted on the call
    assert int(ctx.response_headers["x-sluice-input-tokens-estimate"]) <= 300


# --- sessions ---------------------------------------------------------------------------

SESSIONS = TokenPolicy(
    sessions=SessionPolicy(
        enabled=True, keep_turns=2, summarize_over_tokens=60, summary_model="gpt-4o-mini"
    )
)


async def test_a_session_prepends_history_and_stores_the_turn_pair() -> None:
    st, up = stage({"gpt-4o": SESSIONS}), Upstream(answer="noted")
    for i in range(2):
        ctx = CallContext(
            request([user(f"turn {i}")], session="s1"), identity=Identity(tenant="t1")
        )
        await st(ctx, up)
    assert up.calls[1].messages == [user("turn 0"), bot("noted"), user("turn 1")]
    assert up.summaries == []


async def test_a_long_session_is_summarized_and_keeps_the_last_turns() -> None:
    st, up = stage({"gpt-4o": SESSIONS}), Upstream(answer="noted " * 6)
    for i in range(6):
        await st(CallContext(request([user(f"turn {i} " * 4)], session="s1")), up)
    last = up.calls[-1]
    assert last.system[1].text.startswith(SUMMARY_HEADING)
    users = [m for m in last.messages if m.role == "user"]
    assert len(users) == 3  # keep_turns=2 stored turns + the new one
    assert users[-1] == user("turn 5 " * 4)
    assert 1 <= len(up.summaries) < 6
    assert all(s.model == "gpt-4o-mini" for s in up.summaries)


A, B = Identity(key_id="ka", tenant="a"), Identity(key_id="kb", tenant="b")


async def test_sessions_are_per_tenant() -> None:
    st, up = stage({"gpt-4o": SESSIONS}), Upstream()
    await st(CallContext(request([user("secret of a")], session="same"), identity=A), up)
    await st(CallContext(request([user("hello")], session="same"), identity=B), up)
    assert up.calls[1].messages == [user("hello")]


async def test_session_id_from_metadata_and_header() -> None:
    st, up = stage({"gpt-4o": SESSIONS}), Upstream()
    await st(CallContext(request([user("one")], metadata={"session_id": "m"})), up)
    await st(CallContext(request([user("two")], headers={"x-sluice-session": "m"})), up)
    assert len(up.calls[1].messages) == 3


async def test_an_overlong_session_id_is_a_400() -> None:
    with pytest.raises(InvalidRequestError, match="session id"):
        await stage({"gpt-4o": SESSIONS})(
            CallContext(request([user("x")], session="s" * 300)), Upstream()
        )


async def test_calibration_learns_from_reported_usage() -> None:
    policy = TokenPolicy(default_max_tokens=10)
    req = request([user("hello world")])
    counted = count_request(req, "gpt-4o").tokens
    st, up = stage({"gpt-4o": policy}), Upstream(input_tokens=counted * 3 // 2)
    ctx = CallContext(req)
    await st(ctx, up)
    assert ctx.response_headers["x-sluice-input-tokens-estimate"] == str(counted)
    for _ in range(3):
        await st(CallContext(request([user("hello world")])), up)
    assert st.calibration.samples("gpt-4o") == 4
    assert st.calibration.ratio("gpt-4o") == pytest.approx(counted * 3 // 2 / counted)
    ctx = CallContext(request([user("hello world")]))
    await st(ctx, up)  # later estimates are corrected by what the provider reported
    assert ctx.response_headers["x-sluice-input-tokens-estimate"] == str(counted * 3 // 2)


class FailingSummaries(Upstream):
    async def __call__(self, ctx: CallContext) -> Result:
        if ctx.request.system and ctx.request.system[0].text == INSTRUCTIONS:
            self.sent.append(ctx.request)
            raise UpstreamConnectError("summary model down")
        return await super().__call__(ctx)


async def test_a_failed_summary_sends_the_full_history() -> None:
    st, up = stage({"gpt-4o": SESSIONS}), FailingSummaries(answer="noted " * 6)
    for i in range(5):
        await st(CallContext(request([user(f"turn {i} " * 4)], session="s")), up)
    assert up.summaries  # it was tried ...
    assert len([m for m in up.calls[-1].messages if m.role == "user"]) == 5  # ... nothing lost


class FailingCalls(Upstream):
    down = False  # when set, every call but a summary fails

    async def __call__(self, ctx: CallContext) -> Result:
        result = await super().__call__(ctx)
        is_summary = ctx.request.system and ctx.request.system[0].text == INSTRUCTIONS
        if self.down and not is_summary:
            raise UpstreamConnectError("main model down")
        return result


async def test_a_summary_is_kept_when_the_call_after_it_fails() -> None:
    backend = MemoryBackend()
    st, up = stage({"gpt-4o": SESSIONS}, backend), FailingCalls(answer="noted " * 6)
    for i in range(3):
        await st(CallContext(request([user(f"turn {i} " * 4)], session="s")), up)
    assert up.summaries == []
    up.down = True
    with pytest.raises(UpstreamConnectError):
        await st(CallContext(request([user("turn 5")], session="s")), up)
    stored = await SessionStore(backend).load("default", "s")
    assert stored.summary == up.summary
    assert len(up.summaries) == 1
