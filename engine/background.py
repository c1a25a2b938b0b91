"""A one-worker process for figures the window computes on demand (the LSH index's spread
over draws of tables): numpy work driven by Python loops, which in a thread of the GUI
process would hold its GIL for about a second per snapshot shown.

The process is spawned with the first job (about 0.2 s: it imports numpy and the engine
module of the job's function, never torch) and lives until shutdown(). Jobs run one
after another; a job's function gets `should_stop`, which turns true once cancel() was
called after the job was submitted, so a job for a snapshot no longer shown ends at its
next check (the function raises or returns early, as it chooses)."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_generation: Any = None  # the worker's view of the owner's cancel count (a shared int)


def _init(generation: Any) -> None:
    global _generation
    _generation = generation


def _call(generation: int, fn: Callable[..., T], args: tuple, kwargs: dict[str, Any]) -> T:
    """In the worker: fn(*args, **kwargs, should_stop=...), stopped by a later cancel()."""
    shared = _generation

    def should_stop() -> bool:
        return shared is not None and shared.value != generation

    return fn(*args, should_stop=should_stop, **kwargs)


class BackgroundProcess:
    """One spawned worker process, started lazily; see the module docstring."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._generation: Any = None
        self._cancels = 0
        self._closed = False

    @property
    def started(self) -> bool:
        return self._pool is not None

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Run fn(*args, **kwargs, should_stop=...) in the worker; fn and its arguments
        must pickle (a module-level function of a Qt-free module)."""
        if self._closed:
            raise RuntimeError("the background process is shut down")
        if self._pool is None:
            ctx = mp.get_context("spawn")
            self._generation = ctx.Value("q", self._cancels, lock=False)
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=ctx,
                                             initializer=_init,
                                             initargs=(self._generation,))
        return self._pool.submit(_call, self._cancels, fn, args, kwargs)

    def cancel(self) -> None:
        """Stop the jobs submitted so far: a running one at its next should_stop check,
        queued ones as soon as they start."""
        self._cancels += 1
        if self._generation is not None:
            self._generation.value = self._cancels

    def shutdown(self) -> None:
        """Cancel every job and wait for the worker process to exit (it stops at its
        job's next should_stop check); safe to call twice."""
        self._closed = True
        self.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
