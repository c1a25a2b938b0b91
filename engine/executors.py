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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .sweep_spec import SweepError
from .threads import available_cores

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

    from .snapshot import RunInfo, Snapshot

Handle = Callable[[dict], None]

EVENT_FIGURES = ("loss", "oneshot_trained", "unseen_same_class_collision",
                 "unseen_different_class_collision", "same_class_collision",
                 "different_class_collision", "invariance_trained", "collapsed")


def snapshot_message(run: str, snap: Snapshot, info: RunInfo) -> dict:
    """The small, picklable progress message a run sends per snapshot: its figures and the
    run's baselines (RunInfo), so a live sweep draws both before the run ends."""
    return {"kind": "snapshot", "run_id": run, "step": int(snap.step),
            "total_steps": int(info.total_steps),
            "figures": {**{k: getattr(snap, k) for k in EVENT_FIGURES}, **info.baselines()}}


@dataclass
class RunTask:
    """What an executor needs to run one grid point (picklable)."""

    run_id: str
    config: dict
    run_dir: str


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

    def run(self, tasks: Sequence[RunTask], handle: Handle, stop: threading.Event) -> None:
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
def _workers_ignore_sigint() -> Iterator[None]:
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
    broken: list[Exception] = []

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


CONNECT_S = 10.0  # one deadline for reaching a --scheduler, handshake included


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def probe_scheduler(address: str, deadline_s: float | None = None) -> dict:
    """The identity of the Dask scheduler at `address` (tcp:// or tls://; tls uses the
    Security of the user's Dask config), within one overall deadline; SweepError naming
    the address otherwise: malformed, refused, silent, or another service."""
    import asyncio

    from distributed import Security
    from distributed.comm import connect
    from distributed.comm.addressing import parse_address, parse_host_port

    deadline_s = CONNECT_S if deadline_s is None else deadline_s
    try:
        scheme, location = parse_address(address, strict=True)
        parse_host_port(location)
    except ValueError as exc:
        raise SweepError(f"--scheduler {address}: not a Dask address, e.g. "
                         f"tcp://host:8786 or tls://host:8786 ({_one_line(exc)})") from None
    security = Security()
    # Security declares its fields in __slots__ and sets them by name: unseen by mypy
    if address.startswith("tls://") and not security.tls_client_cert:  # type: ignore[attr-defined]
        raise SweepError(f"--scheduler {address}: a tls:// scheduler needs your client "
                         "certificate in the Dask config (distributed.comm.tls.ca-file, "
                         "distributed.comm.tls.client.cert and .key)")

    async def identity() -> dict:
        comm = await connect(address, timeout=deadline_s,
                             **security.get_connection_args("client"))
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    try:
        found = asyncio.run(asyncio.wait_for(identity(), deadline_s))
    except TimeoutError:
        raise SweepError(f"--scheduler {address}: no Dask scheduler answered within "
                         f"{deadline_s:g} s") from None
    except (ValueError, MemoryError, TypeError, KeyError) as exc:  # frames it cannot read
        raise SweepError(f"--scheduler {address}: the service there is not a Dask scheduler "
                         f"({_one_line(exc)})") from None
    except Exception as exc:  # refused, TLS refused, or a service speaking another protocol
        raise SweepError(f"--scheduler {address}: cannot connect to a Dask scheduler "
                         f"({type(exc).__name__}: {_one_line(exc)})") from None
    if not isinstance(found, dict) or found.get("type") != "Scheduler":
        raise SweepError(f"--scheduler {address}: the service there is not a Dask scheduler")
    return found


