"""`LearnedWeights`: the learned router's model — a logistic regression, its scaling, its
calibration curve — saved as one small .npz (~10 KB) and read with numpy alone.

P(strong needed) = sigmoid((w_e · embedding + w_s · (signals - mean) / spread + b) / T),
with T a temperature fitted on a calibration split. The .npz also keeps the sorted
probabilities the calibration split's strong- and cheap-labelled prompts got, so any target
"share of strong-needed prompts allowed to go cheap" maps to a threshold at load time, and
`route explain` can say what that threshold means on data the model was not fitted on.
A dot product over 398 floats: a few µs on top of the embedding.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sluice.routing.signals import SIGNAL_NAMES

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
SHIPPED = "learned_router.npz"  # in sluice/routing/model/


@dataclass(frozen=True, slots=True)
class Contribution:
    """One term of the logit: what pushed the probability up (> 0) or down (< 0)."""

    name: str
    value: float  # in logit units, after the temperature


@dataclass(frozen=True, slots=True)
class LearnedWeights:
    w_embed: F64
    w_signals: F64
    bias: float
    signal_mean: F64
    signal_spread: F64
    temperature: float
    context_weight: float  # the previous user turn's share of the embedded text
    calib_strong: F64  # sorted calibrated P of the calibration split's strong rows
    calib_cheap: F64  # ... and of its cheap rows
    card: dict[str, Any] = field(default_factory=dict)  # version, data, metrics

    # --- prediction --------------------------------------------------------------------

    def logit(self, embedding: F32, signals: list[float]) -> float:
        z = (np.asarray(signals, dtype=np.float64) - self.signal_mean) / self.signal_spread
        raw = float(self.w_embed @ embedding) + float(self.w_signals @ z) + self.bias
        return raw / self.temperature

    def probability(self, embedding: F32, signals: list[float]) -> float:
        return sigmoid(self.logit(embedding, signals))

    def contributions(self, embedding: F32, signals: list[float]) -> list[Contribution]:
        """The logit split into the embedding's term, each signal's term and the bias."""
        t = self.temperature
        z = (np.asarray(signals, dtype=np.float64) - self.signal_mean) / self.signal_spread
        terms = [Contribution("meaning (embedding)", float(self.w_embed @ embedding) / t)]
        terms += [
            Contribution(name, float(w * v) / t)
            for name, w, v in zip(SIGNAL_NAMES, self.w_signals, z, strict=True)
        ]
        terms.append(Contribution("bias", self.bias / t))
        return terms

    # --- calibration -------------------------------------------------------------------

    def threshold_for(self, max_strong_to_cheap: float) -> float:
        """The highest threshold that sent at most this share of the calibration split's
        strong-labelled prompts to the cheap model (a prompt goes cheap when P < threshold)."""
        probs = self.calib_strong
        if len(probs) == 0:
            return 0.5
        allowed = math.floor(max_strong_to_cheap * len(probs) + 1e-9)
        if allowed >= len(probs):
            return 1.0
        return float(probs[allowed])

    def share_below(self, threshold: float) -> tuple[float, float]:
        """On the calibration split: (share of strong rows, share of cheap rows) with P < t."""
        strong = float(
            np.searchsorted(self.calib_strong, threshold) / max(len(self.calib_strong), 1)
        )
        cheap = float(np.searchsorted(self.calib_cheap, threshold) / max(len(self.calib_cheap), 1))
        return strong, cheap

    # --- storage -----------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        np.savez_compressed(
            path,
            w_embed=self.w_embed.astype(np.float32),
            w_signals=self.w_signals,
            scalars=np.array([self.bias, self.temperature, self.context_weight]),
            signal_mean=self.signal_mean,
            signal_spread=self.signal_spread,
            calib_strong=self.calib_strong.astype(np.float32),
            calib_cheap=self.calib_cheap.astype(np.float32),
            signal_names=np.array(SIGNAL_NAMES),
            card=np.array(json.dumps(self.card)),
        )

    @classmethod
    def load(cls, path: str | Path | None = None) -> LearnedWeights:
        """Weights from `path`, or the ones shipped in the package when None."""
        if path is None:
            with resources.as_file(resources.files("sluice.routing") / "model" / SHIPPED) as p:
                return cls._read(p)
        return cls._read(Path(path))

    @classmethod
    def _read(cls, path: Path) -> LearnedWeights:
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a learned-router weights file ({exc})") from None
        with data:
            names = tuple(str(n) for n in data["signal_names"])
            if names != SIGNAL_NAMES:
                raise ValueError(
                    f"{path}: trained with signals {names}, this Sluice has "
                    f"{SIGNAL_NAMES}; retrain with `sluice route train`"
                )
            bias, temperature, context_weight = (float(x) for x in data["scalars"])
            return cls(
                w_embed=data["w_embed"].astype(np.float64),
                w_signals=data["w_signals"].astype(np.float64),
                bias=bias,
                signal_mean=data["signal_mean"].astype(np.float64),
                signal_spread=data["signal_spread"].astype(np.float64),
                temperature=temperature,
                context_weight=context_weight,
                calib_strong=np.sort(data["calib_strong"].astype(np.float64)),
                calib_cheap=np.sort(data["calib_cheap"].astype(np.float64)),
                card=json.loads(str(data["card"])),
            )


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def logit_of(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))
