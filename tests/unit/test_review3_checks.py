"""review3: hostile values for the retrieval request checks."""

from __future__ import annotations

from typing import Any

import pytest

from sluice.errors import InvalidRequestError
from sluice.retrieval.checks import check_expires


@pytest.mark.parametrize(
    "value",
    [
        {"anchor": "last_active_at", "days": True},  # bool is an int subclass
        {"anchor": "last_active_at", "days": 0},
        {"anchor": "last_active_at", "days": -1},
        {"anchor": "last_active_at", "days": 366},
        {"anchor": "last_active_at", "days": 10**100},
        {"anchor": "last_active_at", "days": "7"},
        {"anchor": "last_active_at", "days": 7.0},
        {"anchor": "created_at", "days": 7},
        {"anchor": ["last_active_at"], "days": 7},
        {"days": 7},
        "last_active_at",
        [],
    ],
)
def test_bad_expires_after_is_a_400(value: Any) -> None:
    with pytest.raises(InvalidRequestError) as err:
        check_expires(value)
    assert err.value.param == "expires_after"


@pytest.mark.parametrize("days", [1, 365])
def test_expires_after_bounds_are_kept(days: int) -> None:
    assert check_expires({"anchor": "last_active_at", "days": days}) == {
        "anchor": "last_active_at",
        "days": days,
    }