def start_local_cluster(n: int, quiet: bool = True, dashboard: bool = False) -> LocalCluster:
    """A LocalCluster of `n` spawned worker processes (one thread each) that only this
    process can use: TLS with a temporary certificate authority held in memory
    (Security.temporary: scheduler, workers and client each prove they hold it), on
    127.0.0.1 and random ports; the scheduler's and workers' HTTP servers serve no
    route (no identity, no dashboard) unless `dashboard`; each worker's memory limit is
    this machine's share (engine.resources) divided among the workers."""
    import dask
    from distributed import LocalCluster, Security

    from .resources import memory_limit

    routes: dict[str, list[str]] = {"distributed.worker.http.routes": []}
    if not dashboard:
        routes["distributed.scheduler.http.routes"] = []
    with _workers_ignore_sigint(), dask.config.set(routes):
        return LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
            protocol="tls://", security=Security.temporary(), scheduler_port=0,
            dashboard_address="127.0.0.1:0" if dashboard else None,
            scheduler_kwargs=None if dashboard else {"dashboard_address": "127.0.0.1:0"},
            worker_dashboard_address=None, memory_limit=max(memory_limit() // n, 1 << 28),
            silence_logs=logging.ERROR if quiet else logging.WARNING,
        )


class DaskExecutor(Executor):
    """Runs on dask.distributed: a LocalCluster of `workers` spawned processes (default:
    min(cores, tasks)), or the existing cluster at `scheduler`. See the module docstring."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None,
                 quiet: bool = True, poll_s: float = 0.2, dashboard: bool = False,
                 connect_s: float | None = None):
        if workers is not None and workers < 1:
            raise SweepError(f"--workers: must be at least 1, got {workers}")
        self.workers = workers
        self.scheduler = scheduler
        self.quiet = quiet
        self.poll_s = poll_s
        self.dashboard = dashboard  # the LocalCluster's HTTP dashboard, on a random port
        self.connect_s = CONNECT_S if connect_s is None else connect_s
        self.dashboard_link: str | None = None
        self.started_s: float | None = None  # cluster start + worker warm-up, seconds
        self.close_s: float | None = None  # closing the client (and the LocalCluster)
        self.n_workers = 0

    def check_scheduler(self) -> None:
        """With `scheduler`: SweepError (one line) unless a Dask scheduler answers there
        within connect_s, handshake included (a silent listener or another service too);
        tls:// addresses use the Security of the user's Dask config."""
        if self.scheduler:
            probe_scheduler(self.scheduler, self.connect_s)

    def _client(self, n_tasks: int) -> tuple[Client, LocalCluster | None]:
        from distributed import Client, Security

        if self.scheduler:
            self.check_scheduler()
            try:
                return Client(self.scheduler, timeout=self.connect_s,
                              security=Security()), None
            except Exception as exc:  # gone since the probe, refused, misconfigured
                raise SweepError(f"--scheduler {self.scheduler}: cannot connect "
                                 f"({_one_line(exc)})") from None
        n = self.workers or min(available_cores(), max(n_tasks, 1))
        cluster = start_local_cluster(n, quiet=self.quiet, dashboard=self.dashboard)
        if self.dashboard:
            import sys

            self.dashboard_link = cluster.dashboard_link
            print(f"gsh-lab: Dask dashboard at {self.dashboard_link}", file=sys.stderr)
        try:
            return Client(cluster), cluster
        except BaseException:
            cluster.close()
            raise

    def _check_shared(self, client: Client, folder: str) -> None:
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

    def run(self, tasks: Sequence[RunTask], handle: Handle, stop: threading.Event) -> None:
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


def choose_executor(workers: int | None = None, scheduler: str | None = None, runs: int = 1,
                    threads: int | None = None, dashboard: bool = False) -> Executor:
    """Where a sweep's runs train: the cluster at `scheduler` when given; else one run at a
    time in this process (torch `threads`) when there is one worker, else a LocalCluster
    of `workers` (default: the cores, at most one per run; `dashboard`: serve Dask's)."""
    if workers is not None and workers < 1:
        raise SweepError(f"--workers: must be at least 1, got {workers}")
    if scheduler:
        return DaskExecutor(workers=workers, scheduler=scheduler)
    workers = workers or min(available_cores(), max(runs, 1))
    if workers == 1:
        return SerialExecutor(threads=threads)
    return DaskExecutor(workers, dashboard=dashboard)
