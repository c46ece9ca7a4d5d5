"""Route config: a public model name whose strategies pick, per request, the model to run.

Used under `routes.<name>` in the config file. Strategies are tried in a fixed order —
rules, then semantic, then classifier — and the first that decides wins; nothing deciding
means `default`. With `learned`, explicit-intent rules go first, then the learned model
decides; keyword-only rules count only where it is unsure. Budget and context checks then
adjust the pick, and a cascade may start cheap and escalate. Every target is a public model
name served by this gateway.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from sluice.config_base import Frozen
from sluice.context.config import TokenPolicy
from sluice.eval.config import OnlineEvalConfig, ShadowConfig


class RuleConfig(Frozen):
    """Every condition given must hold (AND); a rule with no condition is refused."""

    target: str
    name: str | None = None  # shown in the decision; default: the conditions
    tasks: list[str] | None = None  # `x-sluice-task` header or `metadata.task`
    keywords: list[str] | None = None  # any of these words/phrases, case-insensitive
    regex: str | None = None  # searched in the last user message
    min_input_tokens: int | None = Field(default=None, ge=0)
    max_input_tokens: int | None = Field(default=None, ge=0)
    tools: bool | None = None  # the request carries tool definitions (or not)
    images: bool | None = None  # the request carries images (or not)
    tiers: list[str] | None = None  # the caller's key tier

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"regex {value!r} does not compile: {exc}") from None
        return value

    @model_validator(mode="after")
    def _has_condition(self) -> RuleConfig:
        conditions = (
            self.tasks, self.keywords, self.regex, self.min_input_tokens,
            self.max_input_tokens, self.tools, self.images, self.tiers,
        )  # fmt: skip
        if all(c is None for c in conditions):
            raise ValueError("a rule needs at least one condition")
        return self


class SemanticConfig(Frozen):
    """Nearest centroid of example utterances per target (all-MiniLM-L6-v2, offline)."""

    examples: dict[str, list[str]]  # target → example requests
    min_similarity: float = Field(default=0.3, ge=-1, le=1)  # below: not decided here
    # Also require the best centroid to beat the runner-up by this much.
    min_margin: float = Field(default=0.0, ge=0, le=2)

    @field_validator("examples")
    @classmethod
    def _non_empty(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        if len(value) < 1 or any(not texts for texts in value.values()):
            raise ValueError("give at least one example for every target")
        return value


_DEFAULT_CLASSIFIER_PROMPT = (
    "Label the user's request. Answer with exactly one label and nothing else. Labels: "
    "SIMPLE (a short answer, lookup, rewrite, classification, extraction, translation or "
    "summary), COMPLEX (multi-step reasoning, math, code design or debugging, long analysis)."
)


class ClassifierConfig(Frozen):
    """A cheap model labels the request; a failed or slow call falls through, never blocks."""

    model: str  # a public model of this gateway
    labels: dict[str, str] = Field(min_length=1)  # label → target, e.g. SIMPLE: gpt-4o-mini
    prompt: str = _DEFAULT_CLASSIFIER_PROMPT
    timeout_s: float = Field(default=1.0, gt=0)
    max_tokens: int = Field(default=4, ge=1, le=32)
    max_input_chars: int = Field(default=2000, ge=1)  # of the last user message
    cache_size: int = Field(default=10_000, ge=0)  # labels kept per distinct text
    cache_ttl_s: float = Field(default=3600.0, gt=0)

    @field_validator("labels")
    @classmethod
    def _upper(cls, value: dict[str, str]) -> dict[str, str]:
        return {label.strip().upper(): target for label, target in value.items()}


class CascadeConfig(Frozen):
    """Cheap first: answer with `cheap`; escalate to `strong` when the answer is unsure."""

    cheap: str
    strong: str
    marker: str | None = "UNCERTAIN"  # a leading marker: escalate (stripped when kept)
    # Escalate when the mean token logprob is below this (providers that return logprobs).
    min_mean_logprob: float | None = Field(default=None, le=0)
    on_invalid_output: bool = True  # escalate when structured-output validation fails
    # Added to the cheap call's system prompt, e.g. how to signal doubt with the marker.
    instruction: str | None = None


_SELF_CHECK = (
    "Before answering, judge whether you can answer this fully and correctly. If the request "
    "needs careful multi-step reasoning, non-trivial code, maths or analysis that you might "
    "get wrong, reply with exactly UNCERTAIN and nothing else. Otherwise answer normally."
)


class LearnedConfig(Frozen):
    """P(strong model needed | prompt) from a small trained model; see routing/learned.py.

    The threshold comes from the model's calibration curve: the highest one that sent at
    most `max_strong_to_cheap` of the calibration split's strong-needed prompts to `cheap`.
    """

    cheap: str
    strong: str
    weights: str | None = None  # a .npz from `sluice route train`; None: the shipped model
    # Target share of strong-needed prompts allowed to go cheap (the cost/quality knob).
    max_strong_to_cheap: float = Field(default=0.02, ge=0, le=1)
    threshold: float | None = Field(default=None, gt=0, lt=1)  # set: overrides the knob
    # |logit(P) - logit(threshold)| at or above this is confident: keyword-only rules are
    # consulted only below it (explicit intent — tasks, tools, images, tiers — always wins).
    confident_logit: float = Field(default=1.5, ge=0)
    # Cheap picks within this many logits of the threshold run a self-check: the cheap model
    # answers or says UNCERTAIN, and UNCERTAIN escalates to `strong` (a one-off cascade).
    self_check_band: float | None = Field(default=None, gt=0)
    self_check_instruction: str = _SELF_CHECK


class RouteConfig(Frozen):
    targets: list[str] = Field(min_length=1)  # public models this route may pick
    default: str
    # The strong model savings are measured against; default: the dearest target.
    reference: str | None = None
    rules: list[RuleConfig] = Field(default_factory=list)
    semantic: SemanticConfig | None = None
    classifier: ClassifierConfig | None = None
    learned: LearnedConfig | None = None  # decides before semantic/classifier when set
    cascade: CascadeConfig | None = None
    budget_aware: bool = True  # over a soft budget → the cheapest target that fits
    context_aware: bool = True  # too long for the pick → a target whose window fits
    policy: TokenPolicy = TokenPolicy()
    # Live evaluation (sluice.eval.live): mirror to a candidate, judge a sample of answers.
    shadow: ShadowConfig | None = None
    online_eval: OnlineEvalConfig | None = None

    @model_validator(mode="after")
    def _targets_known(self) -> RouteConfig:
        known = set(self.targets)
        named = [("default", self.default)]
        named += [("reference", self.reference)] if self.reference else []
        named += [(f"rules[{i}].target", r.target) for i, r in enumerate(self.rules)]
        if self.semantic is not None:
            named += [("semantic.examples", t) for t in self.semantic.examples]
        if self.classifier is not None:
            named += [("classifier.labels", t) for t in self.classifier.labels.values()]
        if self.learned is not None:
            named += [
                ("learned.cheap", self.learned.cheap),
                ("learned.strong", self.learned.strong),
            ]
        if self.cascade is not None:
            named += [
                ("cascade.cheap", self.cascade.cheap),
                ("cascade.strong", self.cascade.strong),
            ]
        for where, target in named:
            if target not in known:
                raise ValueError(f"{where}: {target!r} is not one of the route's targets")
        return self
