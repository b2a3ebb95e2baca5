"""clipprompt/results/paired.py: the 95% t-interval and the one format of a paired difference."""

import math

import pytest

from clipprompt.results import paired


def test_t_half_width_is_the_student_t_interval():
    # 70, 72, 74: sample std 2; t(0.975, 2) = 4.302653, so the half-width is 4.968, not 1.96 * 1.633 / sqrt(3).
    _, std = paired.mean_and_std([70.0, 72.0, 74.0])
    assert std == pytest.approx(2.0)
    assert paired.t_half_width(std, 3) == pytest.approx(4.302653 * 2.0 / math.sqrt(3), abs=1e-5)
    assert paired.t_half_width(1.0, 32) == pytest.approx(2.039513 / math.sqrt(32), abs=1e-4)  # df 31: past the table
    with pytest.raises(ValueError):
        paired.t_half_width(1.0, 1)


def test_paired_difference_uses_that_half_width():
    diff = paired.paired_difference({1: 70.0, 2: 72.0, 3: 74.0}, {1: 71.0, 2: 75.0, 3: 76.0})  # +1, +3, +2
    half_width = paired.t_half_width(1.0, 3)
    assert (diff.ci_low, diff.ci_high) == pytest.approx((2.0 - half_width, 2.0 + half_width))


def test_format_difference_and_seed_differences():
    diff = paired.paired_difference({1: 70.0, 2: 72.0, 3: 74.0}, {1: 71.0, 2: 75.0, 3: 76.0})
    assert paired.format_difference(diff) == "+2.00 [-0.48, +4.48] unresolved"
    assert paired.format_difference(diff, verdict=False) == "+2.00 [-0.48, +4.48]"
    assert paired.format_difference(diff, verdict=False, with_n=True) == "+2.00 [-0.48, +4.48] (n=3)"
    assert paired.format_seed_differences(diff) == "1: +1.00, 2: +3.00, 3: +2.00"
    one = paired.paired_difference({1: 50.0}, {1: 49.5})
    assert paired.format_difference(one, with_n=True) == "-0.50 (n=1)"
    none = paired.paired_difference({1: 50.0}, {2: 55.0})
    assert paired.format_difference(none) == "-" and paired.format_seed_differences(none) == ""
