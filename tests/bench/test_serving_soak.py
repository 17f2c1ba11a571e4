"""The soak benchmark's summary, derived by hand."""

import pytest

from bench import serving_soak


def test_growth_and_slope_start_at_the_second_swap():
    # Swaps 0 and 1 (warm-up) are ignored; from swap 2: 100, 102, 104, 106 -> slope 2.
    summary = serving_soak.summarize([10.0, 60.0, 100.0, 102.0, 104.0, 106.0])
    assert summary["growth_after_swap2_mib"] == 6.0
    assert summary["slope_mib_per_swap"] == pytest.approx(2.0)
    assert summary["slope_last_half_mib_per_swap"] == pytest.approx(2.0)  # 102, 104, 106
    flat = serving_soak.summarize([10.0, 60.0, 100.0, 101.0, 99.0, 100.0])
    assert flat["growth_after_swap2_mib"] == 0.0
    assert flat["slope_mib_per_swap"] == pytest.approx(-0.2)  # lstsq of 100, 101, 99, 100
    assert flat["slope_last_half_mib_per_swap"] == pytest.approx(-0.5)  # 101, 99, 100
    assert serving_soak.summarize([1.0, 2.0])["slope_mib_per_swap"] == 0.0
