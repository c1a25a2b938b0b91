"""View: what the panels show, one run at one snapshot, handed to every panel the same way.

The RunSession (live or reopened) builds the View on screen (RunSession.show) each time
that changes: a new snapshot, a scrub, a projection frame arriving. Every panel has one
entry point, `set_view(view)`, and redraws only what differs from the view it showed last;
`clear()` empties it. Panels never reach into the window or the session for data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.store import Frame
from engine.config import ExperimentConfig
from engine.snapshot import ProbeSet, RunInfo, Snapshot


@dataclass(frozen=True)
class View:
    """One run at one snapshot, with everything measured for it.

    `rows` is the run's scalar history (one row per snapshot so far), `steps` the steps
    the timeline offers and `index` the snapshot's position among them. `frame` is the
    2-D projection of the representation nearest this snapshot (None while none is
    computed), `raw_frame` that of the input space, `projection_note` a word about the
    projection ("UMAP starting…"). `collapsed_at` is the step the run collapsed at.
    """

    config: ExperimentConfig
    run: RunInfo
    snapshot: Snapshot
    rows: Sequence[dict[str, Any]]
    steps: Sequence[int]
    index: int
    frame: Frame | None = None
    raw_frame: Frame | None = None
    projection_note: str = ""
    collapsed_at: int | None = None

    @property
    def probe(self) -> ProbeSet:
        return self.run.probe

    @property
    def step(self) -> int:
        return self.snapshot.step
