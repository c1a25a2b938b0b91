"""Executors: where a sweep's runs train. One small interface, two implementations.

`Executor.run(tasks, handle, stop)` trains every RunTask into its run folder and calls
`handle(message)` in the calling thread with plain dicts: {"kind": "run_start"},
{"kind": "snapshot", step, total_steps, figures} after each recorded snapshot and
{"kind": "run_done", status, error, outcome}, each with "run_id". Setting the
threading.Event `stop` ends every running run at its next snapshot (recorded "stopped");
runs not yet begun report status "skipped" and write nothing.

- SerialExecutor: in this process, one run after another (tests, --workers 1).
- DaskExecutor: dask.distributed. By default a LocalCluster started for the sweep and
  closed after it: spawned worker processes, one thread each, one torch thread each
  (small MLPs train faster on one thread; parallelism comes from runs side by side).
  With `scheduler="tcp://host:port"` it runs on an existing cluster instead. Either way
  workers write the run folders themselves, to the sweep folder's absolute path: on a
  real cluster that folder must be shared (NFS or similar) and mounted at the same path
  on the workers; each worker is checked to see it before anything runs. Progress goes
  through a distributed.Queue (one message per snapshot), the stop through a
  distributed.Event that every run polls at each snapshot (Dask's cancel() cannot stop a
  running task).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from .sweep import RunTask, SweepError, snapshot_message
from .threads import available_cores

Handle = Callable[[dict], None]


class Executor:
    """Runs a sweep's tasks; see the module docstring for the message protocol."""

    def run(self, tasks: Sequence[RunTask], handle: Handle, stop: threading.Event) -> None:
        raise NotImplementedError


def _execute(task: RunTask, send: Handle, should_stop: Callable[[], bool],
             threads: int | None) -> dict:
    """Train one task into its folder, sending run_start and snapshot messages; returns
    the run_done message. A task whose stop was asked before it began writes nothing."""
    from .config import from_dict
    from .runs import RunControl, train

    if should_stop():
        return {"kind": "run_done", "run_id": task.run_id, "status": "skipped", "error": None}
    send({"kind": "run_start", "run_id": task.run_id})
    control = RunControl(
        stop_requested=should_stop,
        on_snapshot=lambda snap, info: send(snapshot_message(task.run_id, snap, info)))
    try:
        # An unfinished record there is replaced; a run that cannot be built is recorded.
        outcome = train(from_dict(task.config), task.run_dir, control, force=True,
                        threads=threads, record_from_start=True).as_dict()
    except Exception as exc:  # the record itself could not be created
        where = f" ({exc.filename})" if isinstance(exc, OSError) and exc.filename else ""
        outcome = {"status": "failed", "error": f"{type(exc).__name__}: {exc}{where}"}
    return {"kind": "run_done", "run_id": task.run_id, "status": outcome["status"],
            "error": outcome.get("error"), "outcome": outcome}


class SerialExecutor(Executor):
    """In this process, in order. `threads`: torch threads while it runs (None: as is)."""

    def __init__(self, threads: int | None = None):
        self.threads = threads

    def run(self, tasks, handle, stop) -> None:
        import torch

        before = torch.get_num_threads()
        try:
            for task in tasks:
                handle(_execute(task, handle, stop.is_set, self.threads))
        finally:
            torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------
# Dask


def _warm_worker() -> int:
    """Run on each worker at start: one torch thread, torch and the engine imported."""
    import torch

    from . import experiment  # noqa: F401 - imports torch and the engine once
    from .training import warm_up

    torch.set_num_threads(1)
    warm_up()
    return os.getpid()


def _sees(path: str, token: str) -> bool:
    """On a worker: is the client's marker file there (the sweep folder is shared)?"""
    try:
        return Path(path).read_text(encoding="utf-8") == token
    except OSError:
        return False


