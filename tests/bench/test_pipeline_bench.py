"""bench.pipeline's memory sampler counts a whole process tree, not one process."""

import subprocess
import sys
import time

import pytest

from bench import pipeline
from bench.pipeline import TreeRss, median_run

HOLD = (
    "import time; block = bytearray({mib} << 20); "
    "block[::4096] = b'x' * len(block[::4096]); time.sleep(3)"  # touch every page
)


def test_tree_rss_sums_the_children_of_the_watched_process():
    # A shell that starts two Python children, each holding 150 MiB of touched memory.
    child = f'{sys.executable} -c "{HOLD.format(mib=150)}"'
    shell = subprocess.Popen(["/bin/sh", "-c", f"{child} & {child} & wait"])
    rss = TreeRss(shell.pid, every_s=0.1)
    shell.wait()
    rss.stop()
    assert rss.peak_bytes > 2 * 150 * 2**20  # both children, though neither is the shell
    assert rss.peak_bytes < 2 * 150 * 2**20 + 200 * 2**20  # and not wildly more
    assert 2 * 150 * 2**20 < rss.peak_pss_bytes <= rss.peak_bytes  # private pages: in PSS too
    # What made up the peak: the two children (the shell is too small to be listed).
    assert [p["rss_gib"] >= 150 / 1024 for p in rss.peak_processes] == [True, True]
    assert all(p["process"].endswith("time.sleep(3)") for p in rss.peak_processes)
    assert 0 < rss.peak_at_s < 10


def _run(wall, rss, tag):
    return {
        "wall_s": wall,
        "peak_rss_gib": rss,
        "peak_pss_gib": rss - 1,
        "peak_rss_one_process_gib": rss / 4,
        "components": {"Transform": tag},
    }


def test_median_run_reports_the_middle_run_and_the_largest_peaks():
    runs = [_run(330.0, 3.5, 1.0), _run(265.0, 3.9, 2.0), _run(300.0, 3.7, 3.0)]
    result = median_run(runs)
    assert result["wall_s"] == 300.0 and result["components"] == {"Transform": 3.0}
    assert result["wall_s_runs"] == [330.0, 265.0, 300.0] and result["repeats"] == 3
    assert result["peak_rss_gib"] == 3.9 and result["peak_pss_gib"] == 2.9
    assert result["peak_rss_one_process_gib"] == 3.9 / 4
    # An even count takes the lower middle run; one run is itself.
    assert median_run(runs[:2])["wall_s"] == 265.0
    assert median_run(runs[:1])["wall_s_runs"] == [330.0]
    with pytest.raises(ValueError, match="at least one run"):
        median_run([])


def test_tree_cpu_counts_every_process_it_saw():
    """The components run in processes the runner never waits for (forked from a fork
    server), so the run's CPU is summed from the samples, not from getrusage."""
    burn = "import time; t = time.process_time(); exec('while time.process_time() - t < 1.0: pass')"
    child = f'{sys.executable} -c "{burn}"'
    shell = subprocess.Popen(["/bin/sh", "-c", f"{child} & {child} & wait"])
    rss = TreeRss(shell.pid, every_s=0.05)
    shell.wait()
    rss.stop()
    # Two children of 1.0 CPU s each (plus their start-up); a sample's interval may be lost.
    assert 1.8 <= rss.cpu_s() <= 4.0
    assert rss.peak_one_process_bytes > 5 * 2**20


def test_tree_rss_reads_pss_only_on_a_new_peak_or_every_pss_interval(monkeypatch):
    """PSS (smaps_rollup) walks every mapping: read on every sample it cost the measured
    run a sixth of a core. A process that holds its memory steady sets no new peak, so
    after the first samples PSS is not read again within pss_every_s."""
    import psutil

    reads = []
    full_info = psutil.Process.memory_full_info
    monkeypatch.setattr(
        psutil.Process, "memory_full_info", lambda self: reads.append(1) or full_info(self)
    )
    hold = subprocess.Popen([sys.executable, "-c", HOLD.format(mib=50)])
    try:
        time.sleep(1.0)  # let it allocate and touch its pages before sampling
        rss = TreeRss(hold.pid, every_s=0.02, pss_every_s=60.0)
        time.sleep(1.0)
        rss.stop()
    finally:
        hold.wait()
    samples = 1.0 / 0.02
    assert 0 < len(reads) < samples / 4  # a read per new peak, not one per sample
    assert 50 * 2**20 < rss.peak_pss_bytes <= rss.peak_bytes  # the PSS it did read
    assert rss.sampler_cpu_s > 0


def test_run_once_refuses_a_keep_dir_that_holds_files(tmp_path):
    """A kept run dir must be new or empty: an earlier run's pipeline root and MLMD in it
    would be resolved as the new run's baselines (not a cold run)."""
    (tmp_path / "runs").mkdir()
    with pytest.raises(SystemExit, match="not empty"):
        pipeline.run_once("synthetic:tiny", "tiny", 1, keep_work=str(tmp_path))
