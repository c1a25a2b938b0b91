"""Typed, validated experiment configuration, loaded from and saved to TOML.

An ExperimentConfig resolves every setting (seeds included) so a run can be
reproduced exactly from its saved config.toml. Validation checks types and ranges
only, so a run recorded anywhere reads back anywhere; whether a config can run on this
machine is engine.resources.check_runnable.
"""

from __future__ import annotations

import dataclasses
import os
import reprlib
import stat
import tomllib
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import tomli_w

from .atomic import atomic_write_text

PRESETS = files("engine") / "presets"  # shipped in the package (NAME.toml)



@dataclass(frozen=True)
class Family:
    """A manifold family, declared once: the config, the resource estimate, the parameter
    panel and the tests read FAMILY_LIST (engine.manifolds holds its generator class)."""

    name: str
    description: str  # for the parameter panel's help
    image: bool = False  # x is an image_size x image_size image (else input_dim numbers)
    fields: tuple[str, ...] = ()  # the data.* settings only this family reads


FAMILY_LIST = (
    Family("random_relu", "a random ReLU network of [gamma; theta]",
           fields=("generator_depth", "generator_width", "generator_activation")),
    Family("linear", "a random linear map"),
    Family("image_pose", "an image per class, posed by theta: rotation, shift, scale, "
           "brightness", image=True),
    Family("digits_pose", "a real handwritten digit per class, posed the same way; unseen "
           "classes are other digits", image=True, fields=("seen_digits", "unseen_digits")),
)
FAMILY = {f.name: f for f in FAMILY_LIST}
FAMILIES = tuple(FAMILY)
IMAGE_FAMILIES = tuple(f.name for f in FAMILY_LIST if f.image)
ACTIVATIONS = ("relu", "gelu", "tanh")
OPTIMIZERS = ("adam", "sgd")
DEVICES = ("auto", "cpu", "cuda", "mps")
PROJECTION_METHODS = ("umap", "pca")
METRICS = ("euclidean", "cosine")
IMAGE_THETA = ("rotation", "shift_x", "shift_y", "scale", "brightness")
MAX_FILE_BYTES = 1 << 20  # a config is a few hundred bytes; anything this big is not one
MAX_TEXT = {"name": 80, "description": 1000}  # characters
SEED_MAX = 2**31 - 1
DIGITS_GAMMA_MAX = 64  # digits_pose: gamma is coordinates on 8x8 images' principal components

_short = reprlib.Repr()
_short.maxstring = 40
_short.maxother = 40
_short.maxlevel = 2


def _show(value: Any) -> str:
    """A short repr for messages: a 50 MB string or a deeply nested list stays one line."""
    return _short.repr(value)


def _fmt(x: float) -> str:
    """A range bound as written in a config: 2147483647, not 2.14748e+09."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


class ConfigError(ValueError):
    """A setting is missing, of the wrong type or out of its allowed range."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


def _num(name: str, value: Any, lo: float, hi: float, integer: bool = False) -> None:
    kind = "an integer" if integer else "a number"
    span = f"[{_fmt(lo)}, {_fmt(hi)}]"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(name, f"must be {kind} in {span}, got {_show(value)}")
    if integer and not isinstance(value, int):
        raise ConfigError(name, f"must be {kind} in {span}, got {_show(value)}")
    if not (lo <= value <= hi) or value != value:
        raise ConfigError(name, f"must be in {span}, got {_show(value)}")


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(name, f"must be one of {', '.join(choices)}, got {_show(value)}")


def digit_list(name: str, text: Any) -> list[int]:
    """The digits a digits_pose split names ("789" -> [7, 8, 9]); ConfigError unless distinct."""
    if (not isinstance(text, str) or not text or any(ch not in "0123456789" for ch in text)
            or len(set(text)) != len(text)):
        raise ConfigError(name, f"must list distinct digits 0-9, e.g. \"789\", got {text!r}")
    return sorted(int(ch) for ch in text)


