"""A sweep's summary.csv: one row per grid point, rebuilt from its run record."""

from __future__ import annotations

import os
from pathlib import Path

from . import figures
from .atomic import atomic_write_text
from .record_format import csv_text
from .sweep_spec import RUNS, SUMMARY, RunPoint, Sweep, load_sweep

SUMMARY_FIGURES = (  # the claim's figures first (unseen classes); all classes' labelled
    "oneshot_trained", "oneshot_untrained", "oneshot_raw", "oneshot_learned_linear",
    "unseen_same_class_collision", "unseen_different_class_collision", "collision_ratio",
    "raw_collision_ratio", "learned_linear_collision_ratio", "same_class_collision",
    "different_class_collision", "collision_ratio_all", "invariance_trained",
    "invariance_raw",
)


def summary_columns(sweep: Sweep) -> list[str]:
    from .snapshot import RunInfo, Snapshot

    head = ["run", *(a.field for a in sweep.axes if a.field != "seed"), "seed", "status",
            "step", "total_steps", *SUMMARY_FIGURES]
    rest = [c for c in (*Snapshot.SCALARS, *RunInfo.BASELINES) if c not in head]
    return [*head, *rest, "error"]


def summary_row(folder: Path, point: RunPoint) -> dict:
    """The summary row of one grid point, read from its run record (status "pending"
    when it has none yet, "unreadable" with the reason when it cannot be opened)."""
    from .record import open_run
    from .record_format import RunRecordError

    row: dict = {"run": point.id, **point.values, "seed": point.seed,
                 "total_steps": point.config.train.steps}
    path = folder / RUNS / point.id
    if path.is_symlink() or (folder / RUNS).is_symlink():  # an outside run is not this one
        return {**row, "status": "unreadable",
                "error": f"{path} is a symlink: a sweep's runs are folders inside it"}
    if not (path / "run.json").is_file():
        return {**row, "status": "pending"}
    try:
        run = open_run(path)
    except RunRecordError as exc:
        return {**row, "status": "unreadable", "error": str(exc)}
    last = run.rows[-1] if run.rows else {}
    row.update({k: v for k, v in last.items()})
    row.update(status=run.display_status, error=run.error or "")
    if last:
        try:  # the baselines, from probe.npz
            row.update(run.run_info.baselines())
        except RunRecordError as exc:
            row["error"] = "; ".join(e for e in (row["error"], f"no baselines: {exc}") if e)
    if last:
        row.update(figures.derived(row))
    return row


def summary_text(rows: list[dict], columns: list[str]) -> str:
    """summary.csv's text: a header, then one line per row (engine.record_format's CSV writer)."""
    return csv_text(rows, columns)


def read_summary(folder: str | os.PathLike) -> list[dict]:
    """summary.csv rebuilt from the run records of a sweep folder (and rewritten)."""
    folder = Path(folder)
    sweep = load_sweep(folder)
    rows = [summary_row(folder, p) for p in sweep.points()]
    atomic_write_text(folder / SUMMARY, summary_text(rows, summary_columns(sweep)))
    return rows
