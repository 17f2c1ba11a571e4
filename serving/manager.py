"""The file-system source and manager of one model, as TF Serving's with the latest policy.

`<base_path>/<version>/` directories with an integer name are versions; one is
considered only once its `saved_model.pb` exists (the pusher renames a complete
directory into place). The highest version is loaded in the background, then
swapped in; requests that already hold the old version finish on it, and the old
version is unloaded once idle.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time

from tensorflow_serving.apis import get_model_status_pb2

from serving import errors
from serving.servable import Servable, has_saved_model

log = logging.getLogger(__name__)
State = get_model_status_pb2.ModelVersionStatus.State


def list_versions(base_path: str) -> list[int]:
    """Complete versions under `base_path`, ascending."""
    try:
        names = os.listdir(base_path)
    except OSError:
        return []
    versions = []
    for name in names:
        path = os.path.join(base_path, name)
        if name.isdigit() and os.path.isdir(path) and has_saved_model(path):
            versions.append(int(name))
    return sorted(versions)


class ModelManager:
    """Serves the latest version of one model and hot-swaps to newer ones.

    Args:
        name: the model name clients put in model_spec.name.
        base_path: directory holding `<version>/` SavedModels.
        poll_seconds: interval between file-system polls (<= 0: poll only at start).
        version_labels: label -> version, for model_spec.version_label.
        loader: (path, version) -> Servable; tests may wrap it.
    """

    def __init__(self, name, base_path, poll_seconds=1.0, version_labels=None, loader=Servable):
        self.name = name
        self.base_path = base_path
        self.poll_seconds = poll_seconds
        self.version_labels = dict(version_labels or {})
        self._loader = loader
        self._lock = threading.Lock()
        self._current: Servable | None = None
        self._states: dict[int, tuple[int, str]] = {}  # version -> (State, error message)
        self._failed: dict[int, float] = {}  # version -> mtime of its saved_model.pb
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

    def _mtime(self, version: int) -> float:
        try:
            return os.path.getmtime(os.path.join(self.base_path, str(version)))
        except OSError:
            return 0.0

    def poll(self) -> bool:
        """Loads and swaps to the latest version if it is new; True if it swapped."""
        versions = list_versions(self.base_path)
        if not versions:
            if self._current is None:
                log.warning("no versions of model %r under %s yet", self.name, self.base_path)
            return False
        latest = versions[-1]
        current = self._current
        if current is not None and current.version == latest:
            return False
        if self._failed.get(latest) == self._mtime(latest):
            return False
        return self._load_and_swap(latest)

    def _set_state(self, version: int, state: int, error: str = "") -> None:
        with self._lock:
            self._states[version] = (state, error)

    def _load_and_swap(self, version: int) -> bool:
        path = os.path.join(self.base_path, str(version))
        self._set_state(version, State.LOADING)
        log.info("loading %s version %d from %s", self.name, version, path)
        started = time.perf_counter()
        try:
            servable = self._loader(path, version)
        except Exception as exc:  # noqa: BLE001 - a broken version must not stop serving
            log.error("loading %s version %d failed: %s", self.name, version, exc)
            self._failed[version] = self._mtime(version)
            self._set_state(version, State.END, f"{type(exc).__name__}: {exc}")
            return False
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
            threading.Thread(target=self._unload, args=(old,), daemon=True).start()
        return True

    def _unload(self, servable: Servable) -> None:
        servable.wait_idle()
        servable.unload()
        self._set_state(servable.version, State.END)
        log.info("unloaded %s version %d", self.name, servable.version)

    # -- lookups ----------------------------------------------------------------
    def _resolve(self, version: int | None, label: str | None) -> Servable:
        if label:
            if label not in self.version_labels:
                raise errors.invalid(f"Unrecognized servable version label: {label}")
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