def _text(name: str, value: Any) -> None:
    limit = MAX_TEXT[name]
    if not isinstance(value, str):
        raise ConfigError(name, f"must be a string, got {_show(value)}")
    if len(value) > limit:
        raise ConfigError(name, f"must be at most {limit} characters, got {len(value)}")
    allowed = "\n\t" if name == "description" else ""
    bad = next((ch for ch in value if (ord(ch) < 32 or 127 <= ord(ch) < 160)
                and ch not in allowed), None)
    if bad is not None:  # a NUL or an escape sequence in a title or a terminal
        raise ConfigError(name, f"must not hold control characters, got {bad!r} at "
                          f"{value.index(bad)}")


@dataclass
class DataConfig:
    """The manifold family x = f(gamma, theta) and its seen, unseen and validation
    classes."""

    family: str = "random_relu"
    seen_classes: int = 100
    unseen_classes: int = 20
    # classes neither trained on nor reported as unseen, for choosing presets and targets;
    # 0 (no validation classes) is what every run recorded before this setting had
    validation_classes: int = 0
    gamma_dim: int = 8
    theta_dim: int = 16
    theta_scale: float = 1.5
    input_dim: int = 64
    noise: float = 0.0
    image_size: int = 28
    # random_relu's generator: depth hidden layers of generator_width units
    generator_depth: int = 1
    generator_width: int = 128
    generator_activation: str = "relu"
    # digits_pose: seen classes are images of seen_digits, unseen ones images of
    # unseen_digits (disjoint digits: split by label; shared digits: split by image only)
    seen_digits: str = "0123456"
    unseen_digits: str = "789"

    def validate(self) -> None:
        _choice("data.family", self.family, FAMILIES)
        _num("data.seen_classes", self.seen_classes, 2, 10000, True)
        _num("data.unseen_classes", self.unseen_classes, 2, 1000, True)
        _num("data.validation_classes", self.validation_classes, 0, 1000, True)
        _num("data.gamma_dim", self.gamma_dim, 1, 1024, True)
        if self.family in IMAGE_FAMILIES:
            _num("data.theta_dim", self.theta_dim, 1, len(IMAGE_THETA), True)
        else:
            _num("data.theta_dim", self.theta_dim, 1, 1024, True)
        _num("data.theta_scale", self.theta_scale, 0.0, 100.0)
        _num("data.input_dim", self.input_dim, 2, 8192, True)
        _num("data.noise", self.noise, 0.0, 100.0)
        _num("data.image_size", self.image_size, 8, 64, True)
        _num("data.generator_depth", self.generator_depth, 1, 8, True)
        _num("data.generator_width", self.generator_width, 4, 4096, True)
        _choice("data.generator_activation", self.generator_activation, ACTIVATIONS)
        if self.family == "digits_pose":
            digit_list("data.seen_digits", self.seen_digits)
            digit_list("data.unseen_digits", self.unseen_digits)
            if self.gamma_dim > DIGITS_GAMMA_MAX:
                raise ConfigError(
                    "data.gamma_dim",
                    f"must be in [1, {DIGITS_GAMMA_MAX}] for digits_pose (principal components "
                    f"of 8x8 images), got {self.gamma_dim}",
                )

    @property
    def x_dim(self) -> int:
        """Dimension of an input x (image_size**2 for the image families)."""
        return self.image_size**2 if self.family in IMAGE_FAMILIES else self.input_dim


@dataclass
class ModelConfig:
    """The MLP whose embedding (the layer before the head) is hashed."""

    depth: int = 2
    width: int = 256
    embed_dim: int = 64
    activation: str = "relu"
    device: str = "auto"

    def validate(self) -> None:
        _num("model.depth", self.depth, 1, 16, True)
        _num("model.width", self.width, 4, 8192, True)
        _num("model.embed_dim", self.embed_dim, 2, 4096, True)
        _choice("model.activation", self.activation, ACTIVATIONS)
        _choice("model.device", self.device, DEVICES)


