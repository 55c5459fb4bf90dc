"""The lead shared among live sync streams: `runtime/budget.py`."""

from __future__ import annotations

import pytest

from bedrock_agentcore.runtime.budget import MAX_LEAD, MIN_LEAD, TOTAL_LEAD, StreamBudget


def test_a_lone_stream_gets_the_largest_lead() -> None:
    budget = StreamBudget()
    budget.opened()
    assert budget.lead() == min(MAX_LEAD, TOTAL_LEAD)


def test_the_total_is_split_evenly_as_streams_open_and_returned_as_they_close() -> None:
    budget = StreamBudget(total=256, most=64, least=8)
    for _ in range(16):
        budget.opened()
    assert budget.lead() == 16
    for _ in range(12):
        budget.closed()
    assert (budget.streams, budget.lead()) == (4, 64)


def test_the_lead_never_falls_below_the_floor_however_many_streams() -> None:
    budget = StreamBudget(total=256, most=64, least=8)
    for _ in range(1000):
        budget.opened()
    assert budget.lead() == 8
    assert MIN_LEAD >= 1


def test_no_streams_is_not_a_division_by_zero() -> None:
    assert StreamBudget(total=256, most=64, least=8).lead() == 64


@pytest.mark.parametrize(("most", "least"), [(8, 16), (8, 0)])
def test_bounds_that_cannot_hold_are_refused(most: int, least: int) -> None:
    with pytest.raises(ValueError, match="least"):
        StreamBudget(total=256, most=most, least=least)
