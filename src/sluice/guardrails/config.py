"""`guardrails:` settings — which guards run, in which mode, per public model or route.

A leaf (imports only core), so `sluice.config` can include it. Every guard is off by
default: a gateway without a `guardrails:` section has no guard stage at all (zero cost).

    guardrails:
      input_limits: {mode: block, max_messages: 200, max_input_bytes: 1000000}
      pii: {mode: mask}                         # off | flag | mask | block
      injection: {mode: block}                  # off | flag | block
      output: {secrets: block, system_prompt_leak: flag, html: sanitize}
      custom: [{path: "mypkg.guards:NoFrench", mode: flag, options: {threshold: 0.5}}]
      webhooks: [{name: moderation, url: "http://mod:9000/check", fail: open}]
      models:                                   # a public model or route: its own set
        internal-llm: {pii: {mode: "off"}}

A set under `models:` replaces the whole default set for that name (fields it leaves out
take their defaults, not the top-level values): what runs for a model is readable in one
place.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from sluice.config_base import Frozen

Mode = Literal["off", "flag", "block"]
PiiMode = Literal["off", "flag", "mask", "block"]
PiiEntity = Literal["EMAIL", "PHONE", "CARD", "IBAN", "SSN", "IP", "SECRET"]
ContentKind = Literal["text", "image", "file", "audio"]
GuardPhase = Literal["input", "output"]
InjectionSource = Literal["user", "tool", "document", "system"]
_INDIRECT: tuple[InjectionSource, ...] = ("user", "tool", "document")
_INPUT: tuple[GuardPhase, ...] = ("input",)


class InputLimitsConfig(Frozen):
    """Size and shape limits on what a caller may send. A limit left None is not checked.
    Block: 413 for sizes (bytes, tokens, an image), 400 for counts and content types."""

    mode: Mode = "off"
    max_input_tokens: int | None = Field(default=None, gt=0)  # estimated, as limits do
    max_input_bytes: int | None = Field(default=None, gt=0)  # UTF-8 bytes of all text
    max_messages: int | None = Field(default=None, gt=0)
    max_tools: int | None = Field(default=None, ge=0)
    allowed_content: list[ContentKind] | None = None  # None: every kind
    max_image_bytes: int | None = Field(default=None, gt=0)  # decoded size of a data URL


class PiiConfig(Frozen):
    """Personal data and secrets in the request (`mode`) and in the answer (`output`).

    `mask` replaces each value with a placeholder (`<EMAIL_1>`; the same value gets the same
    placeholder within a call) before the request goes upstream and puts the originals
    back in the answer. The mapping lives only in the call's memory."""

    mode: PiiMode = "off"
    entities: list[PiiEntity] | None = None  # None: every kind
    # PII the answer holds that the caller did not send: mask replaces it with `[email]`.
    output: Literal["off", "flag", "mask"] = "off"
    # The most text (UTF-8 bytes, all of a request's texts) scanned per call: hostile text
    # (runs of digits) costs the detector seconds per MB of CPU. Past it, mask and block
    # answer 413 (no value may pass unseen); flag passes with `pii=flag:max_scan_bytes`.
    max_scan_bytes: int = Field(default=2_000_000, gt=0)


InjectionClassifierKind = Literal["sequence", "linear", "combined"]


class InjectionConfig(Frozen):
    """Prompt-injection detection on user text and on indirect text (tool results,
    retrieved documents). `model_check`: ask a model when the score is near the threshold
    (a helper call, charged to the call)."""

    mode: Mode = "off"
    sources: list[InjectionSource] = Field(default_factory=lambda: list(_INDIRECT))
    model_check: bool = False
    model: str | None = None  # the model the model check asks (a served model)
    # Bytes of new text (not seen in an earlier turn) checked per request: more answers 413
    # in block mode; flag mode checks the newest texts up to it and flags `max_scan_bytes`.
    max_scan_bytes: int = Field(default=2_000_000, gt=0)

    @model_validator(mode="after")
    def _model_for_check(self) -> InjectionConfig:
        if self.model_check and not self.model:
            raise ValueError("injection.model_check needs injection.model (the model to ask)")
        return self


class OutputConfig(Frozen):
    """Checks on the answer. Streams hold back at most `window_tokens` (≈4 characters each)
    of text so a check sees a secret or a leaked sentence whole before it is sent."""

    secrets: Mode = "off"  # credentials in the answer (keys, JWTs, private keys)
    system_prompt_leak: Mode = "off"  # a run of the system prompt repeated in the answer
    leak_words: int = Field(default=8, ge=3, le=64)  # words in a row that count as a leak
    html: Literal["off", "sanitize"] = "off"  # strip scripts and event handlers (nh3)
    window_tokens: int = Field(default=64, ge=1, le=4096)


class CustomGuardConfig(Frozen):
    """A guard class by import path (`package.module:Class`), built with `options`."""

    path: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    mode: Mode = "flag"
    options: dict[str, Any] = Field(default_factory=dict)
    phases: list[GuardPhase] = Field(default_factory=lambda: list(_INPUT))


class WebhookGuardConfig(Frozen):
    """An external moderation service: POST {"phase", "model", "text"} → {"flagged": bool,
    "rule": str?}. On a timeout or an error, `fail: open` passes the call, `closed`
    blocks it."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    url: str = Field(pattern=r"^https?://")
    mode: Mode = "flag"
    timeout_s: float = Field(default=2.0, gt=0, le=60)
    fail: Literal["open", "closed"] = "open"
    phases: list[GuardPhase] = Field(default_factory=lambda: list(_INPUT))
    max_chars: int = Field(default=32_000, gt=0)  # text sent to the service, at most


class GuardSet(Frozen):
    """The guards one public model or route runs."""

    input_limits: InputLimitsConfig = InputLimitsConfig()
    pii: PiiConfig = PiiConfig()
    injection: InjectionConfig = InjectionConfig()
    output: OutputConfig = OutputConfig()
    custom: list[CustomGuardConfig] = Field(default_factory=list)
    webhooks: list[WebhookGuardConfig] = Field(default_factory=list)

    @property
    def active(self) -> bool:
        out = self.output
        return (
            self.input_limits.mode != "off"
            or self.pii.mode != "off"
            or self.pii.output != "off"
            or self.injection.mode != "off"
            or out.secrets != "off"
            or out.system_prompt_leak != "off"
            or out.html != "off"
            or any(c.mode != "off" for c in self.custom)
            or any(w.mode != "off" for w in self.webhooks)
        )


class GuardrailsConfig(GuardSet):
    """The default set, and sets of their own for some models or routes."""

    models: dict[str, GuardSet] = Field(default_factory=dict)
    # The injection detector's classifier behind its rules, one for the whole gateway (one
    # model in memory): `sequence` (fine-tuned MiniLM: higher recall on phrasings by other
    # authors), `linear` (a head on the shared embedding: fewer false positives on the
    # held-out templates), `combined` (documents and tool results need both to agree).
    # Measured side by side: BENCHMARKS.md, "Injection round 4" and its rounds 5-6.
    injection_classifier: InjectionClassifierKind = "sequence"

    @field_validator("webhooks")
    @classmethod
    def _unique_names(cls, hooks: list[WebhookGuardConfig]) -> list[WebhookGuardConfig]:
        names = [h.name for h in hooks]
        if len(names) != len(set(names)):
            raise ValueError("webhook guard names must be unique")
        return hooks

    @property
    def enabled(self) -> bool:
        return self.active or any(s.active for s in self.models.values())

    def for_model(self, model: str) -> GuardSet:
        return self.models.get(model, self)
