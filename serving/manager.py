"""The file-system source and manager of one model, as TF Serving's with the latest policy.

`<base_path>/<version>/` directories named with ASCII digits that fit an int64 are
versions (`schemas.model_version.parse_version`, TF Serving's rule); "0017" is version
17, loaded from "0017". A version is considered once its `saved_model.pb` exists (the
pusher renames a complete directory into place). Before loading, its manifest (if any) is
verified. The highest version is loaded, then swapped in; requests that already hold the
old version finish on it, and the old version is unloaded once idle.

A failed load is retried as TF Serving's `--max_num_load_retries` and
`--load_retry_interval_micros` do, and again at once whenever a file of the version
changes (a non-atomic copy that is still being written finishes, then loads).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import logging
import os
import threading
import time

from tensorflow_serving.apis import get_model_status_pb2

from schemas import model_version
from serving import errors
from serving.servable import Servable, has_saved_model

log = logging.getLogger(__name__)
State = get_model_status_pb2.ModelVersionStatus.State
MAX_NUM_LOAD_RETRIES = 5  # TF Serving's defaults
LOAD_RETRY_INTERVAL_S = 60.0


def scan_versions(base_path: str) -> tuple[dict[int, str], list[str]]:
    """Complete versions under `base_path` and the names that look like versions but are not.

    Returns:
        ({version: directory name}, [ignored names]). Ignored: digits that are not ASCII
        ("²") or past int64. When two names give one version ("5", "0005"), the canonical
        one wins, else the first in sort order.
    """
    try:
        names = sorted(os.listdir(base_path))
    except OSError:
        return {}, []
    found, ignored = {}, []
    for name in names:
        version = model_version.parse_version(name)
        if version is None:
            if name.isdigit() or name.isdecimal():
                ignored.append(name)
            continue
        path = os.path.join(base_path, name)
        if not (os.path.isdir(path) and has_saved_model(path)):
            continue
        if version not in found or name == str(version):
            found[version] = name
    return found, ignored


def fingerprint(path: str) -> tuple:
    """(relative path, size, mtime) of every file under `path`: changes whenever a file
    anywhere in the version is written, unlike the top directory's mtime."""
    entries = []
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            full = os.path.join(dirpath, name)
            try:
                stat = os.stat(full)
            except OSError:
                continue
            entries.append((os.path.relpath(full, path), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(entries))


def release_heap() -> None:
    """Returns freed heap pages to the OS (glibc malloc_trim; a no-op elsewhere)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


MALLOC_ARENA_MAX = 4
_M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)


def limit_malloc_arenas(limit: int = MALLOC_ARENA_MAX, environ=None) -> int | None:
    """Caps glibc's malloc arenas at `limit`; returns the cap set, or None when glibc is
    absent or the MALLOC_ARENA_MAX environment variable is set (glibc applied that one).

    Call before the server starts its threads. glibc gives threads up to 8 arenas per
    core. A hot swap's work (restore, table build, unload) runs on whichever gRPC or TF
    threads pick it up and leaves a few MiB of free heap at the top of their arenas, which
    malloc_trim does not return for arenas other than the main one. In
    `python -m bench.serving_soak` (2 cores) the arenas holding heap went from 5 at swap 2
    to all 16 by swap 15, each keeping 3-5 MiB, their resident pages 33 -> 56 MiB, while
    Python objects, TF functions and malloc's in-use bytes stayed flat: most of RSS's climb
    over the first ~10 swaps (on a larger host it would level only at 8 arenas per core).
    With 4 arenas, RSS over swaps 21-30 is 10 MiB lower (632 -> 622 MiB, mean of 5 runs)
    and levels sooner. What still rises after swap 2 (3-16 MiB, until swap ~10) is TF's
    oneDNN CPU allocator touching more of its fixed 64 MiB of regions: bounded.
    """
    environ = os.environ if environ is None else environ
    if environ.get("MALLOC_ARENA_MAX"):
        return None
    try:
        ok = ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, limit)
    except (OSError, AttributeError):
        return None
    return limit if ok == 1 else None


@dataclasses.dataclass
class _Failure:
    fingerprint: tuple
    retries: int = 0
    next_try: float = 0.0


class ModelManager:
    """Serves the latest version of one model and hot-swaps to newer ones.

    Args:
        name: the model name clients put in model_spec.name.
        base_path: directory holding `<version>/` SavedModels.
        poll_seconds: interval between file-system polls (<= 0: poll only at start).
        version_labels: label -> version, for model_spec.version_label.
        loader: (path, version) -> Servable; tests may wrap it.
        max_retries: retries of a failed load (TF Serving's --max_num_load_retries).
        retry_interval: seconds between them (--load_retry_interval_micros / 1e6).
    """

    def __init__(
        self,
        name,
        base_path,
        poll_seconds=1.0,
        version_labels=None,
        loader=Servable,
        max_retries=MAX_NUM_LOAD_RETRIES,
        retry_interval=LOAD_RETRY_INTERVAL_S,
    ):
        self.name = name
        self.base_path = base_path
        self.poll_seconds = poll_seconds
        self.version_labels = dict(version_labels or {})
        self.max_retries = max_retries
        self.retry_interval = retry_interval
        self._loader = loader
        self._lock = threading.Lock()
        self._current: Servable | None = None
        self._states: dict[int, tuple[int, str]] = {}  # version -> (State, error message)
        self._failed: dict[int, _Failure] = {}
        self._warned: set[str] = set()  # ignored names and manifest-less versions, logged once
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- source ---------------------------------------------------------------
    def start(self) -> None:
        """Loads the latest version now, then polls in a background thread."""
        self.poll()
        if self.poll_seconds > 0:
            self._thread = threading.Thread(target=self._poll_loop, name="poll", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stops polling (loaded versions stay loaded)."""
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - polling must survive anything
                log.exception("polling %s failed", self.base_path)

    def _warn_once(self, key: str, message: str, *args) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    def _should_try(self, version: int, path: str) -> bool:
        """False while a failed version is unchanged and its retries wait or are spent."""
        failure = self._failed.get(version)
        if failure is None:
            return True
        current = fingerprint(path)
        if current != failure.fingerprint:  # a file changed: a fresh series of tries
            self._failed[version] = _Failure(current)
            return True
        if failure.retries >= self.max_retries or time.monotonic() < failure.next_try:
            return False
        failure.retries += 1
        log.info("retrying %s version %d (retry %d of %d)", self.name, version,
                 failure.retries, self.max_retries)  # fmt: skip
        return True

    def poll(self) -> bool:
        """Loads and swaps to the latest version if it is new; True if it swapped."""
        versions, ignored = scan_versions(self.base_path)
        for name in ignored:
            self._warn_once(
                name, "ignoring %s/%r: a version is ASCII digits within int64, as in TF Serving",
                self.base_path, name,
            )  # fmt: skip
        if not versions:
            if self._current is None:
                log.warning("no versions of model %r under %s yet", self.name, self.base_path)
            return False
        latest = max(versions)
        current = self._current
        if current is not None and current.version == latest:
            return False
        path = os.path.join(self.base_path, versions[latest])
        if not self._should_try(latest, path):
            return False
        return self._load_and_swap(latest, path)

    def _set_state(self, version: int, state: int, error: str = "") -> None:
        with self._lock:
            self._states[version] = (state, error)

    def _verify(self, path: str) -> None:
        """Checks the version's manifest; a version without one is loaded, logged once."""
        if model_version.has_manifest(path):
            model_version.verify_manifest(path)
        else:
            self._warn_once(path, "%s has no %s: not verified", path, model_version.MANIFEST_FILE)

    def _load_and_swap(self, version: int, path: str) -> bool:
        self._set_state(version, State.LOADING)
        log.info("loading %s version %d from %s", self.name, version, path)
        started = time.perf_counter()
        try:
            self._verify(path)
            servable = self._loader(path, version)
        except Exception as exc:  # noqa: BLE001 - a broken version must not stop serving
            log.error("loading %s version %d failed: %s", self.name, version, exc)
            failure = self._failed.setdefault(version, _Failure(fingerprint(path)))
            failure.next_try = time.monotonic() + self.retry_interval
            message = errors.redact(f"{type(exc).__name__}: {exc}", self.base_path)
            self._set_state(version, State.END, message)
            return False
        self._failed.pop(version, None)
        with self._lock:
            old, self._current = self._current, servable
            self._states[version] = (State.AVAILABLE, "")
            if old is not None:
                self._states[old.version] = (State.UNLOADING, "")
        seconds = time.perf_counter() - started
        warmup = getattr(servable, "warmup_count", 0)
        message = "serving %s version %d (loaded in %.1f s, %d warm-up requests)"
        log.info(message, self.name, version, seconds, warmup)
        if old is not None:
            holder = [old]  # the thread's only reference, so that _unload can drop it
            del old
            threading.Thread(target=self._unload, args=(holder,), daemon=True).start()
        return True

    def _unload(self, holder: list) -> None:
        """Waits for the old version's requests, destroys it, and frees its memory now.

        A loaded SavedModel is a web of reference cycles: without a collection here its
        variables and functions stayed until Python's next full collection, which under
        load came only every several swaps (RSS grew ~20 MiB per swap in the soak).
        """
        servable = holder.pop()
        servable.wait_idle()
        version = servable.version
        servable.unload()
        del servable
        gc.collect()
        release_heap()
        self._set_state(version, State.END)
        log.info("unloaded %s version %d", self.name, version)

    # -- lookups ----------------------------------------------------------------
    def _resolve(self, version: int | None, label: str | None) -> Servable:
        if label:
            if label not in self.version_labels:
                raise errors.invalid(f"Unrecognized servable version label: {errors.clip(label)}")
            version = self.version_labels[label]
        current = self._current
        if current is None or (version is not None and version != current.version):
            what = (
                f"Latest({self.name})" if version is None else f"Specific({self.name}, {version})"
            )
            raise errors.not_found(f"Servable not found for request: {what}")
        return current

    @contextlib.contextmanager
    def servable(self, version: int | None = None, label: str | None = None):
        """Holds the requested version for the duration of a request.

        Raises:
            ServingError: NOT_FOUND for a version not served; INVALID_ARGUMENT for an
                unknown label.
        """
        with self._lock:
            servable = self._resolve(version, label)
            servable.acquire()
        try:
            yield servable
        finally:
            servable.release()

    def statuses(self, version: int | None = None) -> list[tuple[int, int, str]]:
        """(version, State, error message) of known versions, ascending.

        Raises:
            ServingError: NOT_FOUND when nothing (or not `version`) is known.
        """
        with self._lock:
            states = dict(self._states)
        if version is not None:
            if version not in states:
                raise errors.not_found(f"Could not find version {version} of model {self.name}")
            states = {version: states[version]}
        if not states:
            raise errors.not_found(f"Could not find any versions of model {self.name}")
        return [(v, s, e) for v, (s, e) in sorted(states.items())]
