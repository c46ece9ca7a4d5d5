"""`sluice route explain`: what a route would decide for a text, without calling a model."""

from __future__ import annotations

from sluice.config import SluiceConfig
from sluice.errors import SluiceError
from sluice.routing.features import text_input
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
    lines.append(f"  rules:      {rule.summary if rule else 'no rule matched'}")
    if router.semantic is not None:
        match, best = router.semantic.nearest_sync(text)
        floor = router.config.semantic.min_similarity if router.config.semantic else 0.0
        if match is not None:
            found = f"{match.target} (similarity {match.similarity:.3f}, margin {match.margin:.3f})"
        else:
            found = f"no decision (best similarity {best:.3f}, floor {floor})"
        lines.append(f"  semantic:   {found}")
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
    lines.append(f"reference (savings measured against): {router.reference}")
    return "\n".join(lines)
