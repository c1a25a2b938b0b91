"""Dock layout and window geometry: the default arrangement, sizes that fit the screen, and the
layout saved across launches.

A mixin of app.window.MainWindow (it relies on the window's attributes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6 import QtCore, QtGui, QtWidgets

from app.panels.base import title_of

if TYPE_CHECKING:
    from app.window_host import WindowHost
else:
    WindowHost = object  # the type checker's view of MainWindow (app.window_host)

LAYOUT_VERSION = 4
FRAME_ALLOWANCE = (16, 48)  # a usual window-manager frame (borders, title bar), pixels


class LayoutMixin(WindowHost):
    def _build_docks(self) -> None:
        self.docks: dict[str, QtWidgets.QDockWidget] = {}
        for name, panel in self.panels.items():
            dock = QtWidgets.QDockWidget(title_of(panel), self)
            dock.setObjectName(f"dock_{name}")
            dock.setWidget(panel)
            dock.setFeatures(
                QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable
                | QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetFloatable
                | QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetClosable
            )
            self.docks[name] = dock
            # a panel that skips work while its tab is behind another (app.panels.lsh)
            exposed = getattr(panel, "set_exposed", None)
            if exposed is not None:
                dock.visibilityChanged.connect(exposed)
            self.view_menu.addAction(dock.toggleViewAction())
        self.view_menu.addSeparator()
        self.view_menu.addAction(self.act_reset_layout)

    def _default_layout(self) -> None:
        """Place every dock as its app.panel_list entry says, in the list's order."""
        d = self.docks
        for dock in d.values():
            self.removeDockWidget(dock)
        areas = {"left": QtCore.Qt.DockWidgetArea.LeftDockWidgetArea,
                 "right": QtCore.Qt.DockWidgetArea.RightDockWidgetArea,
                 "bottom": QtCore.Qt.DockWidgetArea.BottomDockWidgetArea}
        sides = {"right": QtCore.Qt.Orientation.Horizontal,
                 "below": QtCore.Qt.Orientation.Vertical}
        for spec in self.panel_specs:
            if spec.tab_with is not None:
                self.tabifyDockWidget(d[spec.tab_with], d[spec.name])
            elif spec.split is not None:
                anchor, side = spec.split
                self.splitDockWidget(d[anchor], d[spec.name], sides[side])
            else:
                self.addDockWidget(areas[spec.area], d[spec.name])
        for dock in d.values():
            dock.show()
        for spec in self.panel_specs:
            if spec.front:
                d[spec.name].raise_()
        self._default_sizes()

    def _default_sizes(self) -> None:
        d = self.docks
        w, h = self.width(), self.height()
        left = min(310, int(w * 0.23))
        right = w - left - 20
        self.resizeDocks([d["parameters"]], [left], QtCore.Qt.Orientation.Horizontal)
        self.resizeDocks(
            [d["representation"], d["input_space"], d["collisions"]],
            [int(right * 0.36), int(right * 0.32), int(right * 0.32)],
            QtCore.Qt.Orientation.Horizontal,
        )
        self.resizeDocks(
            [d["curves"], d["locality"], d["samples"]],
            [int(right * 0.5), int(right * 0.25), int(right * 0.25)],
            QtCore.Qt.Orientation.Horizontal,
        )
        self.resizeDocks(
            # The curves panel holds four plots and their legends: it gets the larger half.
            [d["representation"], d["curves"]], [int(h * 0.44), int(h * 0.5)],
            QtCore.Qt.Orientation.Vertical,
        )
        self.resizeDocks([d["timeline"]], [40], QtCore.Qt.Orientation.Vertical)

    def _restore_settings(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self.fit_to_screen()
        else:
            self.fit_to_screen(keep_size=True)
        # The saved layout is restored onto docks not yet placed: laying out the default
        # first and restoring over it left a stray dock tab bar drawn over the menu bar.
        # A layout made for another window size is not kept (checked on the first show,
        # when the window has its real size): docks laid out for a larger or smaller
        # window squeezed the plots or hid the tabs. One of unknown size is not restored.
        state = self.settings.value("window/state")
        if self.settings.value("window/size") is None:
            state = None
        self._layout_restored = state is not None and self.restoreState(state, LAYOUT_VERSION)
        if not self._layout_restored:
            self._default_layout()

    def fit_to_screen(self, keep_size: bool = False) -> None:
        """Size the window from its screen's available area (not a fixed size), so the
        status bar and every dock are on screen; a restored size is shrunk to fit."""
        screen = self.screen() or QtGui.QGuiApplication.primaryScreen()
        if screen is None:
            self.resize(1600, 1000)
            return
        area = screen.availableGeometry()
        # The frame the window manager adds (title bar, borders) also has to fit; before
        # the first show it is unknown, so room for a usual one is kept (showEvent checks).
        frame_w = max(self.frameGeometry().width() - self.geometry().width(), 0)
        frame_h = max(self.frameGeometry().height() - self.geometry().height(), 0)
        if not self.isVisible() and QtGui.QGuiApplication.platformName() != "offscreen":
            frame_w, frame_h = max(frame_w, FRAME_ALLOWANCE[0]), max(frame_h, FRAME_ALLOWANCE[1])
        max_w, max_h = area.width() - frame_w, area.height() - frame_h
        if keep_size:
            w, h = min(self.width(), max_w), min(self.height(), max_h)
        else:
            w, h = min(1600, max_w), min(1000, max_h)
        self.resize(w, h)
        if not keep_size or not area.contains(self.frameGeometry()):
            self.move(area.x() + (area.width() - w - frame_w) // 2,
                      area.y() + (area.height() - h - frame_h) // 2)

    def _saved_for_this_size(self) -> bool:
        """The saved layout was made in a window of about this one's size (within 5%)."""
        try:
            w, h = (int(v) for v in str(self.settings.value("window/size")).split("x"))
        except ValueError:
            return False  # none saved (an older settings file): its size is unknown
        return abs(w - self.width()) <= self.width() * 0.05 and abs(
            h - self.height()) <= self.height() * 0.05

    def _save_settings(self) -> None:
        self.settings.setValue("window/size", f"{self.width()}x{self.height()}")
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState(LAYOUT_VERSION))
        self.settings.sync()

    def reset_layout(self) -> None:
        """Put every panel back where it starts (and forget the saved layout)."""
        for dock in self.docks.values():
            dock.setFloating(False)
        self._default_layout()
        QtCore.QTimer.singleShot(0, self._unelide_tabs)
        self.settings.remove("window/state")

    def _raise_dock(self, name: str) -> None:
        dock = self.docks[name]
        dock.show()
        dock.raise_()

    def showEvent(self, event: QtGui.QShowEvent) -> None:
        super().showEvent(event)
        if not getattr(self, "_size_checked", False):
            self._size_checked = True  # once: a later show keeps what the user arranged
            if self._layout_restored and not self._saved_for_this_size():
                self._default_layout()  # the layout was saved for another window size
                self._layout_restored = False
        # Dock sizes only stick once the window has its real size: on a first launch
        # (no saved layout) apply the default proportions after the first show.
        if not self._layout_restored and not getattr(self, "_sized", False):
            self._sized = True
            QtCore.QTimer.singleShot(0, self._default_sizes)
        if not getattr(self, "_fitted", False):
            # The window manager's frame is known once the window is mapped: if the frame
            # sticks out of the screen (status bar below it), shrink the window to fit.
            self._fitted = True
            QtCore.QTimer.singleShot(250, self._fit_after_show)
        QtCore.QTimer.singleShot(0, self._unelide_tabs)

    def _unelide_tabs(self) -> None:
        """Dock tabs show their whole title and scroll when they do not fit (a narrow
        dock at 1366x768 elided them to "Para…", "R…")."""
        for bar in self.findChildren(QtWidgets.QTabBar):
            bar.setElideMode(QtCore.Qt.TextElideMode.ElideNone)
            bar.setUsesScrollButtons(True)

    def _fit_after_show(self) -> None:
        if QtGui.QGuiApplication.platformName() == "offscreen":
            return  # no one sees it; its 800x800 "screen" must not shrink a --size export
        screen = self.screen()
        framed = self.frameGeometry().size() != self.geometry().size()  # a window manager's
        if (framed and screen is not None and not self.isMaximized() and not self.isFullScreen()
                and not screen.availableGeometry().contains(self.frameGeometry())):
            self.fit_to_screen(keep_size=True)
