"""Hash index: one-shot learning through an LSH index instead of exact nearest neighbours.

Each unseen class's one exemplar is stored in L SimHash tables of b bits; a query's
candidates are the exemplars sharing its bucket in any table. The panel shows, for the
trained embedding and the raw input, the recall (the true class is a candidate) against
the number of tables L: LSH theory's curves are the recall expected over hyperplanes,
the mean over query-exemplar pairs of 1 - (1 - p_i^b)^L with p_i = 1 - angle_i/pi (not
the theory at the mean p, which by Jensen's inequality under-predicts it). Filled marks
are one draw of tables (the run's), with candidates per query and hash-only one-shot
accuracy in the key; hollow marks the expected recall at that L. b and L can
be changed after a run: the figures are recomputed from the snapshot's recorded
embedding (engine.training.lsh_figures, in a worker thread), no retraining.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets
from superqt.utils import FunctionWorker, create_worker

from app.palette import palette
from app.panels.base import DOT, SOLID, PlotPanel, add_key
from app.view import View
from engine.hashing import lsh_theory_over_pairs
from engine.snapshot import Snapshot


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
        self.figures: dict | None = None  # {"trained": {...}, "raw": {...}} on screen
        self._view: View | None = None
        self._worker: FunctionWorker | None = None
        self._pending = False
        # (snapshot, {"trained": p_i, "raw": p_i})
        self._pairs: tuple[Snapshot, dict[str, np.ndarray]] | None = None
        # the run's fixed part: [probe, config, episodes, raw p_i, ((b, n), raw curve)]
        self._run_pairs: list | None = None

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
        self._update()

    def clear(self) -> None:
        self._view = None
        self.figures = None
        self._pairs = self._run_pairs = None
        for item in (self.theory, self.theory_raw, self.trained, self.raw, self.expected):
            item.clear()
        if hasattr(self, "key"):
            self.key.set_lines([self._marks_key])
        self._cleared()

    def wait(self, timeout_ms: int = 10_000) -> None:
        """Block until a running recomputation has finished (tests, shutdown)."""
        if self._worker is not None:
            QtCore.QThreadPool.globalInstance().waitForDone(timeout_ms)

    # -- internals -----------------------------------------------------------------
    def _on_hash_changed(self, _value: int) -> None:
        self._update()

    def _update(self) -> None:
        view = self._view
        if view is None:
            return
        snap, run = view.snapshot, view.run
        b, L = self.bits.value(), self.tables.value()
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
        from engine.training import lsh_figures

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
        from engine.training import lsh_pairs, probe_episodes

        run = self._run_pairs
        if run is None or run[0] is not view.probe or run[1] is not view.config:
            run = self._run_pairs = [view.probe, view.config,
                                     probe_episodes(view.config, view.probe), None, None]
        if self._pairs is None or self._pairs[0] is not view.snapshot:
            pairs = lsh_pairs(view.snapshot, view.probe, view.config, run[2], raw=run[3])
            run[3] = pairs["raw"]
            self._pairs = (view.snapshot, pairs)
        tables = np.arange(1, max(2 * L, 16) + 1)
        if run[4] is None or run[4][0] != (b, len(tables)):
            run[4] = ((b, len(tables)), lsh_theory_over_pairs(run[3], b, tables))
        self.theory.setData(tables, lsh_theory_over_pairs(self._pairs[1]["trained"], b, tables))
        self.theory_raw.setData(tables, run[4][1])
        self.plot.setXRange(1, tables[-1], padding=0.02)

    def _show(self, snap: Snapshot, b: int, L: int, figures: dict) -> None:
        self.figures = figures
        t, r = figures["trained"], figures["raw"]
        self.trained.setData([L], [t["recall"]])
        self.raw.setData([L], [r["recall"]])
        self.expected.setData([L, L],
                              [t.get("recall_theory", np.nan), r.get("recall_theory", np.nan)])

        def expected(side: dict) -> str:
            e = side.get("recall_theory", np.nan)
            return f" (expected {e:.2f})" if e == e else ""

        self.key.set_lines([
            self._marks_key,
            [("", "#333333", f"trained, one draw of tables: recall {t['recall']:.2f}"
              f"{expected(t)} · p {t['bit_agreement']:.2f} · {t['candidates']:.1f} candidates"
              f" · one-shot {t['oneshot']:.2f} (exact {snap.oneshot_trained:.2f})")],
            [("", "#333333", f"raw input: recall {r['recall']:.2f}{expected(r)} · "
              f"p {r['bit_agreement']:.2f} · {r['candidates']:.1f} candidates · "
              f"one-shot {r['oneshot']:.2f}")],
        ])
        self.set_info(f"step {snap.step} · {b} bits × {L} tables, one draw (figures in the key)")
        self._changed()
