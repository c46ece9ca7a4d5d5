"""Upstream error bodies, as each server sends them, mapped to one Sluice code."""

from __future__ import annotations

import pytest

from sluice.providers.upstream_codes import CONTEXT_LENGTH_EXCEEDED, upstream_code

LLAMA_CPP_CONTEXT = (
    b'{"error":{"code":400,"message":"request (3031 tokens) exceeds the available context size '
    b'(2048 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":3031,'
    b'"n_ctx":2048}}'
)
OPENAI_CONTEXT = (
    b'{"error":{"message":"This model\'s maximum context length is 128000 tokens.",'
    b'"type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}'
)
VLLM_CONTEXT = (
    b'{"object":"error","message":"This model\'s maximum context length is 4096 tokens. '
    b'However, you requested 5000 tokens.","type":"BadRequestError","code":400}'
)
ANTHROPIC_CONTEXT = (
    b'{"type":"error","error":{"type":"invalid_request_error",'
    b'"message":"prompt is too long: 210000 tokens > 200000 maximum"}}'
)
LLAMA_CPP_LOADING = b'{"error":{"message":"Loading model","type":"unavailable_error","code":503}}'


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (400, LLAMA_CPP_CONTEXT, CONTEXT_LENGTH_EXCEEDED),
        (400, OPENAI_CONTEXT, CONTEXT_LENGTH_EXCEEDED),
        (400, VLLM_CONTEXT, CONTEXT_LENGTH_EXCEEDED),
        (400, ANTHROPIC_CONTEXT, CONTEXT_LENGTH_EXCEEDED),
        (400, b"maximum context length exceeded", CONTEXT_LENGTH_EXCEEDED),  # not JSON
        (400, b'{"error":{"message":"bad temperature"}}', None),
        (503, LLAMA_CPP_LOADING, None),  # retryable as a 503; no special code
        (500, OPENAI_CONTEXT, None),  # only client-error statuses are read
    ],
)
def test_upstream_code(status: int, body: bytes, code: str | None) -> None:
    assert upstream_code(status, body) == code
