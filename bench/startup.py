"""Opening and closing the app as a user does, on a real X display (Xvfb + openbox,
started and stopped here): `main.py gui` from launch to a mapped window (xdotool search
--sync), then Start (F5), and --run-s seconds after the run has recorded its second
snapshot (training under way), Quit (Ctrl+Q): the time until the window is gone and
until the process has exited, and the run's recorded status.

Each round uses a fresh settings folder and runs folder. The first round warms the disk
caches and is not counted (a warm install). Prints one JSON object: open_s, close_s,
exit_s (medians over --rounds; targets 3, 1 and 2 s), status (the last run's recorded
status, expected "stopped"), exit_hangs (rounds whose process had not exited 60 s
after Quit: killed, counted as 60 s), every round, load averages and thread settings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import threads  # noqa: E402
from engine.record import open_run  # noqa: E402

TITLE = "GSH Lab"
ENV = dict(os.environ)


def xdotool(*args: str, timeout: float = 60) -> str:
    return subprocess.run(["xdotool", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV).stdout.strip()


def visible(pid: int) -> list[str]:
    return xdotool("search", "--onlyvisible", "--pid", str(pid), "--name", TITLE).split()


def release_keys() -> None:
    """Let go of Ctrl and Q on the X server. A Q left held after a Quit (the app gone
    between xdotool's press and release) autorepeated into the next round's window, and
    that round's Ctrl+Q never reached it: 1 round in 5 read as a 30 s 'hang' while the
    app sat idle in its event loop (py-spy; Qt's shortcut log showed the stray 'q's)."""
    xdotool("keyup", "ctrl", "q")


def snapshots(runs: Path) -> int:
    """Snapshots recorded so far in the runs folder (history.csv rows)."""
    try:
        return max(0, sum(1 for _ in next(runs.glob("*/history.csv")).open()) - 1)
    except (StopIteration, OSError):
        return 0


def wait_for(cond, timeout: float, poll: float = 0.01) -> bool:
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        if cond():
            return True
        time.sleep(poll)
    return False


def one_round(env: dict, run_s: float, steps: int | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="gsh-bench-startup-") as tmp:
        env = dict(env, XDG_CONFIG_HOME=str(Path(tmp) / "config"))
        runs = Path(tmp) / "runs"
        hang = None
        release_keys()
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "gui",
                                 "--runs-dir", str(runs),
                                 *(["--steps", str(steps)] if steps else [])], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            win = xdotool("search", "--sync", "--onlyvisible", "--pid", str(proc.pid),
                          "--name", TITLE, timeout=120).split()[0]
            open_s = time.perf_counter() - t0
            xdotool("windowactivate", "--sync", win)
            xdotool("key", "--window", win, "F5")
            started = wait_for(lambda: snapshots(runs) >= 2, 300, 0.1)  # training
            time.sleep(run_s)  # training (and projecting) when Quit arrives
            xdotool("windowactivate", "--sync", win)
            t1 = time.perf_counter()
            xdotool("key", "--window", win, "ctrl+q")
            release_keys()
            gone = wait_for(lambda: not visible(proc.pid), 30)
            close_s = time.perf_counter() - t1
            if not gone:  # what the app was doing, and where the key went
                hang = diagnose(proc.pid, win)
            try:
                proc.wait(timeout=60)
                exit_s = time.perf_counter() - t1
            except subprocess.TimeoutExpired:  # reported as a hang, killed below
                exit_s = float("inf")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err = proc.stderr.read() if proc.stderr else ""
        dirs = [p for p in runs.iterdir() if p.is_dir()] if runs.is_dir() else []
        status = open_run(dirs[0]).status if dirs else "no run"
        return {"open_s": round(open_s, 2), "close_s": round(close_s, 2),
                "exit_s": round(min(exit_s, 60.0), 2), "hung": exit_s == float("inf"),
                "status": status, "started": started,
                "returncode": proc.returncode, "stderr": err[-300:],
                **({"hang": hang} if hang else {})}


def diagnose(pid: int, win: str) -> dict:
    """A window still up 30 s after Quit: the focused and active windows (was the key
    delivered?) and the app's Python stacks (py-spy dump, when installed beside Python)."""
    out = {"window": win, "focus": xdotool("getwindowfocus"),
           "active": xdotool("getactivewindow"),
           "focus_name": xdotool("getwindowfocus", "getwindowname")}
    spy = Path(sys.executable).with_name("py-spy")
    if spy.exists():
        out["stacks"] = subprocess.run([str(spy), "dump", "--pid", str(pid)],
                                       capture_output=True, text=True, timeout=60).stdout
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--display", default=":93")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--run-s", type=float, default=2.0,
                    help="seconds of training before Quit")
    ap.add_argument("--steps", type=int, default=None,
                    help="the run's steps (default: the preset's); few: Quit after it ended")
    args = ap.parse_args()
    for tool in ("Xvfb", "openbox", "xdotool"):
        if shutil.which(tool) is None:
            print(f"startup: needs {tool} (apt-get install xvfb openbox xdotool)",
                  file=sys.stderr)
            return 2
    env = dict(os.environ, DISPLAY=args.display, QT_QPA_PLATFORM="xcb")
    ENV.update(env)
    xvfb = subprocess.Popen(["Xvfb", args.display, "-screen", "0", "1600x1000x24"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wm = None
    try:
        if not wait_for(lambda: subprocess.run(
                ["xdotool", "getdisplaygeometry"], env=env, capture_output=True
        ).returncode == 0, 30, 0.1):
            print(f"startup: Xvfb did not start on {args.display}", file=sys.stderr)
            return 1
        wm = subprocess.Popen(["openbox"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        load_before = os.getloadavg()
        one_round(env, args.run_s, args.steps)  # warm the disk caches
        rounds = [one_round(env, args.run_s, args.steps) for _ in range(args.rounds)]
    finally:
        for p in (wm, xvfb):
            if p is not None:
                p.terminate()
                p.wait()
    med = {k: round(statistics.median(r[k] for r in rounds), 2)
           for k in ("open_s", "close_s", "exit_s")}
    med["exit_hangs"] = sum(r["hung"] for r in rounds)
    print(json.dumps({
        **med, "status": rounds[-1]["status"],
        "rounds": rounds, "run_s": args.run_s, "steps": args.steps,
        **threads.conditions(load_before),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
