"""The OpenAI chunk encoder's text fast path writes the same bytes as the general path."""

from __future__ import annotations

import random

import orjson

from sluice.types import StreamStart, TextDelta
from sluice.wire.openai.stream import ChunkEncoder

TEXTS = ["", "Hello", ' quote " and \\ backslash', "é 日本 🚀", "\n\t\u2028\x00", "{}[]:,"]


def _general(enc: ChunkEncoder, text: str) -> bytes:
    return enc._delta({"content": text})


def test_text_chunks_are_byte_for_byte_the_general_encoding() -> None:
    rng = random.Random(3)
    starts = [
        StreamStart(id="abc", model="m", created=1),
        StreamStart(
            id='x"y', model="gpt", created=2, system_fingerprint="fp_1", service_tier="default"
        ),
    ]
    for model in ("gpt-4o-mini", 'we"ird "choices":[{', "模型"):
        for start in starts:
            enc = ChunkEncoder(model, include_usage=True)
            before = enc.encode(TextDelta("early"))  # before the start event: empty id
            assert before == ChunkEncoder(model, True)._delta({"content": "early"})
            enc.encode(start)
            for _ in range(50):
                text = rng.choice(TEXTS) + "".join(
                    chr(rng.randint(1, 0x2FFF)) for _ in range(rng.randint(0, 8))
                )
                out = enc.encode(TextDelta(text))
                assert out == _general(enc, text)
                body = orjson.loads(out[len(b"data: ") :])
                assert body["choices"][0]["delta"] == {"content": text}


def test_a_new_start_event_resets_the_cached_head() -> None:
    enc = ChunkEncoder("m", include_usage=False)
    enc.encode(StreamStart(id="one", model="m", created=1))
    first = enc.encode(TextDelta("a"))
    enc.encode(StreamStart(id="two", model="m", created=2, system_fingerprint="fp"))
    second = enc.encode(TextDelta("a"))
    assert b"one" in first and b"two" in second and b"fp" in second
    assert second == _general(enc, "a")
