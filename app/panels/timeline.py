"""Timeline: scrub through the kept snapshots of the current run; "Live" follows the newest."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6 import QtCore, QtWidgets

from app.view import View


class TimelinePanel(QtWidgets.QWidget):
    name = "timeline"
    title = "Timeline"
    scrubbed = QtCore.Signal(int)  # index into the kept snapshots
    live_changed = QtCore.Signal(bool)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(self.name)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        self.live = QtWidgets.QPushButton("Live")
        self.live.setCheckable(True)
        self.live.setChecked(True)
        self.live.setToolTip("Follow the newest snapshot (L)")
        self.live.setShortcut("L")
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setToolTip(
            "Scrub through the snapshots of this run; every panel follows. Older snapshots "
            "are thinned to keep memory bounded."
        )
        self.label = QtWidgets.QLabel("no run yet")
        self.label.setFixedWidth(260)
        layout.addWidget(self.live)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.label)
        self.steps: list[int] = []
        self.slider.valueChanged.connect(self._on_slider_moved)
        self.live.toggled.connect(self._on_live_toggled)

    @property
    def is_live(self) -> bool:
        return self.live.isChecked()

    @property
    def index(self) -> int:
        return self.slider.value()

    def set_view(self, view: View) -> None:
        """The run's steps and the snapshot on screen (live: the slider is at the newest)."""
        self._set_steps(view.steps, None if self.is_live else view.index)
        n = len(self.steps)
        pos = self.slider.value() + 1 if n else 0
        self.label.setText(
            f"step {view.step} of {view.run.total_steps} · snapshot {pos}/{n}"
            + (" · done" if view.snapshot.done else "")
        )

    def _set_steps(self, steps: Sequence[int], index: int | None) -> None:
        self.steps = list(steps)
        with QtCore.QSignalBlocker(self.slider):
            self.slider.setRange(0, max(len(self.steps) - 1, 0))
            self.slider.setValue(self.slider.maximum() if index is None else index)

    def set_index(self, index: int) -> None:
        """Scrub programmatically, as a user dragging the slider would."""
        self.slider.setValue(index)

    def clear(self) -> None:
        self._set_steps([], None)
        self.label.setText("no run yet")

    def _on_slider_moved(self, value: int) -> None:
        if value != self.slider.maximum() and self.is_live:
            with QtCore.QSignalBlocker(self.live):
                self.live.setChecked(False)
            self.live_changed.emit(False)
        self.scrubbed.emit(value)

    def _on_live_toggled(self, live: bool) -> None:
        if live:
            with QtCore.QSignalBlocker(self.slider):
                self.slider.setValue(self.slider.maximum())
            self.scrubbed.emit(self.slider.value())
        self.live_changed.emit(live)
