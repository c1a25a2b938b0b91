"""The guarded reader (and writer's checks) for every file of a run or sweep folder.

Run and sweep folders travel between machines and people, so their files are read as
strictly as a config file: regular files only (a FIFO or a device is refused from its
lstat, before any open; a symlink is followed only when it stays inside the folder),
sizes bounded by what the run's own config implies, UTF-8 text, JSON and TOML nesting
checked before parsing (tomllib is quadratic in a dotted key's length and recursive in
its nesting), NPZ members read with allow_pickle=False after their npy headers (names,
dtypes, shapes) were checked against what is expected and their declared sizes against
the budget (a zip member cannot inflate past its declared size). Writes into a folder go
only to regular files and real sub-folders inside it (`inside`, `write_dir`).
Every refusal is a FolderError whose str() is one line naming the file.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import stat
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

MAX_DEPTH = 24  # JSON/TOML nesting, and parts of one dotted TOML key
MAX_LINE = 64 * 1024  # one history.csv line
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class FolderError(Exception):
    """A file of a run or sweep folder that is not read or written as asked; str() is one
    readable line naming the file."""


# ---------------------------------------------------------------------------------------
# Where a path leads


def real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(path))


def _within(root: Path, p: Path) -> bool:
    return p == root or root in p.parents


def inside(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """`path`, resolved, when it (and every symlink on the way) stays inside `root`;
    FolderError otherwise."""
    r = real(root)
    p = real(path)
    if not _within(r, p):
        raise FolderError(f"{path} leads outside {root} (a symlink): refused")
    return p


def check_regular(path: str | os.PathLike, root: str | os.PathLike) -> os.stat_result:
    """The stat of a regular file inside `root`, checked without opening it."""
    p = inside(root, path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise FolderError(f"{path} cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise FolderError(f"{path} is {kind}: refused")
    return st


def _open(path: str | os.PathLike, root: str | os.PathLike, limit: int, what: str = ""
          ) -> tuple[int, int]:
    """(fd, size) of a regular file inside root of at most `limit` bytes."""
    st = check_regular(path, root)
    if st.st_size > limit:
        raise FolderError(f"{path} is {st.st_size:,} bytes, more than {what or 'such a file'} "
                          f"can hold ({limit:,}): refused")
    p = real(path)
    try:
        fd = os.open(p, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise FolderError(f"{path} cannot be read ({exc.strerror or exc})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):  # swapped between the stat and the open
        os.close(fd)
        raise FolderError(f"{path} is not a regular file: refused")
    return fd, st.st_size


def read_bytes(path: str | os.PathLike, root: str | os.PathLike, limit: int,
               what: str = "") -> bytes:
    """The whole file: regular, inside root, at most `limit` bytes (FileNotFoundError
    when absent)."""
    fd, _size = _open(path, root, limit, what)
    try:
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise FolderError(f"{path} cannot be read ({exc.strerror or exc})") from None
    if len(data) > limit:  # grew while read
        raise FolderError(f"{path} is larger than {limit:,} bytes: refused")
    return data


def decode(data: bytes, path: str | os.PathLike) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FolderError(
            f"{path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None


def read_text(path: str | os.PathLike, root: str | os.PathLike, limit: int, what: str = "") -> str:
    return decode(read_bytes(path, root, limit, what), path)


def text_lines(path: str | os.PathLike, root: str | os.PathLike, limit: int,
               max_lines: int) -> Iterator[str]:
    """Lines of a UTF-8 text file (regular, inside root), each at most MAX_LINE
    characters, at most `max_lines` of them and `limit` bytes read in all; reading stops
    there (bounded memory whatever the file holds). A partial last line is dropped."""
    fd, _size = _open(path, root, 1 << 62)
    with os.fdopen(fd, "rb") as raw:
        stream = io.TextIOWrapper(io.BufferedReader(raw), encoding="utf-8", newline="")
        read = 0
        for _ in range(max_lines):
            try:
                line = stream.readline(MAX_LINE + 1)
            except UnicodeDecodeError as exc:
                raise FolderError(f"{path} is not UTF-8 text ({exc.reason})") from None
            if not line:
                return
            read += len(line)
            if len(line) > MAX_LINE:
                raise FolderError(f"{path} has a line over {MAX_LINE:,} characters: refused")
            if not line.endswith("\n"):
                return  # a row being appended, or a truncated file
            yield line
            if read > limit:
                return


# ---------------------------------------------------------------------------------------
# JSON and TOML, with their nesting checked first

def parse_json(text: str, path: str | os.PathLike, max_depth: int = MAX_DEPTH) -> Any:
    stripped = re.sub(r'"(?:[^"\\]|\\.)*+"', "", text)
    _check_brackets(stripped, path, max_depth)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise FolderError(f"{path} is corrupt: not valid JSON ({_short(exc)})") from None


def _check_brackets(code: str, path: str | os.PathLike, max_depth: int) -> None:
    depth = 0
    for m in re.finditer(r"[\[\]{}]", code):
        depth += 1 if m.group() in "[{" else -1
        if depth > max_depth:
            raise FolderError(f"{path} is nested too deeply, over {max_depth} levels")


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]


# TOML strings, matched where one opens (possessive: linear, no backtracking)
_TOML_OPEN = re.compile(r"[\"'#]")
_TOML_STRING = {
    '"""': re.compile(r'"""(?:[^"\\]|\\.|"(?!""))*+"""', re.S),
    "'''": re.compile(r"'''(?:[^']|'(?!''))*+'''", re.S),
    '"': re.compile(r'"(?:[^"\\\n]|\\.)*+"'),
    "'": re.compile(r"'[^'\n]*+'"),
}


