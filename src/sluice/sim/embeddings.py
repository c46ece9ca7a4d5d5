"""`POST /v1/embeddings` on the simulator: deterministic vectors in OpenAI's shape.

Each word of an input adds ±1 to a dimension chosen by its hash, and the sum is scaled to
unit length, so equal texts get equal vectors and texts sharing words point the same way.
Usage counts input tokens with `sluice.tokens.count_text`, the estimator the gateway uses,
so tests can assert exact counts; `encoding_format: base64` is little-endian float32, as
OpenAI sends it. Stats are counted per model like chat calls (`/sim/stats`).
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
from typing import Any

import orjson
from aiohttp import web

from sluice.sim.chat import JSON, STATE, error_response, headers_with
from sluice.tokens import count_text

DEFAULT_DIMENSIONS = 256
_WORD = re.compile(r"\w+")


def vector(text: str, dimensions: int) -> list[float]:
    values = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        slot = int.from_bytes(digest[:4], "little") % dimensions
        values[slot] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def _inputs(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [" ".join(f"t{v}" for v in value)]  # one tokenised input
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        return [" ".join(f"t{v}" for v in item) for item in value]
    return None


async def embeddings(request: web.Request) -> web.Response:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return error_response("openai", 400, "We could not parse the JSON body of your request.")
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return error_response("openai", 400, "model: a model name is required", param="model")
    texts = _inputs(body.get("input"))
    if texts is None:
        return error_response("openai", 400, "input: a string or array is required", param="input")
    dimensions = body.get("dimensions") or DEFAULT_DIMENSIONS
    if not isinstance(dimensions, int) or not 1 <= dimensions <= 4096:
        return error_response("openai", 400, "dimensions must be 1..4096", param="dimensions")
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for i, text in enumerate(texts):
        vec = vector(text, dimensions)
        encoded: Any = (
            base64.b64encode(struct.pack(f"<{dimensions}f", *vec)).decode() if as_base64 else vec
        )
        data.append({"object": "embedding", "index": i, "embedding": encoded})
    tokens = sum(count_text(t) for t in texts)
    stats = request.app[STATE].stats
    stats.requests_total += 1
    model = stats.model(body["model"])
    model.requests += 1
    model.input_tokens += tokens
    out = {
        "object": "list",
        "data": data,
        "model": body["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return web.Response(body=orjson.dumps(out), content_type=JSON, headers=headers_with())
