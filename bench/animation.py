"""Animation speed: frames per second drawn (and drawn + encoded to MP4) at 1280x720 for the
representation panel. Prints one JSON line.

By default it records a short run of the default preset (its probe set: 2,000 points)
with PCA keyframes, so the figure measures drawing and encoding, not UMAP; --run DIR
measures a recorded run instead. Target: >= 15 frames per second on a 2-core machine.

    python bench/animation.py [--run DIR] [--frames 120] [--size 1280x720]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def record_default(out: Path) -> None:
    from engine.config import load_preset
    from engine.experiment import Experiment
    from engine.record_writer import RunWriter

    cfg = load_preset("default").replace(**{"train.steps": 300, "projection.method": "pca"})
    exp = Experiment(cfg)
    with RunWriter(out, cfg, device=str(exp.device)) as w:
        for snap in exp.run():
            w.append(snap, exp.info)


def load_avg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="a recorded run (default: record one)")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--size", default="1280x720")
    args = ap.parse_args()

    from PySide6 import QtWidgets

    from app.animate import MOVIE_SIZES, FrameRenderer
    from app.qtapp import parse_size
    from engine.animation import Movie, load_keyframes
    from engine.encoder import MovieEncoder
    from engine.record import open_run

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    size = parse_size(args.size, MOVIE_SIZES)
    with tempfile.TemporaryDirectory(prefix="gsh-bench-anim-") as tmp:
        run = args.run
        if run is None:
            run = Path(tmp) / "run"
            record_default(run)
        reader = open_run(run)
        t = time.perf_counter()
        keys = load_keyframes(reader, write_cache=False)
        keyframe_s = time.perf_counter() - t
        movie = Movie(keys, fps=30, seconds=args.frames / 30)
        renderer = FrameRenderer(reader, keys, "representation", size)
        try:
            renderer.render(movie.frame(0))  # first paint: fonts, caches
            t = time.perf_counter()
            for frame in movie:
                renderer.render(frame)
            draw_s = time.perf_counter() - t
            encoder = MovieEncoder(Path(tmp) / "bench.mp4", fps=30)
            t = time.perf_counter()
            try:
                for frame in movie:
                    encoder.put(renderer.render(frame))
                path = encoder.finish()
            except BaseException:
                encoder.cancel()
                raise
            total_s = time.perf_counter() - t
            mp4_bytes = path.stat().st_size
        finally:
            renderer.close()
            app.processEvents()
    n = len(movie)
    print(json.dumps({
        "bench": "animation",
        "panel": "representation",
        "size": f"{size[0]}x{size[1]}",
        "points": int(len(reader.probe.label)),
        "frames": n,
        "render_fps": round(n / draw_s, 1),
        "render_and_mp4_fps": round(n / total_s, 1),
        "target_fps": 15,
        "mp4_bytes": mp4_bytes,
        "keyframes": len(keys.keyframes),
        "keyframe_method": keys.keyframes[0].method,
        "keyframes_s": round(keyframe_s, 2),
        "cpus": os.cpu_count(),
        "load_avg_1_5_15": load_avg(),
    }))


if __name__ == "__main__":
    main()
