"""Hash index: one-shot learning through an LSH index instead of exact nearest neighbours.

Each unseen class's one exemplar is stored in L SimHash tables of b bits; a query's
candidates are the exemplars sharing its bucket in any table. The panel shows, for the
trained embedding and the raw input, the recall (the true class is a candidate) against
the number of tables L: LSH theory's curves are the recall expected over hyperplanes,
the mean over query-exemplar pairs of 1 - (1 - p_i^b)^L with p_i = 1 - angle_i/pi (not
the theory at the mean p, which by Jensen's inequality under-predicts it). Filled marks
are one draw of tables (the run's), with candidates per query and hash-only one-shot
accuracy in the key, labelled "sampled, one draw", with their spread: the 5th-95th
percentiles over 200 fresh draws of tables (engine.lsh_index.lsh_spreads, computed lazily
once the view has settled, while the panel is shown, in a background process:
engine.background; a second of Python loops there does not hold the GUI's GIL); hollow
marks the expected recall at that L. b and L can be changed after a run: the figures are
recomputed from the snapshot's recorded embedding (engine.lsh_index.lsh_figures, in a
worker thread), no retraining. Behind another tab (the default layout's place) the panel
draws nothing per snapshot: it draws the snapshot on screen when its tab is raised.
"""

from __future__ import annotations

from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets
from superqt.utils import FunctionWorker, create_worker

from app.palette import palette
from app.panels.base import DOT, SOLID, PlotPanel, add_key
from app.view import View
from engine.background import BackgroundProcess
from engine.hashing import SPREAD_DRAWS, lsh_theory_over_pairs
from engine.metrics import Stopped
from engine.snapshot import RunInfo, Snapshot

SPREAD_DELAY_MS = 700  # the spread is computed once the view has rested this long
MIN_HEIGHT = 300  # pixels of plot and key before the panel scrolls
SPREAD_POLL_MS = 50  # how often a spread being computed is checked for its result


