"""Async jobs' settings (`jobs:` in the config): a leaf schema module, so the root config
includes it without importing the jobs package (see sluice.jobs)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JobWebhooksConfig(_Frozen):
    """Where job webhooks may go and how hard they are tried.

    SSRF: a webhook URL's host is resolved (at submission and again at every connection)
    and refused when any address is private, loopback, link-local (cloud metadata
    169.254.169.254 included), multicast, reserved or unspecified — unless
    `allow_private` is on, or the host (or an address's network) is in `allowlist`.
    Redirects are never followed."""

    allow_private: bool = False
    # host names ("hooks.internal") or networks ("10.1.2.0/24", "127.0.0.1/32") allowed
    # even though private
    allowlist: list[str] = Field(default_factory=list, max_length=100)
    # HMAC-SHA256 signing secret, read from this variable (never from the file); unset:
    # deliveries go unsigned.
    secret_env: str | None = "SLUICE_WEBHOOK_SECRET"
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    max_attempts: int = Field(default=6, ge=1, le=20)
    backoff_base_s: float = Field(default=1.0, gt=0)  # 1, 2, 4, 8 ... capped
    backoff_cap_s: float = Field(default=300.0, gt=0)


class JobsConfig(_Frozen):
    """`POST /v1/sluice/jobs`: chat requests run later at JOB priority (sluice.jobs)."""

    enabled: bool = True
    # jobs and their webhook delivery log; relative SQLite paths live in state_dir
    store_url: str = "sqlite:///sluice.db"
    max_metadata_keys: int = Field(default=16, ge=0, le=64)
    webhooks: JobWebhooksConfig = JobWebhooksConfig()
