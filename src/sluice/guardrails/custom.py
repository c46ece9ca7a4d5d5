"""Guards from outside: a user's class by import path, and a webhook to a moderation service.

A custom guard is any object with a `name` and `async check(call) -> Verdict` (the `Guard`
Protocol). It is built once, when the gateway starts, with the config's `options` as keyword
arguments; a wrong path or a class that is not a guard fails the start with a clear message,
not the first call.

The webhook guard POSTs `{"phase", "model", "text"}` as JSON and reads `{"flagged": bool,
"rule": str?, "score": float?}`. Its timeout bounds what it adds to a call; a timeout, a
connection error, a non-2xx status or an unreadable answer is an `error` verdict, which the
stage turns into a pass (`fail: open`) or a block (`fail: closed`).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import Any

import aiohttp

from sluice.guardrails.base import Guard, GuardCall, Verdict
from sluice.guardrails.checks import request_texts
from sluice.guardrails.config import CustomGuardConfig, WebhookGuardConfig

log = logging.getLogger("sluice.guardrails")


class GuardLoadError(ValueError):
    """A custom guard named in the config cannot be built."""


def load_custom(cfg: CustomGuardConfig) -> Guard:
    module_name, _, attr = cfg.path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise GuardLoadError(f"guardrails.custom {cfg.path!r}: cannot import: {err}") from err
    factory = getattr(module, attr, None)
    if factory is None:
        raise GuardLoadError(f"guardrails.custom {cfg.path!r}: {module_name} has no {attr}")
    try:
        guard = factory(**cfg.options)
    except Exception as err:
        raise GuardLoadError(f"guardrails.custom {cfg.path!r}: cannot build: {err}") from err
    if not isinstance(guard, Guard) or not isinstance(getattr(guard, "name", None), str):
        raise GuardLoadError(
            f"guardrails.custom {cfg.path!r}: not a guard (needs `name: str` and "
            "`async check(call) -> Verdict`)"
        )
    return guard


def call_text(call: GuardCall) -> str:
    """The text a whole-call guard judges: the answer (output phase), else the request's
    user, tool and document texts."""
    if call.phase == "output":
        return call.answer or ""
    return "\n".join(
        text
        for text, source in request_texts(call.request, include_system=False)
        if source != "assistant"
    )


class WebhookGuard:
    """An external moderation service behind the `Guard` Protocol."""

    def __init__(self, cfg: WebhookGuardConfig) -> None:
        self.name = cfg.name
        self._cfg = cfg

    async def check(self, call: GuardCall) -> Verdict:
        payload = {
            "phase": call.phase,
            "model": call.model,
            "text": call_text(call)[: self._cfg.max_chars],
        }
        try:
            # A session per check: nothing to close when the gateway stops (the guard has no
            # shutdown hook), and a moderation call is a network round trip anyway.
            async with (
                asyncio.timeout(self._cfg.timeout_s),
                aiohttp.ClientSession() as http,
                http.post(self._cfg.url, json=payload) as resp,
            ):
                if resp.status >= 300:
                    return Verdict(self.name, "error", rule=f"http_{resp.status}")
                body: Any = await resp.json(content_type=None)
        except TimeoutError:
            return Verdict(self.name, "error", rule="timeout")
        except (aiohttp.ClientError, ValueError, OSError) as err:
            log.info("webhook guard %s failed: %s", self.name, type(err).__name__)
            return Verdict(self.name, "error", rule="unreachable")
        if not isinstance(body, dict) or not isinstance(body.get("flagged"), bool):
            return Verdict(self.name, "error", rule="bad_answer")
        if not body["flagged"]:
            return Verdict(self.name)
        rule = body.get("rule")
        score = body.get("score")
        return Verdict(
            self.name,
            "flag",
            rule=rule if isinstance(rule, str) else None,
            score=float(score) if isinstance(score, (int, float)) else None,
        )
