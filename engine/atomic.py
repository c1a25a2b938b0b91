"""Atomic, verified file writes: temp file in the target's folder, check, then rename;
and the one lock file a run record or a sweep folder is held by (`hold_lock`).

Every writer of a user-visible file (configs, exports, run records) goes through
`atomic_write`, so a failed or interrupted write never leaves a half file behind and
never reports success without a non-empty file in place.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

try:  # POSIX: a lock the kernel drops when its process dies
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]  # an optional module: None off POSIX

_UMASK = os.umask(0)
os.umask(_UMASK)


def _check_target(path: Path) -> None:
    """Refuse targets that are not (or would not be) a regular file: /dev/full, a FIFO."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        kind = "it is a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise OSError(errno.EINVAL, kind, str(path))


def atomic_write(path: str | os.PathLike, writer: Callable[[Path], object]) -> Path:
    """Call `writer(tmp)` to write a temporary file beside `path`, then move it into place.

    The temporary name keeps `path`'s suffix (exporters and numpy pick the format from
    it). After the writer returns, the file must exist and be non-empty, or OSError is
    raised (its filename is `path`, never the temporary) and nothing at `path` changes.
    Returns `path`.
    """
    path = Path(path)
    _check_target(path)
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
        )
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer(tmp)
        size = tmp.stat().st_size if tmp.exists() else 0
        if size <= 0:
            raise OSError(errno.EIO, "nothing was written", str(path))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        mode = (os.stat(path).st_mode & 0o777) if path.exists() else (0o666 & ~_UMASK)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if exc.filename == str(path):
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (see atomic_write)."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` atomically (see atomic_write)."""
    return atomic_write_bytes(path, text.encode(encoding))


class LockBusy(OSError):
    """Another process holds the lock."""


def hold_lock(path: str | os.PathLike, owner: str, unlocked_ok: bool = False) -> TextIO:
    """Open the lock file `path` (created if missing; never through a symlink, refused
    unless a regular file: OSError EINVAL) and take an exclusive lock on it, writing
    `owner` into it; return the open file (closing it releases the lock). LockBusy when
    another process holds it, or when the file system has no locks unless `unlocked_ok`."""
    path = Path(path)
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags, 0o644)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    fh = os.fdopen(fd, "a+", encoding="utf-8")
    if fcntl is not None:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if isinstance(exc, BlockingIOError) or not unlocked_ok:
                fh.close()
                raise LockBusy(errno.EAGAIN, "held by another process", str(path)) from None
    fh.seek(0)
    fh.truncate()
    fh.write(owner)
    fh.flush()
    return fh
