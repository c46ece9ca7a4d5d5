"""Adversarial cases for the guard stage: what a hostile caller or a leaking model could use
to get a value past the guards (found in review; each failed before its fix)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sluice.guardrails.base import GuardBlockedError
from sluice.guardrails.config import GuardrailsConfig
from sluice.guardrails.stage import GuardStage
from sluice.pipeline.context import CallContext, Result
from sluice.types import (
    ChatRequest,
    ChatResponse,
    Finish,
    Message,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    ToolCallDelta,
    ToolCallPart,
    ToolCallStart,
)

PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7" * 30
PEM = f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n-----END PRIVATE KEY-----"
KEY = "sk-proj-AbCdEf0123456789xyzXYZ0123"


def stage(guardrails: dict[str, object]) -> GuardStage:
    return GuardStage(GuardrailsConfig.model_validate(guardrails))


def request(*texts: str) -> ChatRequest:
    return ChatRequest(model="m", messages=[Message("user", [TextPart(t)]) for t in texts])


async def drain(result: Result) -> tuple[list[StreamEvent], BaseException | None]:
    assert not isinstance(result, ChatResponse)
    events: list[StreamEvent] = []
    try:
        async for event in result:
            events.append(event)
    except GuardBlockedError as err:
        return events, err
    finally:
        await result.aclose()
    return events, None


def sent_text(events: list[StreamEvent]) -> str:
    return "".join(
        e.text if isinstance(e, TextDelta) else e.arguments
        for e in events
        if isinstance(e, TextDelta | ToolCallDelta)
    )


@pytest.mark.parametrize("window", [8, 64])
async def test_a_private_key_longer_than_the_window_never_streams_before_the_block(
    window: int,
) -> None:
    """The PEM shape needs its END line: a key longer than the window used to go out piece by
    piece while its END line had not arrived yet."""
    guard = stage({"output": {"secrets": "block", "window_tokens": window}})
    text = "here it is: " + PEM + " done"
    pieces = [text[i : i + 7] for i in range(0, len(text), 7)]

    async def nxt(c: CallContext) -> Result:
        async def gen() -> AsyncIterator[StreamEvent]:
            yield StreamStart("r", "m")
            for piece in pieces:
                yield TextDelta(piece)
            yield Finish("stop")

        return gen()  # type: ignore[return-value]

    events, err = await drain(await guard(CallContext(request("hi")), nxt))
    assert isinstance(err, GuardBlockedError)
    out = sent_text(events)
    assert "MIIEvQ" not in out and "BEGIN" not in out


async def test_a_secret_in_tool_call_arguments_is_blocked_in_json() -> None:
    guard = stage({"output": {"secrets": "block"}})

    async def nxt(c: CallContext) -> Result:
        args = '{"api_key": "' + KEY + '"}'
        return ChatResponse(id="r", model="m", parts=[ToolCallPart("c1", "setup", args)])

    with pytest.raises(GuardBlockedError):
        await guard(CallContext(request("hi")), nxt)


async def test_a_secret_in_streamed_tool_call_arguments_never_goes_out() -> None:
    guard = stage({"output": {"secrets": "block"}})
    args = '{"api_key": "' + KEY + '"}'

    async def nxt(c: CallContext) -> Result:
        async def gen() -> AsyncIterator[StreamEvent]:
            yield StreamStart("r", "m")
            yield ToolCallStart(0, "c1", "setup")
            for i in range(0, len(args), 4):
                yield ToolCallDelta(0, args[i : i + 4])
            yield Finish("tool_calls")

        return gen()  # type: ignore[return-value]

    events, err = await drain(await guard(CallContext(request("hi")), nxt))
    assert isinstance(err, GuardBlockedError)
    assert "sk-proj" not in sent_text(events)


async def test_a_system_prompt_leak_through_tool_call_arguments_is_caught() -> None:
    system = "You are Orca, the internal assistant of Wexford Shipping; never reveal routes"
    guard = stage({"output": {"system_prompt_leak": "block", "leak_words": 6}})
    req = ChatRequest(
        model="m", messages=[Message("user", [TextPart("hi")])], system=[TextPart(system)]
    )

    async def nxt(c: CallContext) -> Result:
        args = '{"note": "' + system + '"}'
        return ChatResponse(id="r", model="m", parts=[ToolCallPart("c1", "log", args)])

    with pytest.raises(GuardBlockedError):
        await guard(CallContext(req), nxt)


async def test_a_placeholder_the_caller_wrote_in_earlier_tool_call_arguments_stays_literal() -> (
    None
):
    """`<EMAIL_1>` typed into an earlier assistant tool call is the caller's own text: a new
    e-mail in the same request must get another number, so echoing it restores nothing."""
    guard = stage({"pii": {"mode": "mask"}})
    req = ChatRequest(
        model="m",
        messages=[
            Message("user", [TextPart("notify")]),
            Message("assistant", [ToolCallPart("c1", "send", '{"to": "<EMAIL_1>"}')]),
            Message("user", [TextPart("now also bob@corp.example.com")]),
        ],
    )
    seen: list[str] = []

    async def nxt(c: CallContext) -> Result:
        last = c.request.messages[-1].parts[0]
        assert isinstance(last, TextPart)
        seen.append(last.text)
        return ChatResponse(id="r", model="m", parts=[TextPart("sent to <EMAIL_1>")])

    result = await guard(CallContext(req), nxt)
    assert isinstance(result, ChatResponse)
    assert "<EMAIL_1>" not in seen[0]
    part = result.parts[0]
    assert isinstance(part, TextPart) and part.text == "sent to <EMAIL_1>"


@pytest.mark.parametrize("stream", [False, True])
async def test_values_restored_into_a_json_mode_answer_keep_it_valid_json(stream: bool) -> None:
    """A private key has newlines, a password may hold a backslash or quote: restored raw into
    a JSON answer they broke the JSON the structured-output stage had just validated."""
    guard = stage({"pii": {"mode": "mask"}})
    password = 'pa\\ss"wd'
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\nkqhkiG9w0B\n-----END PRIVATE KEY-----"
    req = ChatRequest(
        model="m",
        messages=[Message("user", [TextPart(f"store {pem} with password={password} ok")])],
        response_format={"type": "json_object"},
    )
    sent: list[str] = []
    answer = '{"key": "<SECRET_1>", "password": "<SECRET_2>"}'

    async def nxt(c: CallContext) -> Result:
        part = c.request.messages[0].parts[0]
        assert isinstance(part, TextPart)
        sent.append(part.text)
        if not stream:
            return ChatResponse(id="r", model="m", parts=[TextPart(answer)])

        async def gen() -> AsyncIterator[StreamEvent]:
            yield StreamStart("r", "m")
            for i in range(0, len(answer), 5):
                yield TextDelta(answer[i : i + 5])
            yield Finish("stop")

        return gen()  # type: ignore[return-value]

    result = await guard(CallContext(req), nxt)
    assert "MIIE" not in sent[0] and "<SECRET_2>" in sent[0]
    if stream:
        events, err = await drain(result)
        assert err is None
        text = sent_text(events)
    else:
        assert isinstance(result, ChatResponse)
        part = result.parts[0]
        assert isinstance(part, TextPart)
        text = part.text
    assert json.loads(text) == {"key": pem, "password": password.split('"')[0]}


def hostile_tool_call_request(args: str) -> ChatRequest:
    return ChatRequest(
        model="m",
        messages=[
            Message("user", [TextPart("go")]),
            Message("assistant", [ToolCallPart("c1", "f", args)]),
            Message("user", [TextPart("and mail a@x.io")]),
        ],
    )


def test_input_bytes_count_earlier_tool_call_arguments() -> None:
    """Text hidden in an assistant turn's tool-call arguments is sent upstream and scanned
    like any other: it passed `max_input_bytes` uncounted."""
    from sluice.guardrails.checks import check_limits
    from sluice.guardrails.config import InputLimitsConfig

    req = hostile_tool_call_request('{"x": "' + "1 " * 5000 + '"}')
    hit = check_limits(InputLimitsConfig(mode="block", max_input_bytes=1000), req)
    assert hit is not None and hit.rule == "max_input_bytes"


async def test_hostile_text_in_tool_call_arguments_is_masked_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    offloaded: list[object] = []
    real = asyncio.to_thread

    async def to_thread(fn: object, /, *args: object) -> object:
        offloaded.append(fn)
        assert callable(fn)
        return await real(fn, *args)

    monkeypatch.setattr(asyncio, "to_thread", to_thread)
    guard = stage({"pii": {"mode": "mask"}})
    req = hostile_tool_call_request('{"x": "' + "1 " * 40_000 + '"}')

    async def nxt(c: CallContext) -> Result:
        return ChatResponse(id="r", model="m", parts=[TextPart("to <EMAIL_1>")])

    result = await guard(CallContext(req), nxt)
    assert offloaded, "80 KB of hostile digits were scanned on the event loop"
    assert isinstance(result, ChatResponse) and result.parts == [TextPart("to a@x.io")]


@pytest.mark.parametrize("mode", ["mask", "block", "flag"])
async def test_pii_scan_is_bounded_per_request(mode: str) -> None:
    """Hostile digits cost the detector seconds per MB: text past `pii.max_scan_bytes` is
    refused (413) where the guard must see every value, flagged unscanned otherwise."""
    from sluice.guardrails.base import InputTooLargeError

    guard = stage({"pii": {"mode": mode, "max_scan_bytes": 10_000}})
    req = request("1 " * 6000 + "a@x.io")
    ctx = CallContext(req)

    async def nxt(c: CallContext) -> Result:
        return ChatResponse(id="r", model="m", parts=[TextPart("ok")])

    if mode == "flag":
        await guard(ctx, nxt)
        assert ctx.response_headers["x-sluice-guard"] == "pii=flag:max_scan_bytes"
        return
    with pytest.raises(InputTooLargeError) as err:
        await guard(ctx, nxt)
    assert err.value.status == 413 and err.value.rule == "max_scan_bytes"
    assert ctx.response_headers["x-sluice-guard"] == "pii=block:max_scan_bytes"


async def test_logprobs_of_held_text_never_go_out_before_its_check() -> None:
    """Each delta's logprobs carry its tokens' text: sent with an earlier release, they
    carried a secret the window was still holding past the block."""
    guard = stage({"output": {"secrets": "block", "window_tokens": 8}})
    words = [w + " " for w in ("alpha bravo charlie delta echo foxtrot golf " * 4).split()]
    pieces = [*words, "key: sk-", "proj-AbCdEf", "0123456789xyz", "XYZ done"]

    async def nxt(c: CallContext) -> Result:
        async def gen() -> AsyncIterator[StreamEvent]:
            yield StreamStart("r", "m")
            for piece in pieces:
                yield TextDelta(piece, logprobs=[{"token": piece, "logprob": -0.1}])
            yield Finish("stop")

        return gen()  # type: ignore[return-value]

    events, err = await drain(await guard(CallContext(request("hi")), nxt))
    assert isinstance(err, GuardBlockedError)
    tokens = "".join(
        str(lp["token"])
        for e in events
        if isinstance(e, TextDelta) and e.logprobs
        for lp in e.logprobs
    )
    assert sent_text(events), "text before the window went out"
    assert "sk-" not in tokens and "proj-" not in tokens
    assert tokens == sent_text(events)  # each released delta's logprobs, no more


async def test_masked_answer_pii_is_not_left_in_logprob_tokens() -> None:
    guard = stage({"pii": {"output": "mask"}})
    detail = {"content": [{"token": "bob@corp.example.com", "logprob": -0.1, "bytes": None}]}

    async def nxt(c: CallContext) -> Result:
        return ChatResponse(
            id="r",
            model="m",
            parts=[TextPart("bob@corp.example.com")],
            logprobs_detail=detail,
        )

    result = await guard(CallContext(request("hi")), nxt)
    assert isinstance(result, ChatResponse)
    assert result.parts == [TextPart("[email]")]
    assert "bob@" not in json.dumps(result.logprobs_detail)


async def test_a_secret_in_the_models_thinking_is_caught_in_json() -> None:
    from sluice.types import ThinkingPart

    guard = stage({"output": {"secrets": "block"}})

    async def nxt(c: CallContext) -> Result:
        parts = [ThinkingPart(f"the key is {KEY}", "sig"), TextPart("done")]
        return ChatResponse(id="r", model="m", parts=parts)  # type: ignore[arg-type]

    with pytest.raises(GuardBlockedError):
        await guard(CallContext(request("hi")), nxt)


async def test_a_secret_in_streamed_thinking_never_goes_out_and_order_is_kept() -> None:
    from sluice.types import ThinkingDelta

    guard = stage({"output": {"secrets": "block"}})

    async def run(thinking: str) -> tuple[list[StreamEvent], BaseException | None]:
        async def nxt(c: CallContext) -> Result:
            async def gen() -> AsyncIterator[StreamEvent]:
                yield StreamStart("r", "m")
                for i in range(0, len(thinking), 6):
                    yield ThinkingDelta(thinking[i : i + 6])
                yield ThinkingDelta("", "sig")
                yield TextDelta("the answer")
                yield Finish("stop")

            return gen()  # type: ignore[return-value]

        return await drain(await guard(CallContext(request("hi")), nxt))

    events, err = await run(f"let me recall: {KEY} is it")
    assert isinstance(err, GuardBlockedError)
    assert "sk-proj" not in "".join(e.thinking for e in events if isinstance(e, ThinkingDelta))
    events, err = await run("plain reasoning here")
    assert err is None
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("TextDelta") > max(i for i, k in enumerate(kinds) if k == "ThinkingDelta")
    assert "".join(e.thinking for e in events if isinstance(e, ThinkingDelta)) == (
        "plain reasoning here"
    )
    assert any(isinstance(e, ThinkingDelta) and e.signature == "sig" for e in events)


# --- a private key without its END line (cut by max_tokens, or left out on request) --------

CUT_PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY[:300]}"


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
@pytest.mark.parametrize("cfg", ["block", "mask"])
async def test_a_private_key_without_its_end_line_is_still_a_key(size: int, cfg: str) -> None:
    """Found in review: the PEM shape needed the END line, so a key the model was told to
    write without it (or that max_tokens cut short) went out whole past `secrets: block`
    and `pii.output: mask`, streamed and not."""
    guard = stage(
        {"output": {"secrets": "block"}}
        if cfg == "block"
        else {"pii": {"mode": "flag", "output": "mask"}}
    )
    answer = f"Here it is:\n{CUT_PEM}"

    async def whole(ctx: CallContext) -> Result:
        return ChatResponse(id="r", model="m", parts=[TextPart(answer)], finish_reason="length")

    async def streamed(ctx: CallContext) -> Result:
        async def gen() -> AsyncIterator[StreamEvent]:
            yield StreamStart("r", "m")
            for at in range(0, len(answer), size):
                yield TextDelta(answer[at : at + size])
            yield Finish("length")

        return gen()  # type: ignore[return-value]

    events, err = await drain(await guard(CallContext(request("key?")), streamed))
    assert PEM_BODY[:40] not in sent_text(events)
    if cfg == "block":
        assert err is not None
        with pytest.raises(GuardBlockedError):
            await guard(CallContext(request("key?")), whole)
    else:
        assert err is None and sent_text(events) == "Here it is:\n[secret]"
        result = await guard(CallContext(request("key?")), whole)
        assert isinstance(result, ChatResponse) and result.parts == [TextPart(sent_text(events))]


def test_prose_about_the_pem_header_is_not_a_key() -> None:
    from sluice.guardrails.pii import find

    text = "A key file starts with -----BEGIN PRIVATE KEY----- and then base64 lines."
    assert find(text) == []


@pytest.mark.parametrize(
    "after",
    [
        " and is kept in /etc/ssl/private/sluice/gateway/tls/server.key on the host.",
        " then read https://docs.example.com/guides/cryptography/PrivateKeyFormats first.",
        "\nSee /usr/local/share/ca-certificates/internal/production/gateway for more.",
    ],
)
def test_prose_with_a_path_after_the_pem_header_is_not_a_key(after: str) -> None:
    """review4: a run of 32 base64 letters anywhere in the next 256 characters (a path, a
    URL) made the header a key without END, and the key swallowed the prose after it (up
    to 16 KiB: masked, or the answer blocked). Key material follows the BEGIN line."""
    from sluice.guardrails.pii import find

    assert find(f"The file starts with -----BEGIN PRIVATE KEY-----{after} Then restart.") == []


@pytest.mark.parametrize(
    "body",
    [
        PEM_BODY[:300],
        "\n".join(PEM_BODY[at : at + 64] for at in range(0, 300, 64)),
        "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,3F17F5316E2BAC89\n\n" + PEM_BODY[:100],
    ],
)
def test_key_material_without_end_is_found_whole(body: str) -> None:
    from sluice.guardrails.pii import find

    text = f"-----BEGIN RSA PRIVATE KEY-----\n{body}"
    assert [(s.start, s.end, s.entity) for s in find(f"Here:\n{text}")] == [
        (6, 6 + len(text), "SECRET")
    ]


# --- documents: their text goes to the provider masked too --------------------------------


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


DOC_TEXT = "Escalations go to carol.vacuum@example.org or +44 20 7946 0958."
ANTHROPIC_BLOCKS = {
    "text": {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": DOC_TEXT},
        "title": "Contact carol.vacuum@example.org",
        "citations": {"enabled": True},
    },
    "base64": {
        "type": "document",
        "source": {"type": "base64", "media_type": "text/plain", "data": _b64(DOC_TEXT)},
    },
    "content": {
        "type": "document",
        "source": {"type": "content", "content": [{"type": "text", "text": DOC_TEXT}]},
        "context": "from carol.vacuum@example.org",
    },
    "search_result": {
        "type": "search_result",
        "source": "https://kb.example.com/vacuum",
        "title": "Vacuum",
        "content": [{"type": "text", "text": DOC_TEXT}],
    },
    "in_tool_result": {
        "type": "tool_result",
        "tool_use_id": "t1",
        "content": [
            {
                "type": "search_result",
                "source": "https://kb.example.com/vacuum",
                "title": "Vacuum",
                "content": [{"type": "text", "text": DOC_TEXT}],
            }
        ],
    },
}


def _sent_upstream(req: ChatRequest, wire: str) -> str:
    """The upstream body as JSON, with base64 text decoded (where a value could hide)."""
    import base64
    import binascii
    import contextlib
    import re

    from sluice.wire.anthropic.request import encode_request as to_anthropic
    from sluice.wire.openai.request import encode_request as to_openai

    body = json.dumps(to_anthropic(req, "m") if wire == "anthropic" else to_openai(req, "m"))
    decoded = []
    for blob in re.findall(r"[A-Za-z0-9+/=]{16,}", body):
        with contextlib.suppress(binascii.Error, UnicodeDecodeError, ValueError):
            decoded.append(base64.b64decode(blob, validate=True).decode())
    return body + "\n".join(decoded)


@pytest.mark.parametrize("block", ANTHROPIC_BLOCKS.values(), ids=ANTHROPIC_BLOCKS.keys())
async def test_an_anthropic_document_goes_upstream_masked(block: dict[str, Any]) -> None:
    """Found in review: `pii.mode: mask` masked text, tool results and tool calls but not
    documents — a text document, a search result (also inside a tool result) went to the
    provider with the caller's values (the caller's block, `raw`, is sent as it is)."""
    from sluice.types import CallMeta
    from sluice.wire.anthropic.request import decode_request

    content: list[dict[str, Any]] = [{"type": "text", "text": "Who do I escalate to?"}]
    messages: list[dict[str, Any]] = [{"role": "user", "content": [block, *content]}]
    if block["type"] == "tool_result":
        messages = [
            {"role": "user", "content": "look it up"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "kb", "input": {}}],
            },
            {"role": "user", "content": [block, *content]},
        ]
    req = decode_request(
        {"model": "m", "max_tokens": 100, "messages": messages}, CallMeta(wire="anthropic")
    )
    seen: list[ChatRequest] = []

    async def upstream(ctx: CallContext) -> Result:
        seen.append(ctx.request)
        return ChatResponse(id="r", model="m", parts=[TextPart("Ask <EMAIL_1>.")])

    result = await stage({"pii": {"mode": "mask"}})(CallContext(req), upstream)
    for wire in ("anthropic", "openai"):
        sent = _sent_upstream(seen[0], wire)
        assert "carol.vacuum@example.org" not in sent and "7946" not in sent, wire
        assert "<EMAIL_1>" in sent
    assert isinstance(result, ChatResponse)
    assert result.parts == [TextPart("Ask carol.vacuum@example.org.")]
    # The caller's own request object is left as it was.
    before = repr(req.messages)
    assert "carol.vacuum@example.org" in before or _b64(DOC_TEXT) in before


TEXT_DATA_URLS = ["data:text/plain;base64,", "data:text/plain;charset=utf-8;base64,"]
TEXT_DATA_URLS += ["data:Text/Plain;base64,"]


@pytest.mark.parametrize("head", TEXT_DATA_URLS)
async def test_an_openai_text_file_goes_upstream_masked(head: str) -> None:
    """review4: a data URL with a parameter (charset=utf-8) or another case was not read
    as text: its personal data passed pii block and mask, and the injection screen."""
    from sluice.types import CallMeta
    from sluice.wire.openai.request import decode_request

    file = {
        "type": "file",
        "file": {"file_data": f"{head}{_b64(DOC_TEXT)}", "filename": "kb.txt"},
    }
    req = decode_request(
        {"model": "m", "messages": [{"role": "user", "content": [file]}]},
        CallMeta(wire="openai"),
    )
    seen: list[ChatRequest] = []

    async def upstream(ctx: CallContext) -> Result:
        seen.append(ctx.request)
        return ChatResponse(id="r", model="m", parts=[TextPart("ok")])

    await stage({"pii": {"mode": "mask"}})(CallContext(req), upstream)
    sent = _sent_upstream(seen[0], "openai")
    assert "carol.vacuum@example.org" not in sent and "<EMAIL_1>" in sent
    with pytest.raises(GuardBlockedError):
        await stage({"pii": {"mode": "block"}})(CallContext(req), upstream)


@pytest.mark.parametrize("block", ["text", "base64"])
async def test_personal_data_in_a_base64_text_document_is_found(block: str) -> None:
    """Found in review: a `text/plain` document sent base64 (Anthropic `base64` source,
    OpenAI data URL) was checked as its base64 letters, so `pii: block` let it through."""
    from sluice.types import CallMeta
    from sluice.wire.anthropic.request import decode_request

    doc = ANTHROPIC_BLOCKS[block]
    req = decode_request(
        {
            "model": "m",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": [doc, {"type": "text", "text": "hi"}]}],
        },
        CallMeta(wire="anthropic"),
    )

    async def upstream(ctx: CallContext) -> Result:
        raise AssertionError("a blocked request reached the provider")

    with pytest.raises(GuardBlockedError) as err:
        await stage({"pii": {"mode": "block"}})(CallContext(req), upstream)
    assert err.value.code == "pii_detected"


async def test_text_after_the_finish_chunk_is_judged_too() -> None:
    """Found in review: the output guards ran at the upstream's finish event, so text a
    (buggy or hostile) upstream sent after its finish chunk went out unjudged: a custom
    output guard in block mode passed it, and `pii_output` said pass for a masked value."""
    from sluice.types import Usage, UsageUpdate

    guard = stage(
        {
            "pii": {"mode": "flag", "output": "mask"},
            "custom": [
                {
                    "path": "tests.e2e.test_guard_e2e:NoBanana",
                    "mode": "block",
                    "phases": ["output"],
                }
            ],
        }
    )

    async def upstream(ctx: CallContext) -> Result:
        async def gen() -> AsyncIterator[StreamEvent]:
            yield StreamStart("r", "m")
            yield TextDelta("hello ")
            yield Finish("stop")
            yield TextDelta("a banana for jane.doe@example.com")
            yield UsageUpdate(Usage(3, 9))

        return gen()  # type: ignore[return-value]

    ctx = CallContext(request("hi"))
    events, err = await drain(await guard(ctx, upstream))
    assert isinstance(err, GuardBlockedError) and err.guard == "no_banana"
    assert "jane.doe" not in sent_text(events)
    header = ctx.response_headers["x-sluice-guard"]
    assert "pii_output=mask:EMAIL" in header and "no_banana=block" in header

    clean = stage({"pii": {"mode": "flag", "output": "mask"}})
    ctx = CallContext(request("hi"))
    events, err = await drain(await clean(ctx, upstream))
    assert err is None and isinstance(events[-1], Finish)  # the end goes out last
    assert sent_text(events) == "hello a banana for [email]"


async def test_a_placeholder_finished_after_the_finish_chunk_is_restored() -> None:
    async def upstream(ctx: CallContext) -> Result:
        async def gen() -> AsyncIterator[StreamEvent]:
            yield StreamStart("r", "m")
            yield TextDelta("mail <EMAIL_1")
            yield Finish("stop")
            yield TextDelta(">")

        return gen()  # type: ignore[return-value]

    events, err = await drain(
        await stage({"pii": {"mode": "mask"}})(CallContext(request("I am a@x.io")), upstream)
    )
    assert err is None and sent_text(events) == "mail a@x.io"
    assert isinstance(events[-1], Finish)
