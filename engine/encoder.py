"""Encoding a movie's frames (RGB arrays) to MP4 or GIF in a worker thread; Qt-free.

MP4 (H.264, libx264 preset "veryfast") through PyAV, whose wheels bundle FFmpeg, and GIF
through Pillow with one palette for the whole movie (smaller, no flicker). The file is
written beside its target and renamed into place only when complete; a cancelled or
failed movie leaves no file and no thread.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .animation import Cancelled
from .atomic import atomic_write


class MovieEncoder:
    """Encodes RGB frames (h, w, 3 uint8) to `out` in a worker thread.

    put() hands over a frame (blocking when `block`, else False if the queue is full);
    finish() waits for the file and returns its path; cancel() stops, deletes the partial
    file and joins the thread. The file exists at `out` only after finish() succeeded.
    """

    def __init__(self, out: str | Path, fps: int, queue_size: int = 8):
        self.out = Path(out)
        self.fps = fps
        self.frames = 0
        self.ended = False
        self.error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="movie-encoder")
        self._thread.start()

    # producer side
    def put(self, frame: np.ndarray | None, block: bool = True) -> bool:
        """Queue a frame (None ends the movie); False when not `block` and the queue is
        full. A failed encoder raises its error here."""
        while True:
            if self.error is not None:
                raise self.error
            if not self._thread.is_alive():
                raise OSError(f"the encoder of {self.out} stopped")
            try:
                self._queue.put(frame, timeout=0.1 if block else None, block=block)
                return True
            except queue.Full:
                if not block:
                    return False

    def end(self, block: bool = True) -> bool:
        """Mark the end of the movie (once); the encoder then completes the file."""
        if not self.ended:
            self.ended = self.put(None, block=block)
        return self.ended

    @property
    def full(self) -> bool:
        return self._queue.full()

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def finish(self, timeout: float | None = None) -> Path:
        """Wait for every queued frame to be encoded and the file moved into place."""
        self.end()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"encoding {self.out.name} did not finish")
        if self.error is not None:
            raise self.error
        return self.out

    def cancel(self) -> None:
        """Stop encoding; no file is left at `out` (nor a temporary beside it)."""
        self._cancel.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join()

    # worker side
    def _frames(self) -> Iterator[np.ndarray]:
        while True:
            item = self._queue.get()
            if self._cancel.is_set():
                raise Cancelled
            if item is None:
                return
            yield item

    def _run(self) -> None:
        try:
            writer = self._write_gif if self.out.suffix.lower() == ".gif" else self._write_mp4
            atomic_write(self.out, writer)
        except Cancelled:
            pass
        except BaseException as exc:  # handed to the producer by put() and finish()
            self.error = exc

    def _write_mp4(self, tmp: Path) -> None:
        import av

        with av.open(str(tmp), "w", format="mp4") as container:
            stream = None
            for frame in self._frames():
                if stream is None:
                    stream = container.add_stream("libx264", rate=self.fps)
                    stream.height, stream.width = frame.shape[:2]
                    stream.pix_fmt = "yuv420p"
                    # 2.6x faster than libx264's default "medium" here, no larger
                    stream.options = {"preset": "veryfast", "crf": "23"}
                vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
                container.mux(stream.encode(vf))
                self.frames += 1
            if stream is None:
                raise OSError(f"no frame was rendered for {self.out}")
            container.mux(stream.encode())  # flush the encoder's delayed frames

    def _write_gif(self, tmp: Path) -> None:
        from PIL import Image

        palette = None
        images = []
        for frame in self._frames():
            im = Image.fromarray(frame, "RGB")
            if palette is None:  # the first frame shows every class colour and the text
                palette = im.quantize(colors=255, method=Image.Quantize.MEDIANCUT)
            images.append(im.quantize(palette=palette, dither=Image.Dither.NONE))
            self.frames += 1
        if not images:
            raise OSError(f"no frame was rendered for {self.out}")
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=gif_delays_ms(len(images), self.fps), loop=0)


def gif_delays_ms(n_frames: int, fps: int) -> list[int]:
    """Each frame's delay, in the centiseconds GIF stores: frame i ends at round(100 (i+1)
    / fps) cs, so the movie lasts n_frames / fps seconds and plays at `fps` on average
    (12 fps: 8, 8, 9 cs, …; one delay for all, 8 cs, played 12.5 fps for 9.6 s)."""
    ends = [max(round(100 * (i + 1) / fps), 2 * (i + 1)) for i in range(n_frames)]
    return [10 * (b - a) for a, b in zip([0, *ends[:-1]], ends, strict=True)]


# ---------------------------------------------------------------------------------------
# Drawing (GUI thread)
