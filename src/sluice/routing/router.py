"""`Router`: one route's decision, strategy by strategy, then budget and context checks.

Order: rules → semantic → classifier → default. The first strategy that decides wins.
With a `learned` model: explicit-intent rules (tasks, tools, images, tiers, sizes) → the
model; a keyword-only rule counts only when the model is unsure, so a generic word never
overturns a confident decision. When the model cannot load, the route fails safe: strong.
Then, when the caller is over a soft budget, the cheapest target that fits wins; and when
the pick cannot hold the request (estimated input + requested output over its context
window), a target whose window fits replaces it — or the request is refused with a 400.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sluice.embed.base import EmbedderUnavailableError
from sluice.errors import InvalidRequestError
from sluice.routing.classifier import Classifier, Complete
from sluice.routing.config import CascadeConfig, LearnedConfig, RouteConfig
from sluice.routing.features import RouteInput, text_input
from sluice.routing.rules import Rule, first_match
from sluice.routing.semantic import SemanticMatch, SemanticRouter
from sluice.routing.targets import Target
from sluice.types import CallMeta

if TYPE_CHECKING:
    from sluice.embed import Embedder
    from sluice.routing.learned import LearnedRouter, LearnedVerdict

log = logging.getLogger("sluice.routing")


@dataclass(frozen=True, slots=True)
class Decision:
    target: str
    strategy: str  # rules | learned | semantic | classifier | default | budget | context
    reason: str
    self_check: bool = False  # learned, cheap, near the threshold: the cheap model self-checks

    @property
    def summary(self) -> str:
        """`strategy: reason -> target`, as sent in `x-sluice-route-decision`."""
        return f"{self.strategy}: {self.reason} -> {self.target}"


class Router:
    def __init__(
        self,
        name: str,
        config: RouteConfig,
        targets: dict[str, Target],
        *,
        embedder: Embedder | None = None,
        complete: Complete | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.targets = {t: targets[t] for t in config.targets}
        self.rules = [Rule.from_config(r) for r in config.rules]
        self.semantic: SemanticRouter | None = None
        if config.semantic is not None:
            if embedder is None:
                from sluice.embed import get_embedder

                embedder = get_embedder()
            self.semantic = SemanticRouter(config.semantic, embedder)
        self.learned: LearnedRouter | None = None
        self.learned_error: str | None = None  # why the learned model could not load
        if config.learned is not None:
            self._load_learned(config.learned, embedder)
        self.classifier = (
            Classifier(config.classifier, complete)
            if config.classifier is not None and complete is not None
            else None
        )
        self.reference = config.reference or max(
            config.targets, key=lambda t: self.targets[t].unit_cost
        )
        self._cheapest = sorted(config.targets, key=lambda t: self.targets[t].unit_cost)

    def _load_learned(self, cfg: LearnedConfig, embedder: Embedder | None) -> None:
        try:
            from sluice.routing.learned import LearnedRouter

            if embedder is None:
                from sluice.embed import get_embedder

                embedder = get_embedder()
            self.learned = LearnedRouter(cfg, embedder)
        except (ImportError, EmbedderUnavailableError, ValueError, OSError) as exc:
            # Fail safe, never open: every request of this route goes to the strong model.
            self.learned_error = f"{type(exc).__name__}: {exc}"
            log.warning("route %s: learned model unavailable (%s)", self.name, exc)

    @property
    def cascade(self) -> CascadeConfig | None:
        return self.config.cascade

    async def prepare(self) -> None:
        if self.semantic is not None:
            await self.semantic.prepare()
        if self.learned is not None:
            try:
                await self.learned.decide(text_input("warm up"))  # loads the embedding model
            except EmbedderUnavailableError as exc:  # each decision then says so, fails safe
                log.warning("route %s: embedding model unavailable (%s)", self.name, exc)

    # --- strategies ------------------------------------------------------------------

    def by_rules(self, inp: RouteInput) -> Decision | None:
        rule = first_match(self.rules, inp)
        return None if rule is None else Decision(rule.target, "rules", rule.label)

    def by_semantic_sync(self, inp: RouteInput) -> Decision | None:
        if self.semantic is None or not inp.text:
            return None
        match, _ = self.semantic.nearest_sync(inp.text)
        return _semantic(match)

    async def decide(self, inp: RouteInput, meta: CallMeta | None = None) -> Decision:
        if self.config.learned is not None:
            return self.adjust(await self._decide_learned(inp), inp)
        decision = self.by_rules(inp)
        if decision is None and self.semantic is not None and inp.text:
            match, _ = await self.semantic.nearest(inp.text)
            decision = _semantic(match)
        if decision is None and self.classifier is not None:
            verdict = await self.classifier.classify(inp.text, meta)
            if verdict.target is not None:
                decision = Decision(verdict.target, "classifier", verdict.reason)
            else:
                decision = Decision(self.config.default, "default", verdict.reason)
        return self.adjust(decision or self.default_decision(), inp)

    def decide_sync(self, inp: RouteInput) -> Decision:
        """Rules, learned and semantic, no model call (benchmarks, `sluice route explain`)."""
        if self.config.learned is not None:
            return self.adjust(self._decide_learned_sync(inp), inp)
        decision = self.by_rules(inp) or self.by_semantic_sync(inp)
        return self.adjust(decision or self.default_decision(), inp)

    # --- learned: explicit intent, then the model, keywords only where it is unsure ----

    async def _decide_learned(self, inp: RouteInput) -> Decision:
        intent = self.by_intent_rules(inp)
        if intent is not None:
            return intent
        if self.learned is None:
            return self._learned_unavailable(self.learned_error or "not loaded")
        try:
            verdict = await self.learned.decide(inp)
        except EmbedderUnavailableError as exc:
            return self._learned_unavailable(str(exc))
        return self.after_verdict(verdict, inp)

    def _decide_learned_sync(self, inp: RouteInput) -> Decision:
        intent = self.by_intent_rules(inp)
        if intent is not None:
            return intent
        if self.learned is None:
            return self._learned_unavailable(self.learned_error or "not loaded")
        try:
            verdict = self.learned.decide_sync(inp)
        except EmbedderUnavailableError as exc:
            return self._learned_unavailable(str(exc))
        return self.after_verdict(verdict, inp)

    def by_intent_rules(self, inp: RouteInput) -> Decision | None:
        """The first matching rule that states explicit intent (not keywords alone)."""
        rule = first_match([r for r in self.rules if not r.keyword_only], inp)
        return None if rule is None else Decision(rule.target, "rules", rule.label)

    def after_verdict(self, verdict: LearnedVerdict, inp: RouteInput) -> Decision:
        """The learned pick; a keyword-only rule may overturn it only when it is unsure."""
        if not verdict.confident:
            rule = first_match([r for r in self.rules if r.keyword_only], inp)
            if rule is not None:
                why = f"{rule.label} (learned unsure: {verdict.reason})"
                return Decision(rule.target, "rules", why)
        return Decision(verdict.target, "learned", verdict.reason, self_check=verdict.self_check)

    def _learned_unavailable(self, why: str) -> Decision:
        assert self.config.learned is not None
        return Decision(self.config.learned.strong, "learned", f"model unavailable ({why})")

    def default_decision(self) -> Decision:
        return Decision(self.config.default, "default", "no strategy decided")

    # --- checks after the pick ---------------------------------------------------------

    def adjust(self, decision: Decision, inp: RouteInput) -> Decision:
        cfg = self.config
        need = inp.tokens_needed
        if cfg.budget_aware and inp.over_soft_budget:
            fitting = [t for t in self._cheapest if self.targets[t].fits(need)]
            if fitting and fitting[0] != decision.target:
                why = f"over soft budget; {decision.strategy} picked {decision.target}"
                return Decision(fitting[0], "budget", why)
        if not cfg.context_aware or self.targets[decision.target].fits(need):
            return decision
        return Decision(
            self._fitting(decision.target, need), "context", self._too_long(decision, need)
        )

    def fits(self, target: str, inp: RouteInput) -> bool:
        return self.targets[target].fits(inp.tokens_needed)

    def _fitting(self, chosen: str, need: int) -> str:
        fitting = [t for t in self._cheapest if self.targets[t].fits(need)]
        if not fitting:
            largest = max((t.context_window or 0) for t in self.targets.values())
            raise InvalidRequestError(
                f"the request needs about {need} tokens (input estimate plus max output); the "
                f"largest context window among route {self.name!r}'s models is {largest}",
                code="context_length_exceeded",
                param="messages",
            )
        floor = self.targets[chosen].unit_cost
        return next((t for t in fitting if self.targets[t].unit_cost >= floor), fitting[-1])

    def _too_long(self, decision: Decision, need: int) -> str:
        window = self.targets[decision.target].context_window
        return f"~{need} tokens exceed {decision.target}'s window of {window}"


def _semantic(match: SemanticMatch | None) -> Decision | None:
    if match is None:
        return None
    return Decision(match.target, "semantic", f"similarity {match.similarity:.2f}")