@dataclass
class TrainConfig:
    optimizer: str = "adam"
    lr: float = 1e-3
    batch_size: int = 300
    steps: int = 1500
    snapshot_every: int = 100

    def validate(self) -> None:
        _choice("train.optimizer", self.optimizer, OPTIMIZERS)
        _num("train.lr", self.lr, 1e-7, 1e4)
        _num("train.batch_size", self.batch_size, 1, 65536, True)
        _num("train.steps", self.steps, 1, 10_000_000, True)
        _num("train.snapshot_every", self.snapshot_every, 1, 1_000_000, True)


@dataclass
class HashConfig:
    """SimHash: b random hyperplanes per table, L independent tables."""

    bits: int = 8
    tables: int = 4

    def validate(self) -> None:
        _num("hashing.bits", self.bits, 1, 24, True)
        _num("hashing.tables", self.tables, 1, 64, True)


@dataclass
class ProbeConfig:
    """The fixed probe set measured at every snapshot, and the one-shot episodes."""

    seen_classes: int = 20
    per_class: int = 50
    ways: int = 20
    episodes: int = 50

    def validate(self, data: DataConfig | None = None) -> None:
        _num("probe.seen_classes", self.seen_classes, 1, 1000, True)
        _num("probe.per_class", self.per_class, 2, 1000, True)
        _num("probe.ways", self.ways, 2, 1000, True)
        _num("probe.episodes", self.episodes, 1, 100000, True)
        if data is not None:
            if self.seen_classes > data.seen_classes:
                raise ConfigError(
                    "probe.seen_classes",
                    f"must be in [1, data.seen_classes={data.seen_classes}], "
                    f"got {self.seen_classes}",
                )
            if self.ways > data.unseen_classes:
                raise ConfigError(
                    "probe.ways",
                    f"must be in [2, data.unseen_classes={data.unseen_classes}], got {self.ways}",
                )


@dataclass
class ProjectionConfig:
    method: str = "umap"
    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: str = "euclidean"

    def validate(self) -> None:
        _choice("projection.method", self.method, PROJECTION_METHODS)
        _num("projection.n_neighbors", self.n_neighbors, 2, 200, True)
        _num("projection.min_dist", self.min_dist, 0.0, 1.0)
        _choice("projection.metric", self.metric, METRICS)


SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "hashing": HashConfig,
    "probe": ProbeConfig,
    "projection": ProjectionConfig,
}


