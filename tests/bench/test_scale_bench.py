"""bench/scale.py: growth exponents and the B6 verdicts, from hand-made runs."""

import pytest

from bench import scale


def run(events, wall, components, stages="all", rss=1.0):
    return {"counts": {"events_read": events}, "wall_s": wall, "components": components,
            "stages": stages, "peak_rss_gib": rss}  # fmt: skip


def test_exponent_is_the_log_log_slope():
    small = run(100_000, 200.0, {"Transform": 60.0, "trainer": 30.0})
    large = run(1_000_000, 800.0, {"Transform": 300.0, "trainer": 300.0, "new": 5.0})
    got = scale.exponents(small, large)
    # 60 -> 300 s over 10x events: log10(5) = 0.699; 30 -> 300: exactly 1; wall 4x: 0.602.
    assert got == {"Transform": 0.7, "trainer": 1.0, "wall": 0.6}
    data_only = run(10_000_000, 3000.0, {"Transform": 3000.0}, stages="data")
    assert scale.exponents(large, data_only) == {"Transform": 1.0}  # no wall across stages


def test_verdicts_name_each_target_met_or_not():
    results = {
        "1000000": {
            **run(1_000_000, 14 * 60, {}, rss=6.5),
            "exponents": {"a": 0.9, "b": 1.2, "wall": 0.5},
        },  # fmt: skip
        "10000000": run(10_000_000, 4000.0, {}, stages="data", rss=7.5),
    }
    lines = scale.verdicts(results)
    assert lines[0].startswith("1M wall_s: 840 s") and lines[0].endswith("met)")
    assert "NOT" not in lines[0]
    assert lines[1].startswith("1M peak_rss_gib: 6.5 GiB") and "NOT met" in lines[1]
    assert (
        lines[2].startswith("largest growth exponent 100K -> 1M: b 1.2") and "NOT met" in lines[2]
    )
    assert lines[3].startswith("10M data stages peak RSS: 7.5 GiB") and "NOT" not in lines[3]


def test_every_size_is_a_synthetic_size():
    from pipeline.sources import synthetic

    for size, (name, stages) in scale.SIZES.items():
        spec = synthetic.resolve_spec(name)
        assert stages in ("all", "data")
        assert spec.n_users * spec.events_per_user == int(scale.NOMINAL[size])
    with pytest.raises(SystemExit):
        scale.main(["--sizes", "5m"])
