"""`sluice batch watch ID`: a batch's progress from the HTTP API, as an operator sees it.

It polls `GET /v1/batches/{id}` (or `/v1/messages/batches/{id}` for a `msgbatch_` id) with
the caller's key (`--api-key`, else `$SLUICE_API_KEY`), so it works against any replica
and shows exactly what the owner of the batch would see. One line, redrawn: a bar, done /
total, failed, the rate over the last polls and the ETA it implies. It exits when the batch
ends (status 0 for completed, 1 otherwise).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass
from typing import Any

import click

_BAR = 30


@dataclass(frozen=True, slots=True)
class Progress:
    status: str
    total: int
    done: int
    failed: int

    @property
    def ended(self) -> bool:
        return self.status in ("completed", "failed", "expired", "cancelled", "ended")


def progress_of(body: dict[str, Any]) -> Progress:
    """OpenAI's Batch or Anthropic's Message Batch, as one shape."""
    counts = body.get("request_counts") or {}
    if body.get("type") == "message_batch":
        finished = sum(
            int(counts.get(k, 0)) for k in ("succeeded", "errored", "canceled", "expired")
        )
        total = finished + int(counts.get("processing", 0))
        failed = finished - int(counts.get("succeeded", 0))
        return Progress(str(body.get("processing_status")), total, finished, failed)
    total = int(counts.get("total", 0))
    failed = int(counts.get("failed", 0))
    return Progress(
        str(body.get("status")), total, int(counts.get("completed", 0)) + failed, failed
    )


def render(p: Progress, rate: float | None) -> str:
    """The one status line (pure: tested without a terminal)."""
    share = p.done / p.total if p.total else 1.0 if p.ended else 0.0
    filled = int(share * _BAR)
    bar = "#" * filled + "-" * (_BAR - filled)
    left = p.total - p.done
    if p.ended:
        eta = "done"
    elif rate:
        eta = f"ETA {_duration(left / rate)}"
    else:
        eta = "ETA --"
    speed = f"{rate:,.1f} items/s" if rate is not None else "-- items/s"
    return (
        f"[{bar}] {share * 100:5.1f}%  {p.done:,}/{p.total:,}  failed {p.failed:,}  "
        f"{speed}  {eta}  {p.status}"
    )


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def _url(base: str, batch_id: str) -> str:
    path = "/v1/messages/batches/" if batch_id.startswith("msgbatch_") else "/v1/batches/"
    return base.rstrip("/") + path + batch_id


@click.group("batch")
def batch_group() -> None:
    """Batches (/v1/batches, /v1/messages/batches)."""


@batch_group.command("watch")
@click.argument("batch_id")
@click.option(
    "--url", default="http://127.0.0.1:8080", show_default=True, help="The gateway's base URL."
)
@click.option(
    "--api-key",
    envvar="SLUICE_API_KEY",
    default="none",
    help="The batch owner's key (default: $SLUICE_API_KEY).",
)
@click.option("--interval", type=float, default=1.0, show_default=True)
def watch(batch_id: str, url: str, api_key: str, interval: float) -> None:
    """Show a batch's progress (bar, items/s, ETA) until it ends."""
    headers = {
        "authorization": f"Bearer {api_key}",
        "x-api-key": api_key,
        "anthropic-version": "2023-06-01",
    }
    samples: deque[tuple[float, int]] = deque(maxlen=10)
    while True:
        p = progress_of(_fetch(_url(url, batch_id), headers))
        samples.append((time.monotonic(), p.done))
        rate = None
        if len(samples) > 1 and samples[-1][0] > samples[0][0]:
            rate = (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0])
        click.echo("\r" + render(p, rate), nl=False)
        if p.ended:
            click.echo()
            raise SystemExit(0 if p.status in ("completed", "ended") else 1)
        time.sleep(interval)


def _fetch(url: str, headers: dict[str, str]) -> dict[str, Any]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            body: dict[str, Any] = json.loads(resp.read())
            return body
    except urllib.error.HTTPError as err:
        raise click.ClickException(
            f"{err.code}: {err.read()[:300].decode(errors='replace')}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from None