@dataclass
class ExperimentConfig:
    """Everything a run needs; `seed` drives data, init, batches, probes and hashes."""

    name: str = "custom"
    description: str = ""
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    hashing: HashConfig = field(default_factory=HashConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)

    def validate(self) -> ExperimentConfig:
        """Raise ConfigError naming the first bad field; return self when all is well.

        Types and ranges only: whether the config can run on this machine (memory, the
        bundled digits) is engine.resources.check_runnable, asked where a run starts.
        """
        _text("name", self.name)
        _text("description", self.description)
        _num("seed", self.seed, 0, SEED_MAX, True)
        self.data.validate()
        self.model.validate()
        self.train.validate()
        self.hashing.validate()
        self.probe.validate(self.data)
        self.projection.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def save(self, path: str | Path) -> None:
        """Write the TOML atomically (a failed save leaves any existing file intact)."""
        atomic_write_text(path, self.to_toml())

    def replace(self, **changes: Any) -> ExperimentConfig:
        """A copy with dotted-path changes, e.g. replace(**{"train.steps": 10})."""
        d = self.to_dict()
        for key, value in changes.items():
            node = d
            *parents, leaf = key.split(".")
            for p in parents:
                if not isinstance(node.get(p), dict):
                    raise ConfigError(key, "unknown setting")
                node = node[p]
            if leaf not in node:
                raise ConfigError(key, "unknown setting")
            node[leaf] = value
        return from_dict(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExperimentConfig:
        return from_dict(d)


def from_dict(d: dict[str, Any]) -> ExperimentConfig:
    """Build and validate a config; unknown keys and wrong types raise ConfigError."""
    if not isinstance(d, dict):
        raise ConfigError("config", "must be a table of settings")
    top = {}
    sections = {}
    known_top = {"name", "description", "seed"}
    for key, value in d.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(key, "must be a table, e.g. [" + key + "]")
            sections[key] = value
        elif key in known_top:
            top[key] = value
        else:
            allowed = ", ".join(sorted(known_top | set(SECTIONS)))
            raise ConfigError(key, f"unknown setting (allowed: {allowed})")
    built = {}
    for name, klass in SECTIONS.items():
        values = sections.get(name, {})
        names = {f.name: f for f in dataclasses.fields(klass)}
        for key, value in values.items():
            if key not in names:
                raise ConfigError(
                    f"{name}.{key}", f"unknown setting (allowed: {', '.join(names)})"
                )
            default = getattr(klass(), key)
            # TOML writes 1.0 as 1.0 but users write 1; accept ints for float fields.
            if isinstance(default, float) and isinstance(value, int) and not isinstance(
                value, bool
            ):
                values = {**values, key: float(value)}
            elif isinstance(default, str) and not isinstance(value, str):
                raise ConfigError(f"{name}.{key}", f"must be a string, got {_show(value)}")
        built[name] = klass(**values)
    cfg = ExperimentConfig(**top, **built)
    return cfg.validate()


def read_text(path: str | os.PathLike[str]) -> str:
    """A config file's text: regular files only, at most MAX_FILE_BYTES, UTF-8 (BOM allowed).

    Opened without blocking and checked with fstat before reading, so a FIFO, a device
    such as /dev/zero or a folder is refused at once instead of hanging or filling memory.
    """
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ConfigError(str(p), f"cannot read file ({exc.strerror or exc})") from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
            raise ConfigError(str(p), f"cannot read file (it is {kind})")
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(str(p), f"cannot read file ({exc.strerror or exc})") from exc
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(
            str(p), f"file is larger than {MAX_FILE_BYTES // 1024} KB: not an experiment config"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            str(p), f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from exc


def parse(text: str, source: str = "config") -> ExperimentConfig:
    """Parse and validate TOML text; every failure is a ConfigError (naming `source`)."""
    from .guard import FolderError, check_toml

    try:
        check_toml(text, source)  # nesting and dotted keys, before tomllib's slow paths
        d = tomllib.loads(text)
    except FolderError as exc:
        why = str(exc).removeprefix(f"{source} ").removeprefix("is ").removeprefix("has ")
        raise ConfigError(source, f"not valid TOML ({why})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, f"not valid TOML ({exc})") from exc
    except RecursionError as exc:
        raise ConfigError(source, "not valid TOML (nested too deeply)") from exc
    try:
        return from_dict(d)
    except RecursionError as exc:
        raise ConfigError(source, "a setting is nested too deeply") from exc


def load(path: str | Path) -> ExperimentConfig:
    """Read and validate a TOML file; any problem raises ConfigError naming the file or field."""
    return parse(read_text(path), str(path))


def preset_names() -> list[str]:
    return sorted(p.name.removesuffix(".toml") for p in PRESETS.iterdir()
                  if p.name.endswith(".toml"))


def load_preset(name: str) -> ExperimentConfig:
    preset = PRESETS / f"{name}.toml"
    if "/" in name or not preset.is_file():
        raise ConfigError("preset", f"unknown preset {name!r} (choose from "
                          f"{', '.join(preset_names())})")
    return parse(preset.read_text(encoding="utf-8-sig"), f"preset {name}")


def default_config() -> ExperimentConfig:
    """The default preset if present, else the built-in defaults."""
    try:
        return load_preset("default")
    except ConfigError:
        return ExperimentConfig().validate()
