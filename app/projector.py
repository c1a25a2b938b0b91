"""Qt side of the projection service: submit embeddings, poll results on a GUI timer.

Request ids map back to (run, step) so a frame from an earlier run is dropped and a
frame always lands on the snapshot it was computed from. When the service gives up on
its worker, `failed` says why once; `retry()` starts a fresh worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6 import QtCore

if TYPE_CHECKING:
    from engine.projection import ProjectionService

POLL_MS = 40
MAX_TRACKED = 1000  # request ids remembered (latest-wins drops most unanswered ones)


class ProjectionClient(QtCore.QObject):
    frame_ready = QtCore.Signal(str, object, object, str)  # key, step | None, coords, method
    failed = QtCore.Signal(str)  # the service gave up on its worker (PCA only until retry)

    def __init__(self, params: dict,
                 service_factory: Callable[..., ProjectionService | None] | None = None,
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        if service_factory is None:
            from engine.projection import ProjectionService

            service_factory = ProjectionService
        self.service: ProjectionService | None = service_factory(**params)
        self.params = dict(params)
        self.run_id = 0
        self._next_id = 0
        self._requests: dict[int, tuple[int, int | None]] = {}
        self.last_error: str | None = None
        self.min_interval_s = 0.0  # optional rate limit for embedding frames
        self._last_submit = 0.0
        self._deferred: tuple | None = None
        self.failure: str | None = None  # why the worker was given up on, until retry()
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._on_poll)
        self._timer.start()

    @property
    def umap_ready(self) -> bool:
        return self.service is not None and self.service.umap_ready

    def new_run(self) -> None:
        """Forget outstanding requests and the warm-start layout (new probe set)."""
        self.run_id += 1
        self._requests.clear()
        self._deferred = None
        if self.service is not None:
            self.service.reset()

    def request(self, key: str, step: int | None, points: np.ndarray, full: bool = False
                ) -> None:
        if self.service is None:
            return
        if key == "embedding" and self.min_interval_s > 0:
            if time.monotonic() - self._last_submit < self.min_interval_s:
                self._deferred = (key, step, points, full)
                return
            self._last_submit = time.monotonic()
        self._next_id += 1
        self._requests[self._next_id] = (self.run_id, step)
        if len(self._requests) > MAX_TRACKED:
            for rid in sorted(self._requests)[: len(self._requests) - MAX_TRACKED]:
                del self._requests[rid]
        try:
            self.service.submit(self._next_id, points, key=key, full=full)
        except (RuntimeError, ValueError) as exc:
            self.last_error = str(exc)

    def set_params(self, **params: Any) -> None:
        if self.service is None or params == {k: self.params.get(k) for k in params}:
            return
        self.params.update(params)
        self.service.set_params(**params)

    def retry(self) -> bool:
        """Start a fresh projection worker after a failure; False if there is no service."""
        if self.service is None:
            return False
        self.failure = None
        self.last_error = None
        self.service.retry()
        return True

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop polling and the service; `timeout`: seconds the worker gets to finish a
        job before it is terminated (None: the service's default)."""
        self._timer.stop()
        if self.service is not None:
            if timeout is None:
                self.service.shutdown()
            else:
                self.service.shutdown(timeout=timeout)
            self.service = None

    def _on_poll(self) -> None:
        if self.service is None:
            return
        if self._deferred is not None and (
            time.monotonic() - self._last_submit >= self.min_interval_s
        ):
            deferred, self._deferred = self._deferred, None
            self.request(*deferred)
        try:
            results = self.service.poll()
        except Exception as exc:  # a broken service must not take the GUI down
            self.last_error = f"projection: {exc}"
            return
        if self.service.error:
            self.last_error = self.service.error
        failure = getattr(self.service, "failed", None)
        if failure and self.failure is None:
            self.failure = failure
            self.failed.emit(failure)
        for r in results:
            # Not popped: a PCA stand-in is later re-answered by UMAP under the same id.
            origin = self._requests.get(r.request_id)
            if origin is None or origin[0] != self.run_id:
                continue
            method = f"{r.method} full" if r.full else r.method
            self.frame_ready.emit(r.key, origin[1], r.coords, method)
