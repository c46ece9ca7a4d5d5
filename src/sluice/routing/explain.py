"""`sluice route explain`: what a route would decide for a text, without calling a model."""

from __future__ import annotations

from sluice.config import SluiceConfig
from sluice.embed.base import EmbedderUnavailableError
from sluice.errors import SluiceError
from sluice.routing.features import RouteInput, text_input
from sluice.routing.router import Router
from sluice.routing.stage import build_routers


def explain(
    config: SluiceConfig, route: str, text: str, task: str | None = None, tier: str | None = None
) -> str:
    if route not in config.routes:
        known = ", ".join(sorted(config.routes)) or "none"
        raise ValueError(f"no route named {route!r} (routes: {known})")
    router = build_routers(config)[route]
    inp = text_input(text, task, tier)
    lines = [f"route {route}: ~{inp.input_tokens} input tokens, task={task}, tier={tier}"]
    rule = router.by_rules(inp)
    note = ""
    if rule is not None and router.config.learned is not None and not router.by_intent_rules(inp):
        note = " (keywords only: counts only where the learned model is unsure)"
    lines.append(f"  rules:      {rule.summary + note if rule else 'no rule matched'}")
    if router.semantic is not None:
        match, best = router.semantic.nearest_sync(text)
        floor = router.config.semantic.min_similarity if router.config.semantic else 0.0
        if match is not None:
            found = f"{match.target} (similarity {match.similarity:.3f}, margin {match.margin:.3f})"
        else:
            found = f"no decision (best similarity {best:.3f}, floor {floor})"
        lines.append(f"  semantic:   {found}")
    if router.config.learned is not None:
        lines += _learned_lines(router, inp)
    if router.config.classifier is not None:
        lines.append(f"  classifier: would ask {router.config.classifier.model} (not called here)")
    try:
        decision = router.decide_sync(inp)
    except SluiceError as err:
        lines.append(f"decision: refused ({err.message})")
        return "\n".join(lines)
    lines.append(f"decision: {decision.summary}")
    cascade = router.cascade
    if cascade is not None and decision.target == cascade.cheap and decision.strategy != "budget":
        lines.append(f"cascade: {cascade.cheap} first, escalating to {cascade.strong} if unsure")
    if decision.self_check and router.learned is not None:
        cfg = router.learned.config
        lines.append(f"self-check: {cfg.cheap} answers or says UNCERTAIN -> {cfg.strong}")
    lines.append(f"reference (savings measured against): {router.reference}")
    return "\n".join(lines)


def _learned_lines(router: Router, inp: RouteInput) -> list[str]:
    cfg = router.config.learned
    assert cfg is not None
    intent = router.by_intent_rules(inp)
    if intent is not None:
        return [f"  learned:    not consulted (explicit intent: {intent.reason})"]
    if router.learned is None:
        return [f"  learned:    unavailable ({router.learned_error}); the route sends {cfg.strong}"]
    try:
        verdict, terms = router.learned.explain(inp)
    except EmbedderUnavailableError as exc:
        return [f"  learned:    unavailable ({exc}); the route sends {cfg.strong}"]
    weights = router.learned.weights
    strong_below, cheap_below = weights.share_below(verdict.threshold)
    source = (
        f"set by threshold: {cfg.threshold}"
        if cfg.threshold is not None
        else f"from max_strong_to_cheap {cfg.max_strong_to_cheap:.1%}"
    )
    pushed = ", ".join(f"{t.name} {t.value:+.2f}" for t in terms[:6])
    band = f"within {cfg.self_check_band} logits below" if cfg.self_check_band else "off"
    return [
        f"  learned:    {verdict.reason} -> {verdict.target} "
        f"(margin {verdict.margin:+.2f} logits, confident at {cfg.confident_logit})",
        f"              threshold {verdict.threshold:.3f} {source}; on the calibration split "
        f"{strong_below:.1%} of strong-needed and {cheap_below:.1%} of simple prompts are below",
        f"              pushed by (logits): {pushed}",
        f"              model: {weights.card.get('version', '?')} "
        f"({weights.card.get('train', {}).get('rows', '?')} training rows); self-check {band}",
    ]