def _toml_code(text: str) -> str:
    """TOML with its strings replaced by "s" and comments dropped (one linear pass)."""
    out, i, n, end_line = [], 0, len(text), -1
    while i < n:
        m = _TOML_OPEN.search(text, i)
        if m is None:
            out.append(text[i:])
            break
        j = m.start()
        out.append(text[i:j])
        ch = text[j]
        if end_line < j:  # the end of j's line, found once per line
            end_line = text.find("\n", j)
            end_line = n if end_line < 0 else end_line
        if ch == "#":
            i = end_line
            continue
        key = ch * 3 if text.startswith(ch * 3, j) else ch
        s = _TOML_STRING[key].match(text, j)
        i = s.end() if s else (n if len(key) == 3 else end_line)  # unterminated: the rest
        out.append("s")
    return "".join(out)


def check_toml(text: str, path: str | os.PathLike, max_depth: int = MAX_DEPTH) -> None:
    """Refuse TOML nested deeper than max_depth, or with a dotted key of more parts,
    before tomllib sees it (its time grows with the square of a dotted key's length)."""
    code = _toml_code(text)
    _check_brackets(code, path, max_depth)
    code = re.sub(r"[ \t]*\.[ \t]*", ".", code)
    for token in re.split(r"[\s=\[\]{},]+", code):
        if token.count(".") >= max_depth:
            raise FolderError(f"{path} has a dotted key of more than {max_depth} parts")


def parse_toml(text: str, path: str | os.PathLike, max_depth: int = MAX_DEPTH) -> dict:
    import tomllib

    check_toml(text, path, max_depth)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FolderError(f"{path} is not valid TOML ({_short(exc)})") from None
    except RecursionError:
        raise FolderError(f"{path} is nested too deeply") from None


# ---------------------------------------------------------------------------------------
# NPZ: headers checked, then arrays read without pickles

Spec = dict[str, tuple[str, tuple | None]]  # name -> (dtype kinds, shape; None: any)


def _member_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: str | os.PathLike
                   ) -> tuple[tuple[int, ...], bool, np.dtype]:
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh, max_header_size=10_000)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh, max_header_size=10_000)
        else:
            raise ValueError(f"npy version {version}")
    return shape, fortran, dtype


