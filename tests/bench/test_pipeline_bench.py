"""bench.pipeline's memory sampler counts a whole process tree, not one process."""

import subprocess
import sys

from bench.pipeline import TreeRss

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
