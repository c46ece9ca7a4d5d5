"""Rules: the first rule whose every condition holds picks the target."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sluice.routing.config import RuleConfig
from sluice.routing.features import RouteInput


@dataclass(frozen=True, slots=True)
class Rule:
    target: str
    label: str
    tasks: frozenset[str] | None
    pattern: re.Pattern[str] | None  # keywords and regex, compiled once
    min_tokens: int | None
    max_tokens: int | None
    tools: bool | None
    images: bool | None
    tiers: frozenset[str] | None

    @classmethod
    def from_config(cls, cfg: RuleConfig) -> Rule:
        patterns = []
        if cfg.keywords:
            words = "|".join(re.escape(k.strip()) for k in cfg.keywords if k.strip())
            patterns.append(rf"\b(?:{words})\b")
        if cfg.regex:
            patterns.append(cfg.regex)
        return cls(
            target=cfg.target,
            label=cfg.name or _describe(cfg),
            tasks=frozenset(t.lower() for t in cfg.tasks) if cfg.tasks is not None else None,
            pattern=re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
            if patterns
            else None,
            min_tokens=cfg.min_input_tokens,
            max_tokens=cfg.max_input_tokens,
            tools=cfg.tools,
            images=cfg.images,
            tiers=frozenset(cfg.tiers) if cfg.tiers is not None else None,
        )

    @property
    def keyword_only(self) -> bool:
        """Only words decide (keywords/regex): generic, never stronger than a confident model."""
        return self.pattern is not None and all(
            c is None
            for c in (
                self.tasks,
                self.min_tokens,
                self.max_tokens,
                self.tools,
                self.images,
                self.tiers,
            )
        )

    def matches(self, inp: RouteInput) -> bool:
        if self.tasks is not None and inp.task not in self.tasks:
            return False
        if self.tools is not None and inp.tools != self.tools:
            return False
        if self.images is not None and inp.images != self.images:
            return False
        if self.tiers is not None and inp.tier not in self.tiers:
            return False
        if self.min_tokens is not None and inp.input_tokens < self.min_tokens:
            return False
        if self.max_tokens is not None and inp.input_tokens > self.max_tokens:
            return False
        return self.pattern is None or self.pattern.search(inp.text) is not None


def first_match(rules: list[Rule], inp: RouteInput) -> Rule | None:
    for rule in rules:
        if rule.matches(inp):
            return rule
    return None


def _describe(cfg: RuleConfig) -> str:
    parts = []
    if cfg.tasks is not None:
        parts.append("task=" + "|".join(cfg.tasks))
    if cfg.keywords:
        parts.append("keyword")
    if cfg.regex:
        parts.append("regex")
    if cfg.min_input_tokens is not None:
        parts.append(f"input_tokens>={cfg.min_input_tokens}")
    if cfg.max_input_tokens is not None:
        parts.append(f"input_tokens<={cfg.max_input_tokens}")
    if cfg.tools is not None:
        parts.append(f"tools={str(cfg.tools).lower()}")
    if cfg.images is not None:
        parts.append(f"images={str(cfg.images).lower()}")
    if cfg.tiers is not None:
        parts.append("tier=" + "|".join(cfg.tiers))
    return ",".join(parts)
