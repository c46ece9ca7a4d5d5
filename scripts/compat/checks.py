"""The tiny runner every library script uses (it runs inside that library's own venv, so it
imports nothing of Sluice): named checks, sync or async, each PASS or FAIL with the reason,
one JSON summary line at the end, exit status 1 when any check failed."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

URL = os.environ.get("SLUICE_URL", "http://127.0.0.1:8080")
OPENAI_MODEL = os.environ.get("SLUICE_COMPAT_OPENAI_MODEL", "gpt-4o-mini")
ANTHROPIC_MODEL = os.environ.get("SLUICE_COMPAT_ANTHROPIC_MODEL", "claude-haiku")
MODELS = (OPENAI_MODEL, ANTHROPIC_MODEL)
KEY = "sk-compat"  # auth is off in the simulator config; libraries insist on a key
CONCURRENCY = 8


class CheckFailed(AssertionError):
    pass


def expect(condition: Any, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def run(library: str, checks: dict[str, Callable[[], Any]]) -> None:
    # One event loop for the whole run: libraries cache async clients across calls (an
    # asyncio.run per check would hand them a closed loop).
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    results: dict[str, str] = {}
    for name, check in checks.items():
        started = time.perf_counter()
        try:
            outcome = check()
            if inspect.isawaitable(outcome):
                loop.run_until_complete(_awaited(outcome))
            results[name] = "pass"
            status = "PASS"
        except Exception as exc:  # every failure is reported; none stops the run
            results[name] = f"fail: {type(exc).__name__}: {str(exc)[:300]}"
            status = "FAIL"
            if os.environ.get("SLUICE_COMPAT_VERBOSE"):
                traceback.print_exc()
        ms = (time.perf_counter() - started) * 1000
        sys.stdout.write(f"{status} {library} {name} ({ms:.0f} ms) {results[name][6:]}\n")
    sys.stdout.write("RESULT " + json.dumps({"library": library, "checks": results}) + "\n")
    sys.exit(0 if all(v == "pass" for v in results.values()) else 1)


async def _awaited(outcome: Any) -> Any:
    return await outcome
