"""The fork server that local runners start their node processes from.

Spawning a process costs a fresh import of TensorFlow and TFX (5-10 s on 2 cores, more on
a busy host). Python's `forkserver` start method pays it once: a clean server process,
started on first use, imports the modules below, and every node process is forked from
it (about 30 ms) with them already imported. The server never runs TensorFlow, so no
runtime state (thread pools, the eager context) is forked; each node starts as fresh as
a spawned process, and gives all its memory back when it ends.
"""

from __future__ import annotations

import multiprocessing

# tfx's portable launcher imports TF, Beam, TFT, TFMA and TFDV: what every node needs.
PRELOAD = ("tensorflow", "tfx.orchestration.portable.launcher")

CONTEXT = multiprocessing.get_context("forkserver")
CONTEXT.set_forkserver_preload(list(PRELOAD))
