"""Following a run recorded elsewhere (a headless `main.py run`, a sweep's worker on a
Dask cluster sharing the folder): new snapshots appear as they are written.

The run folder and its snapshots/ folder are watched (QFileSystemWatcher: inotify where
there is one); a one-second check re-reads the record only when the watcher saw a change
(or every CHECK_EVERY seconds on file systems that send no notices, like NFS) and asks
whether the writer still holds its lock. So nothing is polled faster than once a second.
Once the run.json says it ended, or its writer is gone (killed: "did not finish"), a
last read is made and the follower stops. A sweep folder is followed the same way
(SweepFollower) while its sweep process, or any of its runs' writers, is alive.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from PySide6 import QtCore, QtWidgets

from app.store import SnapshotStore
from engine.record import RunReader
from engine.record_format import SNAPSHOTS, RunRecordError

TICK_MS = 1000  # the fastest the record is ever re-read
CHECK_EVERY = 5  # ticks between reads without a notice (file systems without inotify)


class FollowedSession(Protocol):
    """What follow_window_run reads of the window's RunSession (app.session)."""

    reader: RunReader | None
    store: SnapshotStore


class FollowingWindow(Protocol):
    """What follow_window_run uses of the main window (app.window)."""

    run_label: QtWidgets.QLabel

    @property
    def session(self) -> FollowedSession: ...

    def refresh(self) -> None: ...

    def statusBar(self) -> QtWidgets.QStatusBar: ...


class _Follower(QtCore.QObject):
    """What both followers share: the watcher, the one-second tick, and when to re-read
    (a notice, CHECK_EVERY quiet ticks, or the writer gone). A subclass says what it
    watches (`_watch`), whether anything still records (`_alive`), what a re-read does
    (`_read`) and how it ends (`_end`)."""

    def __init__(self, parent: QtCore.QObject | None, tick_ms: int, dirty: bool) -> None:
        super().__init__(parent)
        self.watcher = QtCore.QFileSystemWatcher(self)
        self.watcher.directoryChanged.connect(self._on_notice)
        self.watcher.fileChanged.connect(self._on_notice)
        self._dirty = dirty
        self._quiet_ticks = 0
        self.reads = 0  # re-reads of the record so far (tests check the pace)
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(max(int(tick_ms), TICK_MS))
        self.timer.timeout.connect(self._on_tick)

    @property
    def following(self) -> bool:
        return self.timer.isActive()

    def _on_notice(self, _path: str) -> None:
        self._dirty = True

    def _on_tick(self) -> None:
        self._quiet_ticks += 1
        alive = self._alive()
        if self._dirty or self._quiet_ticks >= CHECK_EVERY or not alive:
            self._dirty = False
            self._quiet_ticks = 0
            self.reads += 1
            self._watch()  # folders appear as the record grows (snapshots/, runs/<id>)
            self._read()
        if not alive:
            self.stop()
            self._end()

    def stop(self) -> None:
        """Stop following (the timer and the watches); safe to call twice."""
        self.timer.stop()
        paths = self.watcher.directories() + self.watcher.files()
        if paths:
            self.watcher.removePaths(paths)

    def _watch(self) -> None:
        raise NotImplementedError

    def _alive(self) -> bool:
        raise NotImplementedError

    def _read(self) -> None:
        raise NotImplementedError

    def _end(self) -> None:
        raise NotImplementedError


class RunFollower(_Follower):
    """Follows one RunReader: `grew(new steps)` after the record gained snapshots,
    `ended(display status)` once when the run ends or its writer is gone."""

    grew = QtCore.Signal(list)
    ended = QtCore.Signal(str)

    def __init__(self, reader: RunReader, parent: QtCore.QObject | None = None,
                 tick_ms: int = TICK_MS, wanted: Callable[[], bool] | None = None) -> None:
        super().__init__(parent, tick_ms, dirty=True)
        self.reader = reader
        self.wanted = wanted  # a callable: False once nobody shows the run any more
        self._watch()
        self.timer.start()

    def _watch(self) -> None:
        paths = [self.reader.path, self.reader.path / SNAPSHOTS]
        have = set(self.watcher.directories())
        for p in paths:
            if p.is_dir() and str(p) not in have:
                self.watcher.addPath(str(p))

    def _on_tick(self) -> None:
        if self.wanted is not None and not self.wanted():
            self.stop()
            return
        super()._on_tick()

    def _alive(self) -> bool:
        return self.reader.live

    def _read(self) -> None:
        try:
            new = self.reader.refresh()
        except (OSError, RunRecordError):
            return
        if new:
            self.grew.emit(new)

    def _end(self) -> None:
        self.ended.emit(self.reader.display_status)


def follow_window_run(window: FollowingWindow, session: FollowedSession) -> RunFollower | None:
    """While another process records the run the window has just opened, follow it:
    new snapshots join the session's store and the timeline (shown at once when the
    timeline is live), and the status bar says when it ends. None for a run that ended."""
    reader = session.reader
    if reader is None or not reader.live:
        return None
    parent = window if isinstance(window, QtCore.QObject) else None  # the window: a QObject
    follower = RunFollower(reader, parent=parent, wanted=lambda: window.session is session)

    def grew(_steps: list[int]) -> None:
        session.store.extend(reader)
        window.refresh()

    def ended(status: str) -> None:
        session.store.extend(reader)
        window.refresh()
        window.run_label.setText(f"recorded run: {status}")
        window.statusBar().showMessage(f"{reader.path.name}: {status}, {len(session.store)} "
                                       "snapshots", 10000)

    follower.grew.connect(grew)
    follower.ended.connect(ended)
    window.run_label.setText("recorded run: running elsewhere (following)")
    return follower


def sweep_alive(folder: Path) -> bool:
    """Another process is running the sweep in `folder` (it holds the sweep's lock), or
    one of its runs is still being recorded (a Dask worker sharing the folder)."""
    from engine.record_format import lock_held, writer_alive
    from engine.sweep import LOCK, RUNS

    if lock_held(Path(folder) / LOCK, folder):
        return True
    runs = Path(folder) / RUNS
    try:
        return any(writer_alive(p) for p in runs.iterdir() if p.is_dir())
    except OSError:
        return False


class SweepFollower(_Follower):
    """Follows a sweep folder another process is running: `changed` when a run folder
    appeared or a run's record grew (read at most once a second), `ended` once nothing
    records into it any more."""

    changed = QtCore.Signal()
    ended = QtCore.Signal()

    def __init__(self, folder: str | Path, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent, TICK_MS, dirty=False)
        self.folder = Path(folder)
        self._watch()
        self.timer.start()

    def _watch(self) -> None:
        from engine.sweep import RUNS

        have = set(self.watcher.directories())
        runs = self.folder / RUNS
        paths = [self.folder, runs]
        if runs.is_dir():
            for run in runs.iterdir():
                paths += [run, run / SNAPSHOTS]
        new = [str(p) for p in paths if p.is_dir() and str(p) not in have]
        if new:
            self.watcher.addPaths(new)

    def _alive(self) -> bool:
        return sweep_alive(self.folder)

    def _read(self) -> None:
        self.changed.emit()

    def _end(self) -> None:
        self.ended.emit()
