"""Per-snapshot GUI-thread cost of each panel while the app trains the default preset.

Offscreen (or on the display QT_QPA_PLATFORM names), projection service on. Each panel's
set_view (what a snapshot costs it to update), its prepare and render ahead (the picture
a round's flip copies, app.panels.base.PlotGraphics) and its paints (a flip's copy, or a paint of
the scene) are timed on the GUI thread during one live run. Prints one JSON object: per
panel the median and 90th percentile of each in ms, and its total ms per snapshot (all of
them over the run / snapshots); the load average and the thread settings.

    python bench/panel_cost.py [--preset default] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import engine  # noqa: E402,F401  (thread settings before torch, BLAS, numba load)

# isort: split
from _app import bench_window, run_until  # noqa: E402


def _owner(widget: Any) -> str:
    """The panel (a widget with a name and set_view) a graphics view belongs to."""
    while widget is not None:
        name = getattr(widget, "name", None)
        if isinstance(name, str) and hasattr(widget, "set_view"):
            return name
        widget = widget.parentWidget()
    return "other"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None, help="preset (default: the default preset)")
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    import numpy as np

    from app.panels.base import PlotGraphics
    from app.runner import FAILED, FINISHED
    from engine import threads
    from engine.config import default_config, load_preset

    cfg = load_preset(args.preset) if args.preset else default_config()
    if args.steps:
        cfg = cfg.replace(**{"train.steps": args.steps})
    set_view: dict[str, list[float]] = defaultdict(list)
    paint: dict[str, list[float]] = defaultdict(list)
    ahead: dict[str, list[float]] = defaultdict(list)
    prepare: dict[str, list[float]] = defaultdict(list)
    original_paint = PlotGraphics.paintEvent
    original_ahead = PlotGraphics.render_ahead
    original_prepare = PlotGraphics.prepare_ahead

    def timed_paint(view: Any, event: Any) -> None:
        t0 = time.perf_counter()
        original_paint(view, event)
        paint[_owner(view)].append((time.perf_counter() - t0) * 1000)

    def timed_ahead(view: Any) -> None:
        t0 = time.perf_counter()
        original_ahead(view)
        ahead[_owner(view)].append((time.perf_counter() - t0) * 1000)

    def timed_prepare(view: Any) -> None:
        t0 = time.perf_counter()
        original_prepare(view)
        prepare[_owner(view)].append((time.perf_counter() - t0) * 1000)

    PlotGraphics.paintEvent = timed_paint  # type: ignore[method-assign]
    PlotGraphics.render_ahead = timed_ahead  # type: ignore[method-assign]
    PlotGraphics.prepare_ahead = timed_prepare  # type: ignore[method-assign]
    try:
        with bench_window(cfg) as (app, window):
            window.reset_layout()
            if cfg.projection.method == "umap":
                run_until(app, lambda: window.projector.umap_ready, 180)
            for panel in (window.timeline, *window.plot_panels.values()):
                update: Callable[[Any], None] = panel.set_view

                def timed(view: Any, update: Callable[[Any], None] = update,
                          name: str = panel.name) -> None:
                    t0 = time.perf_counter()
                    update(view)
                    set_view[name].append((time.perf_counter() - t0) * 1000)

                panel.set_view = timed
            load_before = os.getloadavg()
            window.start()
            run_until(app, lambda: window.runner.state in (FINISHED, FAILED), 3600)
            final = window.store.latest
            run_until(app, lambda: final is not None and final.step in window.store.frames, 60)
            if window.runner.state == FAILED:
                print(f"training failed: {window.last_error}", file=sys.stderr)
                return 1
            snapshots = len(window.store)
    finally:
        PlotGraphics.paintEvent = original_paint  # type: ignore[method-assign]
        PlotGraphics.render_ahead = original_ahead  # type: ignore[method-assign]
        PlotGraphics.prepare_ahead = original_prepare  # type: ignore[method-assign]

    def stats(ms: list[float]) -> dict[str, float]:
        if not ms:
            return {"median_ms": 0.0, "p90_ms": 0.0}
        return {"median_ms": round(float(np.median(ms)), 2),
                "p90_ms": round(float(np.percentile(ms, 90)), 2)}

    def total(n: str) -> float:
        return sum(set_view[n]) + sum(prepare[n]) + sum(ahead[n]) + sum(paint[n])

    names = sorted(set(set_view) | set(paint) | set(ahead) | set(prepare),
                   key=lambda n: -total(n))
    result = {
        "snapshots": snapshots,
        "panels": {name: {
            "set_view": stats(set_view[name]), "prepare_ahead": stats(prepare[name]),
            "render_ahead": stats(ahead[name]),
            "paint": stats(paint[name]),
            "ms_per_snapshot": round(total(name) / max(snapshots, 1), 2),
        } for name in names},
        **threads.conditions(load_before),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