@contextlib.contextmanager
def _workers_ignore_sigint():
    """Spawn LocalCluster workers with SIGINT ignored (inherited through exec): Ctrl-C in
    a terminal reaches the whole process group, and a worker killed by it would lose its
    run; the client alone handles Ctrl-C, by asking the runs to stop."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _dask_task(task: RunTask, queue_name: str, event_name: str) -> dict:
    """A sweep run on a Dask worker: progress to the Queue, stop from the Event. Both are
    best effort: a run whose client went away trains on and records its end."""
    from distributed import Event, Queue

    t0 = time.perf_counter()
    q, ev = Queue(queue_name), Event(event_name)
    broken = []

    def send(msg: dict) -> None:
        if not broken:
            try:
                q.put(msg, timeout=10)
            except Exception as exc:  # scheduler gone or slow: stop sending, keep training
                broken.append(exc)

    def should_stop() -> bool:
        try:
            return ev.is_set()
        except Exception:
            return False

    msg = _execute(task, send, should_stop, threads=1)
    if "outcome" in msg:
        msg["outcome"]["task_s"] = time.perf_counter() - t0
    return msg


class DaskExecutor(Executor):
    """Runs on dask.distributed: a LocalCluster of `workers` spawned processes (default:
    min(cores, tasks)), or the existing cluster at `scheduler`. See the module docstring."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None,
                 quiet: bool = True, poll_s: float = 0.2):
        if workers is not None and workers < 1:
            raise SweepError(f"--workers: must be at least 1, got {workers}")
        self.workers = workers
        self.scheduler = scheduler
        self.quiet = quiet
        self.poll_s = poll_s
        self.started_s: float | None = None  # cluster start + worker warm-up, seconds
        self.close_s: float | None = None  # closing the client (and the LocalCluster)
        self.n_workers = 0

    def _client(self, n_tasks: int):
        from distributed import Client, LocalCluster

        if self.scheduler:
            try:
                return Client(self.scheduler, timeout=10), None
            except (OSError, TimeoutError) as exc:
                raise SweepError(
                    f"--scheduler {self.scheduler}: cannot connect ({exc})"
                ) from None
        n = self.workers or min(available_cores(), max(n_tasks, 1))
        with _workers_ignore_sigint():
            cluster = LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=None, scheduler_port=0,
                silence_logs=logging.ERROR if self.quiet else logging.WARNING,
            )
        try:
            return Client(cluster), cluster
        except BaseException:
            cluster.close()
            raise

    def _check_shared(self, client, folder: str) -> None:
        token = uuid.uuid4().hex
        marker = Path(folder) / f".worker-check-{token}"
        marker.write_text(token, encoding="utf-8")
        try:
            seen = client.run(_sees, str(marker), token)
        finally:
            with contextlib.suppress(OSError):
                marker.unlink()
        blind = [w for w, ok in seen.items() if not ok]
        if blind:
            raise SweepError(
                f"worker {blind[0]} cannot see the sweep folder {folder}: workers write the "
                "run records there, so it must be a folder they share, at the same path"
            )

    def run(self, tasks, handle, stop) -> None:
        from distributed import Event, Queue, wait

        if not tasks:
            return
        t0 = time.perf_counter()
        client, cluster = self._client(len(tasks))
        try:
            if self.scheduler:
                client.wait_for_workers(1, timeout=30)
                self._check_shared(client, str(Path(tasks[0].run_dir).parent))
            warm = client.run(_warm_worker)
            self.n_workers = len(warm)
            self.started_s = time.perf_counter() - t0
            name = f"gsh-sweep-{uuid.uuid4().hex}"
            q, ev = Queue(f"{name}-progress", client=client), Event(f"{name}-stop", client)
            futures = [
                client.submit(_dask_task, t, q.name, ev.name, key=f"{name}-{t.run_id}",
                              pure=False, priority=-i)
                for i, t in enumerate(tasks)
            ]
            pending = set(futures)
            stop_sent = False
            while pending:
                if stop.is_set() and not stop_sent:
                    ev.set()
                    stop_sent = True
                with contextlib.suppress(TimeoutError):
                    wait(pending, timeout=self.poll_s, return_when="FIRST_COMPLETED")
                done = {f for f in pending if f.done()}
                pending -= done
                for msg in q.get(batch=True):
                    handle(msg)
                for f in sorted(done, key=futures.index):
                    task = tasks[futures.index(f)]
                    try:
                        msg = f.result()
                    except Exception as exc:  # the worker died or the task raised
                        msg = {"kind": "run_done", "run_id": task.run_id, "status": "failed",
                               "error": f"{type(exc).__name__}: {exc}"}
                    handle(msg)
            with contextlib.suppress(Exception):
                for msg in q.get(batch=True):
                    handle(msg)
        finally:
            t_close = time.perf_counter()
            with contextlib.suppress(Exception):
                client.close()
            if cluster is not None:
                with contextlib.suppress(Exception):
                    cluster.close()
            self.close_s = time.perf_counter() - t_close
