"""Simulator settings: per-model latency, answer length, limits, and fault injection.

Validated once at start-up with pydantic; the request hot path only reads plain
attributes, so per-request cost is nil. Unknown model names are served by
`default_model`, renamed, so any model string a client sends gets an answer.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FaultKind = Literal["429", "500", "502", "503", "529", "hang", "malformed", "cut", "refuse"]
FAULT_KINDS: tuple[str, ...] = (
    "429",
    "500",
    "502",
    "503",
    "529",
    "hang",
    "malformed",
    "cut",
    "refuse",
)
DEFAULT_FAULTS: tuple[FaultKind, ...] = ("429", "500", "503")
DEFAULT_PORT = 8089


class SimModel(BaseModel):
    """How one simulated model behaves."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    ttft_ms: float = Field(default=0.0, ge=0)  # wait before the first token
    tokens_per_s: float = Field(default=0.0, ge=0)  # 0 = infinitely fast
    output_tokens: int = Field(default=24, ge=0)  # answer length when max_tokens allows
    rpm_limit: int = Field(default=0, ge=0)  # requests per minute, 0 = unlimited
    tpm_limit: int = Field(default=0, ge=0)  # tokens per minute, 0 = unlimited
    context_window: int = Field(default=128_000, gt=0)

    @property
    def limited(self) -> bool:
        return self.rpm_limit > 0 or self.tpm_limit > 0


def _builtin_models() -> dict[str, SimModel]:
    return {
        "gpt-4o-mini": SimModel(name="gpt-4o-mini"),
        "gpt-4o": SimModel(name="gpt-4o"),
        "claude-3-5-haiku-latest": SimModel(name="claude-3-5-haiku-latest", context_window=200_000),
        "claude-sonnet-4-5": SimModel(name="claude-sonnet-4-5", context_window=200_000),
    }


class SimBatchConfig(BaseModel):
    """The batch APIs' timing and faults (sluice.sim.batches); headers override per batch."""

    model_config = ConfigDict(extra="forbid")

    validating_ms: float = Field(default=0.0, ge=0)  # OpenAI `validating` before work starts
    duration_ms: float = Field(default=0.0, ge=0)  # the whole batch; items finish evenly
    fail_every: int = Field(default=0, ge=0)  # every N-th item fails (0: none)
    expire: bool = False  # every batch ends `expired`
    poll_5xx: int = Field(default=0, ge=0)  # first N polls of each batch answer 500


class SimConfig(BaseModel):
    """Whole-simulator settings; `models` keys are the model names clients send."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    models: dict[str, SimModel] = Field(default_factory=_builtin_models)
    default_model: SimModel = Field(default_factory=SimModel)  # template for unknown names
    fault_rate: float = Field(default=0.0, ge=0, le=1)
    faults: list[FaultKind] = Field(default_factory=lambda: list(DEFAULT_FAULTS))
    seed: int = 0
    hang_s: float = Field(default=300.0, ge=0)
    batch: SimBatchConfig = Field(default_factory=SimBatchConfig)  # provider batch APIs

    @field_validator("faults", mode="before")
    @classmethod
    def _split_faults(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _name_models(self) -> SimConfig:
        for key, model in self.models.items():
            if model.name != key:
                self.models[key] = model.model_copy(update={"name": key})
        return self

    def with_latency(
        self,
        ttft_ms: float | None = None,
        tokens_per_s: float | None = None,
        output_tokens: int | None = None,
    ) -> SimConfig:
        """A copy with the given latency/length applied to every model and the template."""
        update: dict[str, float | int] = {}
        if ttft_ms is not None:
            update["ttft_ms"] = ttft_ms
        if tokens_per_s is not None:
            update["tokens_per_s"] = tokens_per_s
        if output_tokens is not None:
            update["output_tokens"] = output_tokens
        if not update:
            return self
        return self.model_copy(
            update={
                "models": {k: m.model_copy(update=update) for k, m in self.models.items()},
                "default_model": self.default_model.model_copy(update=update),
            }
        )

    def with_limits(self, rpm_limit: int | None = None, tpm_limit: int | None = None) -> SimConfig:
        """A copy with the given rate limits applied to every model and the template."""
        update: dict[str, int] = {}
        if rpm_limit is not None:
            update["rpm_limit"] = rpm_limit
        if tpm_limit is not None:
            update["tpm_limit"] = tpm_limit
        if not update:
            return self
        return self.model_copy(
            update={
                "models": {k: m.model_copy(update=update) for k, m in self.models.items()},
                "default_model": self.default_model.model_copy(update=update),
            }
        )


def default_config() -> SimConfig:
    """The built-in simulator config: four models, zero latency, no faults."""
    return SimConfig()