def load_npz(path: str | os.PathLike, root: str | os.PathLike, limit: int,
             spec: Spec | None = None, *,
             what: str = "") -> dict[str, np.ndarray]:
    """The arrays of an NPZ inside root: at most `limit` bytes on disk and, unpacked, in
    all; every member a plain .npy (no pickled objects); `spec`'s arrays present with
    their dtype kinds and shapes (None in a shape: any length). Other members are read
    too (within the budget), so fields added later are carried."""
    data = read_bytes(path, root, limit, what)
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise FolderError(f"{path} is truncated or corrupt ({_short(exc)})") from None
    out: dict[str, np.ndarray] = {}
    budget = limit
    with zf:
        infos = zf.infolist()
        if len(infos) > 256:
            raise FolderError(f"{path} holds {len(infos)} arrays: refused")
        headers = {}
        for info in infos:
            name = info.filename[:-4] if info.filename.endswith(".npy") else None
            if not name or "/" in name or name in headers:
                raise FolderError(f"{path} holds {info.filename!r}, not an array: refused")
            if info.file_size > budget:
                raise FolderError(f"{path}: {name} unpacks to {info.file_size:,} bytes, more "
                                  f"than the run's sizes allow: refused")
            budget -= info.file_size
            try:
                shape, fortran, dtype = _member_header(zf, info, path)
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, SyntaxError) as exc:
                raise FolderError(f"{path} is truncated or corrupt ({name}: {_short(exc)})") \
                    from None
            if dtype.hasobject or dtype.kind not in "biufcUS" or dtype.fields is not None:
                raise FolderError(f"{path}: {name} has dtype {dtype}, not plain numbers or text")
            if math.prod(shape) * dtype.itemsize > info.file_size:
                raise FolderError(f"{path}: {name} declares shape {shape}, larger than its data")
            headers[name] = (shape, dtype)
        for name, (kinds, spec_shape) in (spec or {}).items():
            if name not in headers:
                raise FolderError(f"{path} lacks the array {name!r}")
            got_shape, dtype = headers[name]
            if dtype.kind not in kinds:
                raise FolderError(f"{path}: {name} has dtype {dtype}, expected {kinds!r} kind")
            if spec_shape is not None and (len(spec_shape) != len(got_shape) or any(
                    s is not None and s != g
                    for s, g in zip(spec_shape, got_shape, strict=True))):
                want = tuple("*" if s is None else s for s in spec_shape)
                raise FolderError(f"{path}: {name} has shape {got_shape}, expected {want}")
        for info in infos:
            name = info.filename[:-4]
            try:
                with zf.open(info) as fh:
                    out[name] = np.lib.format.read_array(fh, allow_pickle=False,
                                                         max_header_size=10_000)
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
                raise FolderError(f"{path} is truncated or corrupt ({name}: {_short(exc)})") \
                    from None
    return out


def finite(arrays: dict[str, np.ndarray], names: Iterable[str], path: str | os.PathLike
           ) -> None:
    """FolderError when a float array among `names` holds NaN or infinity."""
    for name in names:
        a = arrays.get(name)
        if a is not None and a.dtype.kind == "f" and not np.isfinite(a).all():
            raise FolderError(f"{path}: {name} holds NaN or infinite values")


# ---------------------------------------------------------------------------------------
# Writing inside a folder


def write_dir(root: str | os.PathLike, name: str) -> Path:
    """The sub-folder `name` of `root` for writing: created when missing; refused when it
    is a symlink or anything but a real folder (GSH Lab never writes through one)."""
    folder = Path(root) / name
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        folder.mkdir()
        return folder
    if stat.S_ISLNK(st.st_mode):
        raise FolderError(f"{folder} is a symlink: GSH Lab does not write through it")
    if not stat.S_ISDIR(st.st_mode):
        raise FolderError(f"{folder} is not a folder: refused")
    return folder


def writable_file(path: str | os.PathLike) -> Path:
    """`path` for replacing: absent or a regular file, never a symlink or a FIFO."""
    p = Path(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return p
    if not stat.S_ISREG(st.st_mode):
        raise FolderError(f"{p} is a symlink or not a regular file: GSH Lab does not "
                          "write through it")
    return p
