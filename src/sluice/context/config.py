"""Per model or route token policy: output caps, context strategy, sessions.

Used under `models.<name>.policy` and `routes.<name>.policy` in the config file.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from sluice.config_base import Frozen


class ContextPolicy(Frozen):
    """What to do with a stateless request whose input exceeds the budget."""

    strategy: Literal["none", "truncate_oldest", "summarize", "reject"] = "none"
    # Input token budget; None: the serving deployment's context window minus max output.
    max_input_tokens: int | None = Field(default=None, ge=1)
    summary_model: str | None = None  # a cheap public model for `summarize`; None: the request's
    summary_max_tokens: int = Field(default=512, ge=16)  # room kept for the summary

    @model_validator(mode="after")
    def _summary_fits(self) -> ContextPolicy:
        """With `summarize`, a summary as large as the whole input budget would refuse every
        call."""
        budget = self.max_input_tokens
        if (
            self.strategy == "summarize"
            and budget is not None
            and self.summary_max_tokens >= budget
        ):
            raise ValueError(
                f"summary_max_tokens ({self.summary_max_tokens}) must be smaller than "
                f"max_input_tokens ({self.max_input_tokens})"
            )
        return self


class SessionPolicy(Frozen):
    """Server-side conversations for requests carrying `x-sluice-session`."""

    enabled: bool = False
    keep_turns: int = Field(default=6, ge=1)  # latest turns kept verbatim
    summarize_over_tokens: int = Field(default=4000, ge=1)  # history budget before summarizing
    summary_model: str | None = None  # a cheap public model; None: the request's own model
    summary_max_tokens: int = Field(default=512, ge=16)  # longest running summary
    ttl_s: float = Field(default=86400.0, gt=0)


class TokenPolicy(Frozen):
    """`models.<name>.policy` / `routes.<name>.policy` (see docs/guide/token-economy.md)."""

    default_max_tokens: int | None = Field(default=None, ge=1)  # when the caller gives none
    max_tokens_ceiling: int | None = Field(default=None, ge=1)  # caller values are capped
    context: ContextPolicy = ContextPolicy()
    sessions: SessionPolicy = SessionPolicy()
