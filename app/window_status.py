"""The status bar: progress, step, rate, ETA, device, projection and the collapse marker
(the headline figures of the step on screen go in the toolbar; the status bar's left part
is for messages).

A mixin of app.window.MainWindow (it relies on the window's attributes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6 import QtWidgets

from app.palette import palette
from app.panels.base import EMPTY_TEXT
from app.panels.projection import ProjectionPanel
from app.runner import PAUSED, PAUSING, RUNNING

if TYPE_CHECKING:
    from app.view import View
    from app.window_host import WindowHost
else:
    WindowHost = object  # the type checker's view of MainWindow (app.window_host)

TORCH_LOADING = "loading torch and the optimisers…"
UMAP_STARTING = "starting the UMAP worker (PCA until it is ready)…"


class ProgressBar(QtWidgets.QProgressBar):
    """The run's progress, painted with the rest of the window: QProgressBar.setValue
    repaints at once, and that paints every update the window has pending (Start clears
    every panel: window.start() took 48 ms with that paint, 15-23 ms without)."""

    def setValue(self, value: int) -> None:
        if value == self.value() or not self.updatesEnabled():  # frozen: a round's flip
            super().setValue(value)
            return
        self.setUpdatesEnabled(False)
        super().setValue(value)
        self.setUpdatesEnabled(True)  # asks for a paint, with the window's next


class StatusMixin(WindowHost):
    def _build_status(self) -> None:
        sb = self.statusBar()
        self.progress = ProgressBar()
        self.progress.setMaximumWidth(180)
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("%p%")
        self.status_step = QtWidgets.QLabel("step –")
        self.status_rate = QtWidgets.QLabel("– steps/s")
        self.status_eta = QtWidgets.QLabel("ETA –")
        self.status_device = QtWidgets.QLabel("device –")
        self.status_projection = QtWidgets.QLabel("projection –")
        self.status_projection.setObjectName("projectionNote")  # names its frame's step
        # The headline figures of the newest snapshot: one-shot and the unseen classes'
        # bucket collisions beside all classes' (the one-shot claim is about unseen ones).
        self.status_figures = QtWidgets.QLabel("")
        self.status_figures.setObjectName("statusFigures")
        self.status_health = QtWidgets.QLabel("")
        self.status_health.setObjectName("statusHealth")
        self.status_health.setStyleSheet(f"color: {palette().alarm_hex}; font-weight: bold;")
        self.status_health.hide()
        widths = (None, 170, 90, 80, 90, 270)
        # The headline figures sit in the toolbar, so the status bar's left part is the
        # messages' own ("Wrote …" is never covered by them).
        toolbar = self.findChild(QtWidgets.QToolBar, "toolbar_run")
        if toolbar is not None:
            toolbar.addSeparator()
            self.status_figures.setContentsMargins(8, 0, 8, 0)
            toolbar.addWidget(self.status_figures)
        else:
            sb.addPermanentWidget(self.status_figures)
        sb.addPermanentWidget(self.status_health)
        for w, width in zip((self.progress, self.status_step, self.status_rate, self.status_eta,
                             self.status_device, self.status_projection), widths, strict=True):
            if width:
                w.setFixedWidth(width)  # text updates must not re-layout the window
            sb.addPermanentWidget(w)

    def _loading(self) -> tuple[bool, bool]:
        """(torch still loading, the UMAP worker still starting): both load after the
        window shows (the standby training child: MainWindow.start_warm_up; app.projector)."""
        torch = not self._closing and self.runner.loading
        service = self.projector.service
        umap = (not self._closing and self.projector.params.get("method") == "umap"
                and service is not None and not service.umap_ready
                and self.projector.failure is None and getattr(service, "error", None) is None)
        return torch, umap

    def _show_loading(self) -> None:
        """Until torch and the UMAP worker are ready, the panels showing "no run yet" say
        what is still loading (Start works meanwhile: a run waits for torch); then the
        notes go back and the timer calling this stops."""
        torch, umap = self._loading()
        for panel in self.plot_panels.values():
            text = panel.empty_note.text()
            if not panel.is_empty or not text.startswith(EMPTY_TEXT):
                continue  # a run is on screen or being built: its own note stays
            lines = [EMPTY_TEXT]
            if torch:
                lines.append(TORCH_LOADING)
            if umap and isinstance(panel, ProjectionPanel):
                lines.append(UMAP_STARTING)
            if text != "\n".join(lines):
                panel.set_empty(True, "\n".join(lines))
        if not torch and not umap:
            self._loading_timer.stop()

    def _update_status(self, view: View | None) -> None:
        """The View on screen: its step ("latest" while the timeline follows the newest
        snapshot, else "viewing step N of M") and figures; progress, rate and ETA are the
        run's, from its newest snapshot."""
        state = self.runner.state
        if view is None:
            self.progress.setValue(0)
            self.status_step.setText("step –")
            self.status_rate.setText("– steps/s")
            self.status_eta.setText("ETA –")
            self.status_projection.setText("projection –")
            self.status_figures.setText("")
            self._show_health()
            return
        self._show_health()
        snap, run = view.snapshot, view.run
        unseen = (snap.unseen_same_class_collision, snap.unseen_different_class_collision)
        self.status_figures.setText(
            f"one-shot {snap.oneshot_trained:.2f} · buckets unseen {unseen[0]:.2f}/"
            f"{unseen[1]:.2f}, all {snap.same_class_collision:.2f}/"
            f"{snap.different_class_collision:.2f}")
        self.status_figures.setToolTip(
            f"At step {snap.step}: one-shot accuracy on unseen classes; bucket-collision "
            "rate same class / different class, among unseen classes and among all probe "
            "classes")
        total = run.total_steps
        latest = self.store.latest or snap
        if self.timeline.is_live:
            self.status_step.setText(f"step {snap.step}/{total} · latest")
            self.status_step.setToolTip(f"The newest snapshot of the run, step {snap.step} "
                                        f"of {total}")
        else:
            self.status_step.setText(f"viewing step {snap.step} of {total}")
            self.status_step.setToolTip(
                f"The timeline shows step {snap.step}; the newest snapshot is step "
                f"{latest.step}. Press Live (L) to follow it.")
        self.progress.setValue(int(1000 * latest.step / max(total, 1)))
        paused = state == PAUSED
        self.status_rate.setText("paused" if paused else f"{latest.steps_per_s:.0f} steps/s")
        running = state in (RUNNING, PAUSING) and not latest.done
        if running and latest.steps_per_s > 0:
            eta = (total - latest.step) / latest.steps_per_s
            self.status_eta.setText(f"ETA {eta:.0f} s" if eta < 120 else f"ETA {eta / 60:.1f} min")
        else:
            self.status_eta.setText("ETA –")
        self.status_device.setText(f"device {run.device}")

    def _show_health(self) -> None:
        """The collapse marker in the status bar (the curves mark it from their View)."""
        latest = self.store.latest
        reason = latest.collapsed if latest is not None else ""
        collapsed_at = self.session.collapsed_at
        if collapsed_at is not None:
            self.status_health.setText(
                f"⚠ collapsed at step {collapsed_at}" + (f": {reason}" if reason else ""))
            self.status_health.setToolTip(
                "The network has collapsed: its loss is far above its start or its buckets "
                "hold almost all points. Its figures describe a failed run."
            )
        self.status_health.setVisible(collapsed_at is not None)
