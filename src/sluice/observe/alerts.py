"""Alerting over call records: rules evaluated on a timer, one notification per episode.

`AlertEngine.observe(record)` takes every finished call (on the request path: a few bucket
updates per rule, no I/O). `evaluate(now)` asks every rule (`sluice.observe.alert_rules`,
whose docstring lists the rules and their defaults) for its readings and compares them
with the alerts active now: a condition that starts fires once, one that ends resolves once,
and nothing is sent while a condition holds. Each transition is logged on `sluice.alerts`
(WARNING firing, INFO resolved), kept among the recent notifications, and POSTed as JSON to
every webhook:

    {"alert", "status": "firing"|"resolved", "value", "threshold", "window_s", "labels",
     "started_at", "ends_at", "summary"}

with `x-sluice-timestamp` (Unix seconds) and, when the webhook names `secret_env`,
`x-sluice-signature: sha256=<hex HMAC-SHA256 of the raw body>` (`verify_signature` checks
one). A failed webhook is logged and counted, never raised or retried; URLs are never logged
(they often carry tokens), only their host.

`sluice.web.alerts.install(app, config)` puts an engine on a gateway app: it adds
`engine.observe` to the gateway recorder's `observers` (called by `Recorder.finish` for
every call record), starts and stops the engine with the app, and serves
`GET /v1/sluice/alerts` (active alerts, recent notifications, counters).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp
import orjson
from yarl import URL

from sluice.config import AlertsConfig, ConfigError
from sluice.observe.alert_rules import Labels, Reading, Rule, build_rules
from sluice.observe.records import CallRecord

log = logging.getLogger("sluice.alerts")

SIGNATURE_HEADER = "x-sluice-signature"
TIMESTAMP_HEADER = "x-sluice-timestamp"
ENDPOINT = "/v1/sluice/alerts"
RECENT = 100  # notifications kept for the endpoint
# Starts a named background task (`sluice.supervisor.Supervisor.spawn`).
Spawn = Callable[[str, Coroutine[Any, Any, None]], "asyncio.Task[None]"]

Status = Literal["firing", "resolved"]


def sign(body: bytes, secret: bytes, timestamp: str) -> str:
    """HMAC-SHA256 over `<timestamp>.<body>`: the timestamp is signed too, so a receiver that
    rejects old timestamps cannot be fed a replayed notification."""
    message = timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret, message, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, secret: bytes, timestamp: str | None) -> bool:
    """What a receiver does with `x-sluice-signature` and `x-sluice-timestamp`
    (constant-time comparison; checking the timestamp's age is the receiver's policy)."""
    if header is None or timestamp is None:
        return False
    expected = sign(body, secret, timestamp).encode()
    return hmac.compare_digest(expected, header.encode())


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


@dataclass(slots=True)
class Alert:
    """An episode in progress."""

    name: str
    labels: Labels
    value: float | None
    threshold: float | None
    window_s: float
    started_at: float
    summary: str

    def to_json(self) -> dict[str, Any]:
        return {
            "alert": self.name,
            "value": self.value,
            "threshold": self.threshold,
            "window_s": self.window_s,
            "labels": dict(self.labels),
            "started_at": _iso(self.started_at),
            "summary": self.summary,
        }


@dataclass(frozen=True, slots=True)
class Notification:
    alert: str
    status: Status
    value: float | None
    threshold: float | None
    window_s: float
    labels: Labels
    started_at: float
    ends_at: float | None
    summary: str

    def to_json(self) -> dict[str, Any]:
        return {
            "alert": self.alert,
            "status": self.status,
            "value": self.value,
            "threshold": self.threshold,
            "window_s": self.window_s,
            "labels": dict(self.labels),
            "started_at": _iso(self.started_at),
            "ends_at": None if self.ends_at is None else _iso(self.ends_at),
            "summary": self.summary,
        }


@dataclass(slots=True)
class AlertStats:
    evaluations: int = 0
    fired: int = 0
    resolved: int = 0
    webhook_sent: int = 0
    webhook_failed: int = 0
    observe_errors: int = 0
    evaluate_errors: int = 0


@dataclass(frozen=True, slots=True)
class _Webhook:
    url: str
    host: str  # what logs show
    secret: bytes | None
    timeout: aiohttp.ClientTimeout = field(compare=False)


def _webhooks(config: AlertsConfig, environ: Mapping[str, str]) -> list[_Webhook]:
    hooks = []
    for i, cfg in enumerate(config.webhooks):
        secret: bytes | None = None
        if cfg.secret_env is not None:
            value = environ.get(cfg.secret_env)
            if not value:
                raise ConfigError(
                    f"alerts.webhooks.{i}.secret_env: environment variable "
                    f"{cfg.secret_env} is not set"
                )
            secret = value.encode()
        host = URL(cfg.url).host or "?"
        hooks.append(_Webhook(cfg.url, host, secret, aiohttp.ClientTimeout(total=cfg.timeout_s)))
    return hooks


def _describe(exc: Exception, hook: _Webhook) -> str:
    """The exception, without its text when that shows the URL's path (tokens live there)."""
    text, secret_part = str(exc), URL(hook.url).path_qs
    if not text or (secret_part not in ("", "/") and secret_part in text):
        return type(exc).__name__
    return f"{type(exc).__name__}: {text}"