class LshPanel(PlotPanel):
    name = "lsh"
    title = "Hash index"

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        pal = palette()
        self.bits = QtWidgets.QSpinBox()
        self.bits.setRange(1, 24)
        self.bits.setPrefix("b ")
        self.bits.setToolTip("Bits per table (hyperplanes per bucket code)")
        self.tables = QtWidgets.QSpinBox()
        self.tables.setRange(1, 64)
        self.tables.setPrefix("L ")
        self.tables.setToolTip("Tables: a query's candidates share a bucket in any of them")
        for w in (self.bits, self.tables):
            self.header.addWidget(w)
            w.valueChanged.connect(self._on_hash_changed)
        self.plot = self.add_plot(row=0, col=0)
        self.plot.setLabel("bottom", "tables L")
        self.plot.setLabel("left", "recall")
        for axis in ("left", "bottom"):  # rates as they are, never rescaled ("x0.001")
            self.plot.getAxis(axis).enableAutoSIPrefix(False)
        self.plot.setYRange(0.0, 1.0, padding=0.02)
        # expected recall against L at the chosen b, averaged over pairs: trained, raw
        self.theory = pg.PlotDataItem(pen=pal.curve_pens["theory"])
        raw_theory = pg.mkPen(pal.curve_pens["theory"])
        raw_theory.setStyle(QtCore.Qt.PenStyle.DashLine)
        self.theory_raw = pg.PlotDataItem(pen=raw_theory)
        self.trained = pg.ScatterPlotItem(size=12, symbol="o", pen=pal.no_pen,
                                          brush=pg.mkBrush(*pal.curve_pens["trained"].color()
                                                           .getRgb()[:3]))
        self.raw = pg.ScatterPlotItem(size=12, symbol="s", pen=pal.no_pen,
                                      brush=pg.mkBrush(*pal.curve_pens["raw"].color()
                                                       .getRgb()[:3]))
        self.expected = pg.ScatterPlotItem(size=12, symbol="o", brush=pg.mkBrush(0, 0, 0, 0),
                                           pen=pg.mkPen("#333333", width=1.5))
        for item in (self.theory, self.theory_raw, self.trained, self.raw, self.expected):
            self.plot.addItem(item)
        # The key says what each mark is and carries the figures (the header is short).
        self._marks_key = [(DOT, pal.curve_pens["trained"], "trained embedding"),
                           ("■", pal.curve_pens["raw"], "raw input"),
                           (SOLID, pal.curve_pens["theory"],
                            "expected, mean over pairs of 1 - (1 - p_i^b)^L (dashed: raw)"),
                           ("○", "#333333", "expected over hyperplanes")]
        self.key = add_key(self.graphics, 1, 0, [self._marks_key])
        # The key's figures take about eight lines: below MIN_HEIGHT the panel scrolls
        # rather than squeeze the plot flat (the bottom row of a 1366x768 window).
        self.graphics.ci.layout.setRowStretchFactor(0, 10)
        self.scroll_below(MIN_HEIGHT)
        self.figures: dict | None = None  # {"trained": {...}, "raw": {...}} on screen
        self._view: View | None = None
        self._worker: FunctionWorker | None = None
        self._pending = False
        # (snapshot, {"trained": p_i, "raw": p_i})
        self._pairs: tuple[Snapshot, dict[str, np.ndarray]] | None = None
        # the run's fixed part: [probe, config, episodes, raw p_i, ((b, n), raw curve),
        # the pairs' rows (hashing.lsh_pair_index)]
        self._run_pairs: list | None = None
        # the one-draw figures' spread over SPREAD_DRAWS draws: (snapshot, b, L) -> {side:
        # {figure: (lo, hi)}}; the raw input's is the run's, kept per (run, b, L)
        self.spread: dict | None = None
        self._raw_spread: dict = {}
        # the spread being computed: (key, run, the raw side's spread if known, future)
        self._spread_job: tuple[tuple, RunInfo, dict | None, Future[dict]] | None = None
        self._background: BackgroundProcess | None = None  # started with the first spread
        self._spread_poll = QtCore.QTimer(self)
        self._spread_poll.setInterval(SPREAD_POLL_MS)
        self._spread_poll.timeout.connect(self._poll_spread)
        self._spread_timer = QtCore.QTimer(self)
        self._spread_timer.setSingleShot(True)
        self._spread_timer.setInterval(SPREAD_DELAY_MS)
        self._spread_timer.timeout.connect(self._start_spread)
        self._closing = False
        self._stale = False  # a view arrived while hidden and is not drawn yet
        self._exposed = True  # False while its dock is a tab behind another

    # -- data in -------------------------------------------------------------------
    def set_view(self, view: View) -> None:
        if self._view is not None and view.snapshot is self._view.snapshot:
            return
        first = self._view is None
        self._view = view
        if first:  # start from the run's own b and L
            for spin, value in ((self.bits, view.run.bits), (self.tables, view.run.tables)):
                with QtCore.QSignalBlocker(spin):
                    spin.setValue(value)
        if not (self._exposed and self.isVisible()):  # drawn when shown (set_exposed)
            self._stale = True
            self.set_info(f"step {view.snapshot.step}")
            return
        self._update()

    def clear(self) -> None:
        self._view = None
        self._stale = False
        self.figures = None
        self._pairs = self._run_pairs = None
        self.spread = None
        self._raw_spread = {}
        self._spread_timer.stop()
        for item in (self.theory, self.theory_raw, self.trained, self.raw, self.expected):
            item.clear()
        if hasattr(self, "key"):
            self.key.set_lines([self._marks_key])
        self._cleared()

    def wait(self, timeout_ms: int = 10_000) -> None:
        """Block until a running recomputation has finished (tests, shutdown)."""
        if self._worker is not None:
            QtCore.QThreadPool.globalInstance().waitForDone(timeout_ms)
        if self._spread_job is not None:
            from concurrent.futures import wait

            wait([self._spread_job[3]], timeout=timeout_ms / 1000)

    def shutdown(self, timeout_ms: int = 2000) -> None:
        """The window is closing: a spread being computed stops at its next episode,
        and nothing new starts; wait for the b/L worker and the spread's process."""
        self._closing = True
        self._spread_timer.stop()
        self._spread_poll.stop()
        if self._worker is not None:
            QtCore.QThreadPool.globalInstance().waitForDone(timeout_ms)
        if self._background is not None:
            self._background.shutdown()  # cancels, then joins (an episode: milliseconds)
            self._background = None
        self._spread_job = None

    def settle(self, timeout_ms: int = 60_000) -> None:
        """Compute the spread of the figures on screen now and wait for it (tests,
        screenshots)."""
        import time

        self._draw_stale()
        self._spread_timer.stop()
        end = time.monotonic() + timeout_ms / 1000
        while time.monotonic() < end and self.figures is not None and not self._closing:
            self._start_spread(hidden_too=True)
            if self.spread is not None and self.spread.get("key") == self._spread_key():
                return
            QtCore.QCoreApplication.processEvents(
                QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
            QtCore.QThread.msleep(20)

    # -- internals -----------------------------------------------------------------
    def _on_hash_changed(self, _value: int) -> None:
        self._update()

    def _update(self) -> None:
        view = self._view
        if view is None:
            return
        snap, run = view.snapshot, view.run
        b, L = self.bits.value(), self.tables.value()
        self._cancel_stale_spread()
        self._show_theory(view, b, L)
        if (b, L) == (run.bits, run.tables):  # measured with the snapshot
            self._show(snap, b, L, {
                side: {k: float(getattr(source, f"lsh_{k}_{side}"))
                       for k in ("recall", "candidates", "oneshot", "bit_agreement",
                                 "recall_theory")}
                for side, source in (("trained", snap), ("raw", run))})
            return
        if self._worker is not None:  # one at a time; the newest b and L run next
            self._pending = True
            return
        from engine.lsh_index import lsh_figures

        self.set_info(f"step {snap.step} · computing {b} bits × {L} tables…")
        worker = create_worker(lsh_figures, snap, view.probe, view.config, b, L,
                               _start_thread=False)
        worker.returned.connect(lambda figs: self._on_computed(snap, b, L, figs))
        worker.errored.connect(lambda exc: self.set_info(f"cannot compute: {exc}"))
        # superqt types `finished` (no arguments) as a signal of one None argument
        worker.finished.connect(self._on_worker_finished)  # type: ignore[arg-type]
        self._worker = worker
        worker.start()

    def _on_computed(self, snap: Snapshot, b: int, L: int, figures: dict) -> None:
        current = self._view is not None and snap is self._view.snapshot
        if current and (b, L) == (self.bits.value(), self.tables.value()):
            self._show(snap, b, L, figures)

    def _on_worker_finished(self) -> None:
        self._worker = None
        if self._pending:
            self._pending = False
            self._update()

    def _show_theory(self, view: View, b: int, L: int) -> None:
        """The expected-recall curves over L at b, from the snapshot's per-pair p_i. The
        run's episodes, the raw input's p_i and its curve are fixed per run: computed
        once, not on the GUI thread at every snapshot."""
        from engine.hashing import lsh_pair_index
        from engine.lsh_index import lsh_pairs
        from engine.measure import probe_episodes

        run = self._run_pairs
        if run is None or run[0] is not view.probe or run[1] is not view.config:
            episodes = probe_episodes(view.config, view.probe)
            run = self._run_pairs = [view.probe, view.config, episodes, None, None,
                                     lsh_pair_index(episodes)]
        if self._pairs is None or self._pairs[0] is not view.snapshot:
            pairs = lsh_pairs(view.snapshot, view.probe, view.config, run[2], raw=run[3],
                              index=run[5])
            run[3] = pairs["raw"]
            self._pairs = (view.snapshot, pairs)
        tables = np.arange(1, max(2 * L, 16) + 1)
        if run[4] is None or run[4][0] != (b, len(tables)):
            run[4] = ((b, len(tables)), lsh_theory_over_pairs(run[3], b, tables))
        self.theory.setData(tables, lsh_theory_over_pairs(self._pairs[1]["trained"], b, tables))
        self.theory_raw.setData(tables, run[4][1])
        self.plot.setXRange(1, tables[-1], padding=0.02)

    def _start_spread(self, hidden_too: bool = False) -> None:
        """Compute the spread of the figures on screen (engine.lsh_index.lsh_spreads) in
        the background process (one view at a time; the view on screen when it ends is
        asked for next)."""
        view = self._view
        if (view is None or self.figures is None or self._spread_job is not None
                or self._closing or not (hidden_too or self._exposed and self.isVisible())):
            return  # a hidden panel asks when it is shown (showEvent)
        b, L = self.bits.value(), self.tables.value()
        key = self._spread_key()
        if key is None or (self.spread is not None and self.spread.get("key") == key):
            return
        from engine.lsh_index import lsh_spreads

        run_raw = self._raw_spread.get((id(view.run), b, L))
        raw = run_raw[1] if run_raw is not None and run_raw[0] is view.run else None
        sides = ("trained",) if raw is not None else ("trained", "raw")
        if self._background is None:
            self._background = BackgroundProcess()
        job = self._background.submit(lsh_spreads, view.snapshot, view.probe, view.config,
                                      b, L, sides)
        self._spread_job = (key, view.run, raw, job)
        self._spread_poll.start()

    def _poll_spread(self) -> None:
        if self._spread_job is None or not self._spread_job[3].done():
            return
        key, run, raw, job = self._spread_job
        self._spread_poll.stop()
        self._spread_job = None
        error = job.exception()
        if error is None:
            self._on_spread(key, run, {"raw": raw, **job.result()})
        elif not isinstance(error, Stopped):  # stopped: the view on screen changed
            if isinstance(error, BrokenProcessPool) and self._background is not None:
                self._background.shutdown()  # a fresh process for the next spread
                self._background = None
            self.set_info(f"cannot compute the spread: {error}")
        self._on_spread_finished()

    def _cancel_stale_spread(self) -> None:
        """The spread being computed is no longer of the view on screen: stop it."""
        if (self._spread_job is not None and self._background is not None
                and self._spread_job[0] != self._spread_key()):
            self._background.cancel()

    def _spread_key(self) -> tuple | None:
        """What the spread on screen must be of: (snapshot id, b, L); the snapshot is
        held by the view (and by self.spread), so its id is not reused meanwhile."""
        if self._view is None:
            return None
        return (id(self._view.snapshot), self.bits.value(), self.tables.value())

    def _on_spread(self, key: tuple, run: RunInfo, spread: dict) -> None:
        self._raw_spread[(id(run), key[1], key[2])] = (run, spread["raw"])
        view = self._view
        if view is None or key != self._spread_key():
            return
        self.spread = {"key": key, "snapshot": view.snapshot, **spread}
        if self.figures is not None:
            self._render_key(view.snapshot)

    def showEvent(self, event: QtGui.QShowEvent) -> None:
        super().showEvent(event)
        self._draw_stale()
        if self.figures is not None and not self._closing:
            self._spread_timer.start()

    def set_exposed(self, exposed: bool) -> None:
        """Its dock's tab was raised (True), or put behind another tab or closed: a
        hidden tab draws nothing per snapshot and computes no spread."""
        self._exposed = exposed
        if exposed:
            self._draw_stale()
            if self.figures is not None and not self._closing:
                self._spread_timer.start()
        else:
            self._spread_timer.stop()
            if self._spread_job is not None and self._background is not None:
                self._background.cancel()  # asked again when shown

    def _draw_stale(self) -> None:
        if self._stale and not self._closing:
            self._stale = False
            self._update()

    def hideEvent(self, event: QtGui.QHideEvent) -> None:
        super().hideEvent(event)
        self._spread_timer.stop()
        if self._spread_job is not None and self._background is not None:
            self._background.cancel()  # asked again when shown

    def _on_spread_finished(self) -> None:
        view = self._view
        if not self._closing and view is not None and self.figures is not None and (
                self.spread is None or self.spread.get("key") != self._spread_key()):
            self._spread_timer.start()

    def _show(self, snap: Snapshot, b: int, L: int, figures: dict) -> None:
        self.figures = figures
        t, r = figures["trained"], figures["raw"]
        self.trained.setData([L], [t["recall"]])
        self.raw.setData([L], [r["recall"]])
        self.expected.setData([L, L],
                              [t.get("recall_theory", np.nan), r.get("recall_theory", np.nan)])

        self._render_key(snap)
        self.set_info(f"step {snap.step} · {b} bits × {L} tables, sampled: one draw "
                      "(figures in the key)")
        if not self._closing:
            self._spread_timer.start()  # the spread, once the view has settled
        self._changed()

    def _render_key(self, snap: Snapshot) -> None:
        if self.figures is None:
            return
        t, r = self.figures["trained"], self.figures["raw"]
        spread = self.spread if (self.spread is not None
                                 and self.spread.get("key") == self._spread_key()) else None

        def expected(side: dict) -> str:
            e = side.get("recall_theory", np.nan)
            return f" (expected {e:.2f})" if e == e else ""

        def line(words: str, side: str, f: dict, extra: str) -> str:
            """One side's one-draw figures, each with its [5th-95th percentile] over
            SPREAD_DRAWS draws of tables when computed."""
            s = spread.get(side) if spread is not None else None

            def pct(k: str, d: int) -> str:
                return f" [{s[k][0]:.{d}f}–{s[k][1]:.{d}f}]" if s else ""

            head = (f"{words}, sampled, one draw; [5–95% over {SPREAD_DRAWS} draws"
                    + ("]: " if s else ": computing…]: "))
            return (head + f"recall {f['recall']:.2f}{pct('recall', 2)}{expected(f)} · "
                    f"{f['candidates']:.1f}{pct('candidates', 1)} candidates · one-shot "
                    f"{f['oneshot']:.2f}{pct('oneshot', 2)}{extra} · p {f['bit_agreement']:.2f}")

        self.key.set_lines([
            self._marks_key,
            [("", "#333333", line("trained", "trained", t,
                                  f" (exact {snap.oneshot_trained:.2f})"))],
            [("", "#333333", line("raw input", "raw", r, ""))],
        ])
