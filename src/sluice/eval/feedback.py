"""User feedback on a call: the validated input shape and the stored row.

`POST /v1/sluice/feedback` (see `sluice.web.feedback`) takes a `FeedbackIn`; every field is
bounded here, so nothing unbounded reaches storage: the comment's length, the number of tags
and each tag's length and alphabet. A score is a number in [0, 1] (normalised quality, as
Langfuse and LangSmith record it) and thumbs are `up`/`down`; when only thumbs are given the
score is 1.0 or 0.0, so means over groups mix both kinds of feedback.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator, model_validator

from sluice.config_base import Frozen

MAX_COMMENT_CHARS = 2000
MAX_TAGS = 10
MAX_TAG_CHARS = 64
MAX_REQUEST_ID_CHARS = 128
_TAG = re.compile(r"^[A-Za-z0-9_.:\-]+$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")  # the gateway's own id alphabet


class FeedbackIn(Frozen):
    """The body of `POST /v1/sluice/feedback` (unknown fields are refused)."""

    request_id: str = Field(min_length=1, max_length=MAX_REQUEST_ID_CHARS)
    score: float | None = Field(default=None, ge=0.0, le=1.0)
    thumbs: Literal["up", "down"] | None = None
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS)
    tags: tuple[str, ...] = Field(default=(), max_length=MAX_TAGS)

    @field_validator("request_id")
    @classmethod
    def _id_alphabet(cls, value: str) -> str:
        if not _REQUEST_ID.match(value):
            raise ValueError("request_id has characters a Sluice request id never has")
        return value

    @field_validator("comment")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        # PostgreSQL text holds no NUL (a 500 from the database otherwise): dropped.
        return None if value is None else value.replace("\x00", "")

    @field_validator("score")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("score must be a finite number")
        return value

    @field_validator("tags")
    @classmethod
    def _tag_shape(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for tag in value:
            if not 1 <= len(tag) <= MAX_TAG_CHARS or not _TAG.match(tag):
                raise ValueError(
                    f"each tag is 1-{MAX_TAG_CHARS} characters of letters, digits and _.:-"
                )
        return tuple(dict.fromkeys(value))  # duplicates once

    @model_validator(mode="after")
    def _some_signal(self) -> FeedbackIn:
        if self.score is None and self.thumbs is None:
            raise ValueError("give a score (0 to 1) or thumbs ('up' or 'down')")
        return self

    @property
    def effective_score(self) -> float:
        """The score, or 1.0 / 0.0 for thumbs up / down."""
        if self.score is not None:
            return self.score
        return 1.0 if self.thumbs == "up" else 0.0


@dataclass(frozen=True, slots=True)
class Feedback:
    """One stored piece of feedback: the latest one per (tenant, request id)."""

    request_id: str
    tenant: str
    key_id: str | None
    score: float  # the effective score in [0, 1]
    thumbs: str | None
    comment: str | None
    tags: tuple[str, ...]
    ts: float
