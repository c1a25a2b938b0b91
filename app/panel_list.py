"""The one list of the main window's panels: what each is and where its dock starts.

The window builds its panels and docks from PANELS, the default layout places them from
it, the View menu lists them in its order, and `screenshot --panel NAME` accepts every
name in it. Adding a panel is its file in app/panels/ plus one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from PySide6 import QtWidgets

from app.panels.about import AboutPanel
from app.panels.collisions import CollisionPanel
from app.panels.curves import CurvesPanel
from app.panels.inspector import InspectorPanel
from app.panels.locality import LocalityPanel
from app.panels.lsh import LshPanel
from app.panels.parameters import ParameterPanel
from app.panels.projection import ProjectionPanel
from app.panels.runs import RunsPanel
from app.panels.samples import SamplesPanel
from app.panels.timeline import TimelinePanel
from engine.config import ExperimentConfig


class PanelHost(Protocol):
    """What a panel is made from: the window's (app.window.MainWindow) start config and
    runs folder."""

    @property
    def start_config(self) -> ExperimentConfig | None: ...

    @property
    def runs_dir(self) -> Path: ...


@dataclass(frozen=True)
class PanelSpec:
    """One panel. `make(window)` builds it; `attr` is the window's attribute for it.

    Its dock starts in `area` (left, right or bottom), or as a tab behind `tab_with`, or
    split off `split` = (panel, "right" | "below"); panels are placed in PANELS' order and
    `front` brings a tab to the front. `view`: a plot panel, shown the View on screen and
    exported as PNG, SVG or PDF. `highlight`: marks the selection (set_highlight).
    """

    name: str
    make: Callable[[PanelHost], QtWidgets.QWidget]
    attr: str = ""
    area: str = "right"
    tab_with: str | None = None
    split: tuple[str, str] | None = None
    front: bool = False
    view: bool = False
    highlight: bool = False

    @property
    def attribute(self) -> str:
        return self.attr or self.name


PANELS: tuple[PanelSpec, ...] = (
    PanelSpec("parameters", lambda w: ParameterPanel(w.start_config), attr="params",
              area="left", front=True),
    PanelSpec("runs", lambda w: RunsPanel(w.runs_dir), tab_with="parameters"),
    PanelSpec("about", lambda w: AboutPanel(), tab_with="parameters"),
    PanelSpec("inspector", lambda w: InspectorPanel(), tab_with="parameters"),
    PanelSpec("representation", lambda w: ProjectionPanel(
        "embedding", "representation", "Representation projection"), view=True,
        highlight=True),
    PanelSpec("curves", lambda w: CurvesPanel(), split=("representation", "below"),
              view=True),
    PanelSpec("input_space", lambda w: ProjectionPanel(
        "raw", "input_space", "Input-space projection"), split=("representation", "right"),
        view=True, highlight=True),
    PanelSpec("collisions", lambda w: CollisionPanel(), split=("input_space", "right"),
              view=True, highlight=True),
    PanelSpec("locality", lambda w: LocalityPanel(), split=("curves", "right"), front=True,
              view=True, highlight=True),
    PanelSpec("samples", lambda w: SamplesPanel(), split=("locality", "right"), view=True,
              highlight=True),
    PanelSpec("lsh", lambda w: LshPanel(), tab_with="locality", view=True),
    PanelSpec("timeline", lambda w: TimelinePanel(), area="bottom"),
)



def panel_names() -> tuple[str, ...]:
    return tuple(spec.name for spec in PANELS)
