from __future__ import annotations

import pytest

from appliance.agents.probe_timeout import ProbeTimeout

pytestmark = pytest.mark.unit


def test_before_any_answer_a_probe_waits_the_initial_timeout() -> None:
    assert ProbeTimeout(minimum=0.1, maximum=1.0, initial=0.5).current == 0.5


def test_the_admins_timeout_is_the_ceiling_with_nmaps_proportions_below_it() -> None:
    t = ProbeTimeout.up_to(1.0)
    assert (t.minimum, t.initial, t.maximum) == (0.1, 0.5, 1.0)
    tight = ProbeTimeout.up_to(0.05)  # a ceiling below nmap's floor: the floor gives way
    assert (tight.minimum, tight.initial, tight.maximum) == (0.05, 0.05, 0.05)


def test_one_answer_sets_round_trip_plus_four_deviations_of_at_least_5_ms() -> None:
    t = ProbeTimeout(minimum=0.001, maximum=10.0, initial=1.0)
    t.observe(0.040)
    assert t.current == pytest.approx(0.040 + 4 * 0.040)
    fast = ProbeTimeout(minimum=0.001, maximum=10.0, initial=1.0)
    fast.observe(0.001)
    assert fast.current == pytest.approx(0.001 + 4 * 0.005)


def test_steady_round_trips_bring_the_timeout_down_to_them() -> None:
    t = ProbeTimeout(minimum=0.001, maximum=10.0, initial=1.0)
    for _ in range(200):
        t.observe(0.020)
    assert t.current == pytest.approx(0.020, rel=0.01)


def test_round_trips_that_grow_widen_the_timeout_past_them_at_once() -> None:
    """The deviation takes a quarter of a jump, times four: the first slower answer already
    fits under the next timeout, and steady answers settle it again."""
    t = ProbeTimeout(minimum=0.001, maximum=10.0, initial=1.0)
    for _ in range(200):
        t.observe(0.020)
    t.observe(0.200)
    assert t.current > 0.200
    for _ in range(200):
        t.observe(0.020)
    assert t.current == pytest.approx(0.020, rel=0.01)


def test_the_timeout_stays_within_its_bounds() -> None:
    t = ProbeTimeout(minimum=0.1, maximum=1.0, initial=0.5)
    for _ in range(50):
        t.observe(0.00001)  # loopback
    assert t.current == 0.1
    for _ in range(50):
        t.observe(30.0)
    assert t.current == 1.0


def test_a_second_try_waits_twice_as_long_up_to_the_ceiling() -> None:
    t = ProbeTimeout(minimum=0.1, maximum=1.0, initial=0.3)
    assert t.retry() == pytest.approx(0.6)
    t.observe(5.0)
    assert t.retry() == 1.0


@pytest.mark.parametrize(
    ("minimum", "initial", "maximum"), [(0.0, 0.5, 1.0), (0.6, 0.5, 1.0), (0.1, 2.0, 1.0)]
)
def test_bounds_out_of_order_are_refused(minimum: float, initial: float, maximum: float) -> None:
    with pytest.raises(ValueError, match="minimum <= initial <= maximum"):
        ProbeTimeout(minimum=minimum, maximum=maximum, initial=initial)