class AlertEngine:
    def __init__(self, config: AlertsConfig, *, environ: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.enabled = config.enabled
        self.rules: list[Rule] = build_rules(config.rules) if config.enabled else []
        self._hooks = _webhooks(config, os.environ if environ is None else environ)
        self._active: dict[tuple[str, Labels], Alert] = {}
        self.recent: deque[Notification] = deque(maxlen=RECENT)
        self.stats = AlertStats()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    # --- hot path ------------------------------------------------------------------------

    def observe(self, record: CallRecord) -> None:
        """Count one finished call; never raises."""
        if record.kind != "call":
            return
        try:
            cost = float(record.cost_usd) if record.cost_usd is not None else None
            for rule in self.rules:
                rule.observe(record, cost)
        except Exception:
            self.stats.observe_errors += 1
            if self.stats.observe_errors == 1:  # once: this runs for every call
                log.exception("alerts: could not observe a call record")

    # --- evaluation ----------------------------------------------------------------------

    @property
    def active(self) -> list[Alert]:
        return list(self._active.values())

    def evaluate(self, now: float | None = None) -> list[Notification]:
        """Compare every rule's readings at `now` with the active alerts; log, keep and
        return the transitions (webhooks are `deliver`'s job)."""
        now = time.time() if now is None else now
        self.stats.evaluations += 1
        out: list[Notification] = []
        for rule in self.rules:
            active = [labels for name, labels in self._active if name == rule.name]
            try:
                readings = rule.check(now, active)
            except Exception:
                self.stats.evaluate_errors += 1
                log.exception("alerts: rule %s failed", rule.name)
                continue
            for labels, reading in readings.items():
                out.extend(self._update(rule, labels, reading, now))
            for labels in active:
                if labels not in readings:  # no data any more: the condition is over
                    alert = self._active.pop((rule.name, labels))
                    out.append(self._transition(alert, "resolved", now))
        return out

    def _update(
        self, rule: Rule, labels: Labels, reading: Reading, now: float
    ) -> list[Notification]:
        key = (rule.name, labels)
        alert = self._active.get(key)
        if alert is None and not reading.firing:
            return []
        if alert is None:  # the condition starts: a new episode
            alert = self._active[key] = Alert(rule.name, labels, None, None, rule.window_s, now, "")
            status: Status = "firing"
        elif not reading.firing:  # the condition is over
            del self._active[key]
            status = "resolved"
        else:  # still firing: keep the latest reading, say nothing
            alert.value, alert.threshold = reading.value, reading.threshold
            alert.summary = reading.summary
            return []
        alert.value, alert.threshold = reading.value, reading.threshold
        alert.summary = reading.summary
        return [self._transition(alert, status, now)]

    def _transition(self, alert: Alert, status: Status, now: float) -> Notification:
        note = Notification(
            alert=alert.name,
            status=status,
            value=alert.value,
            threshold=alert.threshold,
            window_s=alert.window_s,
            labels=alert.labels,
            started_at=alert.started_at,
            ends_at=now if status == "resolved" else None,
            summary=alert.summary,
        )
        labels = "".join(f" {k}={v}" for k, v in alert.labels)
        if status == "firing":
            self.stats.fired += 1
            log.warning("alert firing: %s%s: %s", alert.name, labels, alert.summary)
        else:
            self.stats.resolved += 1
            log.info("alert resolved: %s%s: %s", alert.name, labels, alert.summary)
        self.recent.append(note)
        return note

    # --- delivery ------------------------------------------------------------------------

    async def deliver(self, notifications: Sequence[Notification]) -> None:
        """POST the notifications, in order, to every webhook; failures are counted."""
        if not notifications or not self._hooks:
            return
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        session = self._session
        bodies = [orjson.dumps(n.to_json()) for n in notifications]
        await asyncio.gather(*(self._post_all(session, hook, bodies) for hook in self._hooks))

    async def _post_all(
        self, session: aiohttp.ClientSession, hook: _Webhook, bodies: list[bytes]
    ) -> None:
        for body in bodies:
            stamp = str(int(time.time()))
            headers = {"content-type": "application/json", TIMESTAMP_HEADER: stamp}
            if hook.secret is not None:
                headers[SIGNATURE_HEADER] = sign(body, hook.secret, stamp)
            try:
                async with session.post(
                    hook.url,
                    data=body,
                    headers=headers,
                    timeout=hook.timeout,
                    allow_redirects=False,
                ) as resp:
                    await resp.read()
                    problem = None if resp.status < 300 else f"HTTP {resp.status}"
            except Exception as exc:
                problem = _describe(exc, hook)
            if problem is None:
                self.stats.webhook_sent += 1
            else:
                self.stats.webhook_failed += 1
                log.warning("alerts: webhook to %s failed: %s", hook.host, problem)

    async def run_once(self, now: float | None = None) -> list[Notification]:
        notifications = self.evaluate(now)
        await self.deliver(notifications)
        return notifications

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self, spawn: Spawn | None = None) -> None:
        """Start the evaluation loop; `spawn` (the gateway supervisor's) owns its task."""
        if self._task is not None or not self.enabled:
            return
        if spawn is not None:
            self._task = spawn("alerts", self._run())
        else:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="sluice-alerts")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.config.interval_s)
            try:
                await self.run_once()
            except Exception:
                self.stats.evaluate_errors += 1
                log.exception("alerts: evaluation failed")

    def snapshot(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "interval_s": self.config.interval_s,
            "rules": [rule.name for rule in self.rules],
            "webhooks": len(self._hooks),
            "active": [alert.to_json() for alert in self._active.values()],
            "recent": [note.to_json() for note in self.recent],
            "stats": asdict(self.stats),
        }
