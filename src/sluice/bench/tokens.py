"""What counting costs: µs per ~2,000-token request, per counting path.

    python -m sluice.bench.tokens [--repeat 2000]

Prints the median and p99 of `count_request` for an OpenAI model (tiktoken, exact), a
Claude model (o200k plus a margin), an unknown model (the simulator's estimator), and the
one-off cost of rebuilding an encoding file from quicktok's data.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sluice.context.encodings import ensure_files, get_encoding
from sluice.context.tokens import count_request
from sluice.types import ChatRequest, Message, Part, TextPart

_PROSE = (
    "The gateway keeps a conversation server-side, so the client sends only its new turn. "
    "When the stored history grows past its budget, older turns are folded into a running "
    "summary that keeps decisions, facts, preferences and open questions. "
)


def sample_request(model: str, target_tokens: int = 2000) -> ChatRequest:
    """A conversation of alternating turns whose o200k count is about `target_tokens`."""
    messages: list[Message] = []
    enc = get_encoding("o200k_base")
    per_turn = len(enc.encode(_PROSE * 4))
    for i in range(max(1, target_tokens // per_turn)):
        text: list[Part] = [TextPart(f"({i}) " + _PROSE * 4)]
        messages.append(Message("user", text) if i % 2 == 0 else Message("assistant", text))
    return ChatRequest(model, messages, system=[TextPart("You are a careful assistant.")])


def _timings_us(model: str, repeat: int) -> tuple[int, float, float, float]:
    """(tokens, wall p50, wall p99, CPU mean) in µs; CPU time is what counting costs the
    process, and is less disturbed than wall time by other work on a shared machine."""
    req = sample_request(model)
    tokens = count_request(req, model).tokens  # warm: encoding loaded
    samples: list[float] = []
    cpu_started = time.thread_time()
    for _ in range(repeat):
        started = time.perf_counter()
        count_request(req, model)
        samples.append((time.perf_counter() - started) * 1e6)
    cpu_mean = (time.thread_time() - cpu_started) * 1e6 / repeat
    samples.sort()
    return tokens, statistics.median(samples), samples[int(len(samples) * 0.99) - 1], cpu_mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    for model, path in [
        ("gpt-4o", "tiktoken o200k, exact"),
        ("gpt-4", "tiktoken cl100k, exact"),
        ("claude-sonnet-4-5", "o200k + margin, estimate"),
        ("sim-model", "sluice.tokens estimator"),
    ]:
        tokens, p50, p99, cpu = _timings_us(model, args.repeat)
        _say(
            f"{model:18} {path:27} {tokens:5} tokens  wall p50 {p50:6.0f} µs  "
            f"p99 {p99:6.0f} µs  CPU mean {cpu:6.0f} µs"
        )
    for name in ("cl100k_base", "o200k_base"):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            ensure_files(Path(tmp), name)
            _say(f"build {name} file from quicktok data: {time.perf_counter() - started:.2f} s")


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")


if __name__ == "__main__":
    main()
