"""GSH Lab command line (installed as `gsh-lab`):

  gui         launch the desktop app (the default: no command)
  open DIR    open a recorded run or sweep folder in the app (also: gsh-lab DIR)
  run         train headless, recording the run into --out
  screenshot  train offscreen (or show a recorded --run) and save the window or a panel
  presets     list the presets
  sweep       train a grid of runs (axes x seeds) into a sweep folder; resumable
  animate     render a recorded run's timeline as an MP4 or GIF
  compare     compare recorded runs side by side (a window, or a figure with --out)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _add_config_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--preset", help="preset name (see `presets`)")
    g.add_argument("--config", type=Path, help="experiment TOML file")
    p.add_argument("--steps", type=int, help="training steps (overrides the config)")
    p.add_argument("--seed", type=int, help="master seed (overrides the config)")


def _resolve_config(args: argparse.Namespace):
    from engine import config as cfg

    if getattr(args, "config", None):
        c = cfg.load(args.config)
    elif getattr(args, "preset", None):
        c = cfg.load_preset(args.preset)
    else:
        c = cfg.default_config()
    changes = {}
    if getattr(args, "steps", None) is not None:
        changes["train.steps"] = args.steps
    if getattr(args, "seed", None) is not None:
        changes["seed"] = args.seed
    return c.replace(**changes) if changes else c


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gsh-lab",
        description="GSH Lab: watch a deep network become a locality-sensitive hash of "
        "class manifolds.",
    )
    sub = parser.add_subparsers(dest="command")

    p_gui = sub.add_parser("gui", help="launch the desktop app (default)")
    _add_config_args(p_gui)
    p_gui.add_argument("--runs-dir", type=Path,
                       help="record the app's runs here (default: gsh-runs in Documents)")

    p_open = sub.add_parser("open", help="open a recorded run in the app (also: main.py DIR)")
    p_open.add_argument("dir", type=Path, help="a run folder (from the app or `run --out`)")
    p_open.add_argument("--runs-dir", type=Path, help="record new runs here")

    p_run = sub.add_parser("run", help="train headless and write results to a folder")
    _add_config_args(p_run)
    p_run.add_argument("--out", type=Path, required=True,
                       help="run folder, recorded as the run trains (must be empty)")
    p_run.add_argument("--force", action="store_true",
                       help="replace the run record in a non-empty --out")
    p_run.add_argument("--quiet", action="store_true",
                       help="no progress bar and no summary line (errors still print)")

    p_shot = sub.add_parser(
        "screenshot", help="train offscreen (or show a recorded --run) and save the window")
    _add_config_args(p_shot)
    p_shot.add_argument("--out", type=Path, required=True,
                        help="file to write: .png, .pdf (vector) or, with --panel, .svg")
    p_shot.add_argument("--run", type=Path, help="render this recorded run, no training")
    p_shot.add_argument("--step", type=int, help="with --run: the step shown (default: last)")
    p_shot.add_argument("--runs-dir", type=Path,
                        help="record the training run here (default: as the app)")
    p_shot.add_argument("--panel", help="save only this panel (default: whole window)")
    p_shot.add_argument("--size", default="1600x1000", help="window size WxH")
    p_shot.add_argument("--full", action="store_true",
                        help="full-quality UMAP re-fit of the final frame (slower)")

    sub.add_parser("presets", help="list the presets")

    p_cmp = sub.add_parser(
        "compare", help="compare 2-8 recorded runs (sweep folders add all their runs)")
    p_cmp.add_argument("runs", nargs="+", type=Path, metavar="RUN",
                       help="run folders, or sweep folders (all their runs)")
    p_cmp.add_argument("--out", type=Path,
                       help="write the comparison here (.png, .pdf vector, or .svg with "
                       "--panel) instead of opening the window")
    p_cmp.add_argument("--panel", help="curves, representation, collisions, locality, "
                       "samples or diff (default: the whole comparison)")
    p_cmp.add_argument("--step", type=int, help="the step shown (default: the last; each "
                       "run at its nearest recorded step)")
    p_cmp.add_argument("--size", default="1600x1000", help="figure size WxH")

    p_anim = sub.add_parser("animate", help="render a recorded run's timeline as a movie")
    p_anim.add_argument("--run", type=Path, required=True, help="a recorded run folder")
    p_anim.add_argument("--out", type=Path, required=True, help="movie.mp4 or movie.gif")
    p_anim.add_argument("--panel", default="representation",
                        help="representation (default) or window")
    p_anim.add_argument("--fps", default="30", help="frames per second, 1..60 (GIF 1..50)")
    p_anim.add_argument("--seconds", default="10", help="length of the movie, 1..600 s")
    p_anim.add_argument("--size", default="1280x720", help="frame size WxH (MP4: even)")
    p_anim.add_argument("--quiet", action="store_true", help="no progress")

    p_sweep = sub.add_parser(
        "sweep", help="train a grid of runs (axes x seeds) into a sweep folder; resumable")
    _add_config_args(p_sweep)
    p_sweep.add_argument("--sweep", help="sweep TOML, or a built-in sweep's name "
                         "(engine/sweeps/NAME.toml)")
    p_sweep.add_argument("--vary", action="append", default=[], metavar="FIELD=VALUES",
                         help="an axis: FIELD=v1,v2,... or FIELD=lo:hi:n[:log] (repeatable)")
    p_sweep.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                         help="change the base config (repeatable)")
    p_sweep.add_argument("--seeds", type=int, help="seeds per grid point (default 1)")
    p_sweep.add_argument("--out", type=Path, help="sweep folder (same sweep again: resumes)")
    p_sweep.add_argument("--resume", type=Path, metavar="FOLDER", help="resume a sweep folder")
    p_sweep.add_argument("--workers", type=int,
                         help="parallel runs (default: cores; 1: in this process)")
    p_sweep.add_argument("--scheduler", metavar="ADDRESS",
                         help="run on this Dask cluster (workers must share the folder)")
    p_sweep.add_argument("--dashboard", action="store_true",
                         help="serve the local Dask cluster's dashboard (127.0.0.1, a random "
                         "port, printed); off by default")
    p_sweep.add_argument("--max-runs", type=int, help="raise the grid limit (default 200)")
    p_sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


COMMANDS = ("gui", "open", "run", "screenshot", "presets", "sweep", "animate", "compare")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in COMMANDS and not argv[0].startswith("-") and Path(
            argv[0]).is_dir():
        argv.insert(0, "open")  # `main.py DIR` opens a recorded run
    args = parser.parse_args(argv)
    command = args.command or "gui"
    from engine.compare import CompareError
    from engine.config import ConfigError
    from engine.record_format import RunRecordError
    from engine.record_writer import OutputNotEmpty
    from engine.sweep import SweepError

    try:
        if command == "presets":
            from engine.cli import list_presets

            return list_presets()
        if command == "open":
            from app.cli import run_gui

            return run_gui(None, runs_dir=args.runs_dir, open_dir=args.dir)
        if command == "screenshot" and args.run is not None:
            from app.cli import screenshot_run

            if args.preset or args.config or args.steps is not None or args.seed is not None:
                raise ConfigError("--run", "renders a recorded run as it is: leave out "
                                  "--preset, --config, --steps and --seed")
            return screenshot_run(args.run, args.out, step=args.step, panel=args.panel,
                                  size=args.size)
        if command == "compare":
            from app.cli import compare_main

            return compare_main(args)
        if command == "animate":
            from app.cli import animate_main

            return animate_main(args)
        if command == "sweep":
            from engine.cli import sweep_main

            return sweep_main(args)
        config = _resolve_config(args)
        if command == "run":
            from engine.cli import run_headless

            return run_headless(config, args.out, quiet=args.quiet, force=args.force)
        if command == "screenshot":
            from app.cli import screenshot

            if args.step is not None:
                raise ConfigError("--step", "needs --run (a recorded run to show)")
            return screenshot(config, args.out, panel=args.panel, size=args.size,
                              full=args.full, runs_dir=args.runs_dir)
        from app.cli import run_gui

        explicit = bool(getattr(args, "preset", None) or getattr(args, "config", None))
        # No command at all (`main.py`, `gsh-lab`) parses no subcommand's options.
        return run_gui(config if explicit else None, runs_dir=getattr(args, "runs_dir", None))
    except (ConfigError, OutputNotEmpty, RunRecordError, SweepError, CompareError) as exc:
        print(f"gsh-lab: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an output folder or file that cannot be written
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"gsh-lab: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
