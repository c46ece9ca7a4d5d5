"""Prompt-injection detection: fast rules, a fine-tuned classifier, an optional model check.

Why layered: rules name known attacks exactly and cost ~1 ms; the classifier (MiniLM
fine-tuned as a sequence classifier, int8 ONNX, `sequence.py`; round 3's linear head on the
shared MiniLM vectors stays as `kind="linear"`; `kind="combined"` asks it to confirm what the
sequence model flags in tool results and documents) catches paraphrases the rules do not list;
a cheap model call, injected by the caller, settles only the uncertain band where the
classifier is not sure. Each verdict names the layer and rule that decided, so a block can say
*why* (`prompt_injection_detected`, rule `ignore_previous`).

`source` says where the text came from: "user", "tool" (tool results), "document" (retrieved
text) or "system". Tool results and documents are scored like user text (indirect injection:
imperatives aimed at the assistant inside data); "system" text is the operator's own and is
only checked for hidden (Unicode tag) payloads.

Bounded on hostile input: the rules scan at most `rules.MAX_SCAN_CHARS` (head + tail), encoded
blobs are decoded a bounded number of times and depth, and the classifier embeds at most
`classifier.MAX_WINDOWS` windows of `classifier.WINDOW_CHARS`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sluice.guardrails.config import InjectionClassifierKind
from sluice.guardrails.injection import rules
from sluice.guardrails.injection.classifier import InjectionClassifier, SyncEmbedder
from sluice.guardrails.injection.model_check import Ask, model_check
from sluice.guardrails.injection.sequence import SequenceClassifier

log = logging.getLogger(__name__)

__all__ = [
    "COMBINED_LINEAR_THRESHOLD",
    "COMBINED_THRESHOLD",
    "DEFAULT_THRESHOLD",
    "LINEAR_THRESHOLD",
    "ClassifierKind",
    "InjectionDetector",
    "InjectionVerdict",
    "Source",
]

Source = Literal["user", "tool", "document", "system"]
ClassifierKind = InjectionClassifierKind  # one list of kinds: the config's
KINDS: tuple[str, ...] = ("sequence", "linear", "combined")
SOURCES: frozenset[str] = frozenset({"user", "tool", "document", "system"})

# Round 4: the fine-tuned sequence classifier (`sequence.py`), int8 as shipped. Chosen on the
# dev set (`tests/data/injection/dev.jsonl` + the dev half of bastioncorpus) as the lowest
# threshold whose combined (rules + classifier) false-positive rate there is <= 2%: 0.99
# flagged 3 of 116 benign dev rows, 0.995 flagged 2 (1 by the rules), catching 146 of 157.
# See tests/data/injection/README.md, the model card and BENCHMARKS.md "Injection round 4".
DEFAULT_THRESHOLD = 0.995
# Round 3's linear head on the shared MiniLM embedding (`classifier.py`, `kind="linear"`),
# chosen the same way on the same dev set; kept for hosts without the ONNX model file.
LINEAR_THRESHOLD = 0.97
# Round 6, `kind="combined"`: user text is flagged when the sequence model scores >= 0.997;
# tool results and documents also need the linear head to agree (>= 0.97). Chosen on the same
# dev set (lowest dev FPR, then most catches: 1 of 116 benign, by a rule; 141 of 157 caught).
# Not the default: on the evaluation sets it caught fewer than "sequence" and removed no false
# positive (the held-out ones are role-play in user turns). BENCHMARKS.md "Round 6".
COMBINED_THRESHOLD = 0.997
COMBINED_LINEAR_THRESHOLD = 0.97
# Text the linear head must confirm under `kind="combined"` (indirect text: data, not a turn).
_CONFIRMED_SOURCES = frozenset({"tool", "document"})
# Below the threshold, scores at or above this go to the optional model check.
DEFAULT_UNCERTAIN_FLOOR = 0.5


@dataclass(frozen=True)
class InjectionVerdict:
    """The outcome of one check.

    `score` is a calibrated probability of injection (0..1); `rule` names what decided
    ("ignore_previous", "system_prompt_extraction", "encoded_payload", "classifier", ...) or
    is None when nothing fired; `layer` is "rule", "classifier" or "model".
    """

    flagged: bool
    score: float
    rule: str | None
    layer: str


class InjectionDetector:
    """Rules, then the classifier, then (async only) a model check in the uncertain band.

    `threshold`: classifier probability at or above which text is flagged. `model_check`: an
    async callable (text -> is it an injection?) the caller injects and costs; it is asked only
    when the classifier's score lies in [uncertain_floor, threshold) and no rule fired.
    `use_classifier=False` keeps only the rules (no model needed, ~1 ms). `gate=True` runs
    the classifier only on text with an injection cue (`rules.needs_classifier`): ordinary
    prompts skip it. `kind`: "sequence" (default: the fine-tuned MiniLM, `sequence.py`;
    `model_path` overrides its ONNX file) or "linear" (round 3's head on the shared embedding,
    `classifier.py`; `embedder`, `weights_path`) or "combined" (the sequence model, and on
    tool results / documents the linear head must also reach `linear_threshold`: it runs only
    there, on text the sequence model flagged). `threshold` defaults per kind. A combined
    verdict the linear head vetoed carries the linear score, so a disagreement at or above
    `uncertain_floor` goes to the model check.
    """

    def __init__(
        self,
        threshold: float | None = None,
        model_check: Callable[[str], Awaitable[bool]] | None = None,
        *,
        uncertain_floor: float = DEFAULT_UNCERTAIN_FLOOR,
        use_classifier: bool = True,
        gate: bool = True,
        model_timeout_s: float = 10.0,
        embedder: SyncEmbedder | None = None,
        weights_path: str | None = None,
        kind: ClassifierKind = "sequence",
        model_path: str | None = None,
        linear_threshold: float = COMBINED_LINEAR_THRESHOLD,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {str(kind)[:40]!r}")
        if threshold is None:
            threshold = {"sequence": DEFAULT_THRESHOLD, "linear": LINEAR_THRESHOLD}.get(
                kind, COMBINED_THRESHOLD
            )
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        if not 0.0 < linear_threshold <= 1.0:
            raise ValueError("linear_threshold must be in (0, 1]")
        if not 0.0 <= uncertain_floor <= threshold:
            raise ValueError("uncertain_floor must be in [0, threshold]")
        self.threshold = threshold
        self.uncertain_floor = uncertain_floor
        self.model_check = model_check
        self.gate = gate
        self.model_timeout_s = model_timeout_s
        self._warned_no_model = False
        self.kind = kind
        self.linear_threshold = linear_threshold
        self.classifier: InjectionClassifier | SequenceClassifier | None = None
        # `kind="combined"`: the linear head that must confirm a flag on indirect text.
        self.confirmer: InjectionClassifier | None = None
        if use_classifier and kind == "linear":
            self.classifier = InjectionClassifier(embedder, weights_path)
        elif use_classifier:
            self.classifier = SequenceClassifier(Path(model_path) if model_path else None)
            if kind == "combined":
                self.confirmer = InjectionClassifier(embedder, weights_path)

    def load(self) -> None:
        """Load the classifier (and its model) now, so the first request does not pay for it."""
        for model in (self.classifier, self.confirmer):
            if model is not None:
                model.load()

    def check_rules(self, text: str, *, source: str = "user") -> InjectionVerdict | None:
        """The rule layer alone: a flagged verdict, or None when no unquoted rule fired."""
        _check_source(source)
        hits = rules.scan(text, data=source in ("tool", "document"))
        if source == "system":
            hits = [h for h in hits if h.rule == "invisible_unicode"]
        decisive = [h for h in hits if not h.quoted]
        if not decisive:
            return None
        best = max(decisive, key=lambda h: h.confidence)
        return InjectionVerdict(True, best.confidence, best.rule, "rule")

    def check(self, text: str, *, source: str = "user") -> InjectionVerdict:
        """Fast path, synchronous: rules, then the classifier (no model call)."""
        verdict, window = self._before_classifier(text, source)
        if verdict is not None:
            return verdict
        assert window is not None
        return self.classify_window(window, source)

    def classify_window(self, window: str, source: str = "user") -> InjectionVerdict:
        """The classifier layer alone on a normalized scan window (`check` past the rules
        and the gate; the bench scores layers with it)."""
        assert self.classifier is not None
        score = self.classifier.probability(window)
        if self._confirm(score, source):
            assert self.confirmer is not None
            return self._confirmed(score, self.confirmer.probability(window))
        return self._classified(score)

    async def _classify_window_async(self, window: str, source: str) -> InjectionVerdict:
        assert self.classifier is not None
        score = await self.classifier.probability_async(window)
        if self._confirm(score, source):
            assert self.confirmer is not None
            return self._confirmed(score, await self.confirmer.probability_async(window))
        return self._classified(score)

    def _confirm(self, score: float, source: str) -> bool:
        """Whether the linear head must confirm this flag (combined kind, indirect text)."""
        return (
            self.confirmer is not None and score >= self.threshold and source in _CONFIRMED_SOURCES
        )

    def _confirmed(self, score: float, linear: float) -> InjectionVerdict:
        if linear >= self.linear_threshold:
            return self._classified(score)
        return InjectionVerdict(False, linear, None, "classifier")

    def _before_classifier(
        self, text: str, source: str
    ) -> tuple[InjectionVerdict | None, str | None]:
        """A final verdict (rule hit, or nothing for the classifier to do), else its input."""
        verdict = self.check_rules(text, source=source)
        if verdict is not None:
            return verdict, None
        if self.classifier is None or source == "system" or not text.strip():
            return InjectionVerdict(False, 0.0, None, "rule"), None
        window = rules.normalize(rules.scan_window(text))
        if self.gate and not rules.needs_classifier(window):
            return InjectionVerdict(False, 0.0, None, "rule"), None
        return None, window

    def _classified(self, score: float) -> InjectionVerdict:
        flagged = score >= self.threshold
        return InjectionVerdict(flagged, score, "classifier" if flagged else None, "classifier")

    def uncertain(self, verdict: InjectionVerdict) -> bool:
        """Whether a verdict is one the model check would be asked about."""
        return (
            verdict.layer == "classifier" and self.uncertain_floor <= verdict.score < self.threshold
        )

    async def check_async(self, text: str, *, source: str = "user") -> InjectionVerdict:
        """`check`, plus the model check when the classifier is unsure.

        Rules run inline (short); the embedding runs on the embedder's thread, so the event
        loop is not held for it: prefer this (or `acheck`) over `check` inside a server.
        A model check that fails or exceeds `model_timeout_s` leaves the fast verdict.
        """
        return await self._with_model(text, source, self.model_check)

    async def acheck(
        self,
        text: str,
        *,
        source: str = "user",
        ask: Ask | None = None,
        model: str | None = None,
    ) -> InjectionVerdict:
        """`check_async` for the guard stage: the model check is built per call from the
        gateway's `ask` (a helper call, costed to the caller's call) and `model`; without
        both, the detector's own `model_check` (if any) is used."""
        checker = self.model_check
        if ask is not None and model is not None:
            checker = model_check(ask, model)
        elif ask is not None and checker is None and not self._warned_no_model:
            self._warned_no_model = True
            log.warning("injection model check asked without a model name: skipped")
        return await self._with_model(text, source, checker)

    async def _with_model(
        self, text: str, source: str, checker: Callable[[str], Awaitable[bool]] | None
    ) -> InjectionVerdict:
        # Rules inline (short); the embedding off the event loop (the embedder's own thread).
        verdict, window = self._before_classifier(text, source)
        if verdict is None:
            assert window is not None
            verdict = await self._classify_window_async(window, source)
        if checker is None or not self.uncertain(verdict):
            return verdict
        try:
            yes = await asyncio.wait_for(checker(text), timeout=self.model_timeout_s)
        except Exception as exc:  # a failed second opinion must not fail the call
            log.warning("injection model check failed, fast verdict kept: %r", exc)
            return verdict
        if yes:
            return InjectionVerdict(True, verdict.score, "model", "model")
        return InjectionVerdict(False, verdict.score, None, "model")


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"source must be one of {sorted(SOURCES)}, not {source[:40]!r}")
