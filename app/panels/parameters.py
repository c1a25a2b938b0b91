"""Parameter panel: every experiment setting, grouped and collapsible, validated inline.

Each edit rebuilds the config through engine.config (the single source of the allowed
ranges); a bad value is shown under its field with the engine's message, the group
opens, and `validity_changed(False)` lets the window disable Start.
"""

from __future__ import annotations

from typing import Any

from PySide6 import QtCore, QtWidgets
from superqt import QCollapsible

from engine import resources
from engine.config import (
    ACTIVATIONS,
    DEVICES,
    FAMILIES,
    FAMILY,
    FAMILY_LIST,
    METRICS,
    OPTIMIZERS,
    PROJECTION_METHODS,
    ConfigError,
    ExperimentConfig,
    default_config,
    from_dict,
    load_preset,
    preset_names,
)

# A field's editor: a list of choices, an integer box, or a line of text (a float field
# has the "float_field" property)
Editor = QtWidgets.QComboBox | QtWidgets.QSpinBox | QtWidgets.QLineEdit

CHOICES = {
    "data.family": FAMILIES,
    "data.generator_activation": ACTIVATIONS,
    "model.activation": ACTIVATIONS,
    "model.device": DEVICES,
    "train.optimizer": OPTIMIZERS,
    "projection.method": PROJECTION_METHODS,
    "projection.metric": METRICS,
}

# (group title, section, [field names]); "seed" is top-level.
GROUPS = [
    ("Data: classes (gamma) and poses (theta)", "data", [
        "family", "seen_classes", "unseen_classes", "validation_classes", "gamma_dim", "theta_dim",
        "theta_scale", "input_dim", "noise", "image_size", "generator_depth",
        "generator_width", "generator_activation", "seen_digits", "unseen_digits"]),
    ("Model: the network being trained", "model", [
        "depth", "width", "embed_dim", "activation", "device"]),
    ("Training", "train", ["optimizer", "lr", "batch_size", "steps", "snapshot_every"]),
    ("Run", "", ["seed"]),
    ("Hashing: SimHash buckets", "hashing", ["bits", "tables"]),
    ("Probe set and one-shot test", "probe", ["seen_classes", "per_class", "ways", "episodes"]),
    ("Projection (2-D view)", "projection", ["method", "n_neighbors", "min_dist", "metric"]),
]

LABELS = {
    "data.seen_classes": "seen classes", "data.unseen_classes": "unseen classes",
    "data.validation_classes": "validation classes",
    "data.gamma_dim": "gamma dim", "data.theta_dim": "theta dim",
    "data.theta_scale": "theta scale", "data.input_dim": "input dim",
    "data.image_size": "image size", "model.embed_dim": "embedding dim",
    "data.generator_depth": "generator depth", "data.generator_width": "generator width",
    "data.generator_activation": "generator activation", "data.seen_digits": "seen digits",
    "data.unseen_digits": "unseen digits",
    "train.lr": "learning rate", "train.batch_size": "batch size",
    "train.snapshot_every": "snapshot every", "hashing.bits": "bits per table",
    "probe.seen_classes": "probe seen classes", "probe.per_class": "points per class",
    "probe.ways": "one-shot ways", "projection.n_neighbors": "UMAP neighbours",
    "projection.min_dist": "UMAP min dist",
}

TOOLTIPS = {
    "data.family": "How a class manifold x = f(gamma, theta) is generated: "
    + ", ".join(f"{f.name} ({f.description})" for f in FAMILY_LIST) + ".",
    "data.seen_classes": "Number of classes (gammas) the network is trained on.",
    "data.unseen_classes": "Classes never trained on: used for the one-shot test and to show "
    "that buckets generalise to new gammas.",
    "data.validation_classes": "Classes neither trained on nor reported as unseen: their "
    "one-shot and collision figures (labelled validation) are what presets and targets "
    "are chosen on, so the unseen classes stay a clean test (digits_pose: other images of "
    "the seen digits). 0 = none, as in runs recorded before this setting.",
    "data.gamma_dim": "Dimension of gamma, the class identity vector.",
    "data.theta_dim": "Dimension of theta, the pose along a class manifold "
    "(image_pose: how many of rotation, shift_x, shift_y, scale, brightness vary).",
    "data.theta_scale": "Spread of theta: how far a class manifold stretches. Larger makes "
    "classes harder to separate in input space.",
    "data.input_dim": "Dimension of an input x for vector families.",
    "data.noise": "Standard deviation of Gaussian noise added to each x.",
    "data.image_size": "Side length in pixels of the image families' images.",
    "data.generator_depth": "random_relu: hidden layers of the random generator network "
    "x = G([gamma; theta]) (1 = one hidden layer; deeper manifolds are more curved).",
    "data.generator_width": "random_relu: units per hidden layer of the generator.",
    "data.generator_activation": "random_relu: the generator's nonlinearity.",
    "data.seen_digits": "digits_pose: the digit labels whose images are seen classes "
    "(trained on), e.g. 0123456.",
    "data.unseen_digits": "digits_pose: the digit labels whose images are the unseen "
    "classes (one-shot test), e.g. 789. Disjoint from the seen digits: a truly new shape.",
    "model.depth": "Hidden layers of the MLP before the embedding.",
    "model.width": "Units per hidden layer.",
    "model.embed_dim": "Size of the representation that is hashed (the layer before the "
    "class head).",
    "model.activation": "Nonlinearity of the hidden layers.",
    "model.device": "Where training runs: auto picks cuda or mps when present, else cpu.",
    "train.optimizer": "Optimiser for the seen-class classification loss.",
    "train.lr": "Learning rate.",
    "train.batch_size": "Inputs per step, drawn from seen classes at random poses theta.",
    "train.steps": "Training steps in the run.",
    "train.snapshot_every": "Steps between snapshots: each one measures buckets, collisions, "
    "one-shot accuracy and sends the embedding to the projection. Step advances one "
    "such interval.",
    "seed": "Master seed: drives classes, poses, initialisation, batches, probes and hash "
    "hyperplanes, so a saved config reproduces the run.",
    "hashing.bits": "SimHash bits per table: random hyperplanes whose signs give the bucket. "
    "More bits make buckets smaller (theory: collision = (1 - angle/pi)^bits).",
    "hashing.tables": "Independent hash tables; collision rates are averaged over them.",
    "probe.seen_classes": "Seen classes included in the probe set shown in the plots "
    "(at most the number of seen classes).",
    "probe.per_class": "Probe points per class (random poses theta).",
    "probe.ways": "N in N-way one-shot: unseen classes per episode, one exemplar each "
    "(at most the number of unseen classes).",
    "probe.episodes": "One-shot episodes averaged per snapshot.",
    "projection.method": "2-D view of the representation: umap (neighbourhoods) or pca "
    "(linear, fastest). Applied to the running experiment immediately.",
    "projection.n_neighbors": "UMAP neighbourhood size: larger shows more global structure.",
    "projection.min_dist": "UMAP minimum distance between points in the view.",
    "projection.metric": "Distance used by the projection (cosine matches the one-shot test).",
}

# Every integer a config can hold (seed up to 2**31 - 1) and the out-of-range values the
# engine then names; QSpinBox is int32, which is exactly this.
INT_SPIN_RANGE = (-(2**31), 2**31 - 1)
ERROR_STYLE = "color: #c0392b; font-size: 11px;"
ESTIMATE_STYLE = "color: #555; font-size: 10px;"
SLOW_FIRST_SNAPSHOT_S = 60


def _key(section: str, name: str) -> str:
    return f"{section}.{name}" if section else name


class ParameterPanel(QtWidgets.QScrollArea):
    """Editors for every setting; `config()` is the valid config or None."""

    name = "parameters"
    title = "Parameters"
    validity_changed = QtCore.Signal(bool)
    config_changed = QtCore.Signal()
    projection_changed = QtCore.Signal()
    preset_requested = QtCore.Signal(str)  # a preset picked while locked (see set_locked)

    def __init__(self, config: ExperimentConfig | None = None,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(self.name)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body = QtWidgets.QWidget()
        self.setWidget(body)
        outer = self._column = QtWidgets.QVBoxLayout(body)
        outer.setContentsMargins(4, 4, 4, 4)
        outer.setSpacing(2)

        preset_row = QtWidgets.QHBoxLayout()
        preset_row.addWidget(QtWidgets.QLabel("Preset"))
        self.preset = QtWidgets.QComboBox()
        self.preset.setToolTip("Load a preset experiment (engine/presets/*.toml).")
        self.preset.addItems(preset_names())
        self.preset.activated.connect(self._on_preset_chosen)
        preset_row.addWidget(self.preset, 1)
        outer.addLayout(preset_row)
        self.description = QtWidgets.QLabel("")
        self.description.setWordWrap(True)
        self.description.setStyleSheet("color: #555; font-size: 11px;")
        outer.addWidget(self.description)
        # One slot of fixed height above the fields holds the estimate or, while a value is
        # bad, the summary of what is wrong: fields never move under the cursor when a
        # message appears (the full text is also the slot's tooltip).
        self.message_slot = QtWidgets.QWidget()
        slot = QtWidgets.QVBoxLayout(self.message_slot)
        slot.setContentsMargins(0, 0, 0, 0)
        slot.setSpacing(0)
        self.summary = QtWidgets.QLabel("")
        self.summary.setWordWrap(True)
        self.summary.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop)
        self.summary.setStyleSheet(ERROR_STYLE + " font-weight: bold;")
        self.summary.hide()
        slot.addWidget(self.summary)
        self.estimate = QtWidgets.QLabel("")
        self.estimate.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop)
        self.estimate.setObjectName("resourceEstimate")
        self.estimate.setWordWrap(True)
        self.estimate.setToolTip(
            "Memory and time this run needs, estimated from the settings before anything is "
            "allocated (engine/resources.py). Start is disabled above the limit: half this "
            "machine's memory, or GSH_MEMORY_LIMIT."
        )
        slot.addWidget(self.estimate)
        self.message_slot.setFixedHeight(4 * self.fontMetrics().lineSpacing() + 4)
        outer.addWidget(self.message_slot)

        self.editors: dict[str, Editor] = {}
        self.error_labels: dict[str, QtWidgets.QLabel] = {}
        self.groups: dict[str, QCollapsible] = {}
        self._group_of: dict[str, str] = {}
        defaults = ExperimentConfig().to_dict()
        for title, section, fields in GROUPS:
            box = QCollapsible(title)
            box.setDuration(0)
            content = QtWidgets.QWidget()
            form = QtWidgets.QFormLayout(content)
            form.setContentsMargins(2, 0, 2, 2)
            form.setVerticalSpacing(1)
            form.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
            for name in fields:
                key = _key(section, name)
                default = defaults[section][name] if section else defaults[name]
                editor = self._make_editor(key, default)
                tip = TOOLTIPS.get(key, "")
                editor.setToolTip(tip)
                label = QtWidgets.QLabel(LABELS.get(key, name.replace("_", " ")))
                label.setToolTip(tip)
                error = QtWidgets.QLabel("")
                error.setWordWrap(True)
                error.setStyleSheet(ERROR_STYLE)
                error.hide()
                cell = QtWidgets.QWidget()
                v = QtWidgets.QVBoxLayout(cell)
                v.setContentsMargins(0, 0, 0, 0)
                v.setSpacing(0)
                v.addWidget(editor)
                v.addWidget(error)
                form.addRow(label, cell)
                self.editors[key] = editor
                self.error_labels[key] = error
                self._group_of[key] = title
            box.addWidget(content)
            box.expand(animate=False)
            self.groups[title] = box
            outer.addWidget(box)
        outer.addStretch(1)
        note = QtWidgets.QLabel("Changes apply at the next Start; projection settings apply now.")
        note.setWordWrap(True)
        note.setStyleSheet("color: #777; font-size: 10px;")
        outer.addWidget(note)

        self.errors: dict[str, str] = {}
        self._config = (config or default_config()).validate()
        self._valid_config: ExperimentConfig | None = self._config
        self._loading = False
        self.set_config(self._config)

    # -- public --------------------------------------------------------------------
    def config(self) -> ExperimentConfig | None:
        """The config the editors describe, or None while any value is invalid."""
        return self._valid_config

    def is_valid(self) -> bool:
        return self._valid_config is not None

    def set_config(self, cfg: ExperimentConfig) -> None:
        """Show `cfg` in the editors in one step, from every source (preset, file, caller).

        `cfg` is validated first, so a bad one raises ConfigError before any editor
        changes. Emits config_changed, and projection_changed when the projection
        settings differ from those shown before.
        """
        cfg = cfg.validate()
        old = getattr(self, "_valid_config", None)
        self._loading = True
        try:
            self._config = cfg
            d = cfg.to_dict()
            for key, editor in self.editors.items():
                section, _, name = key.rpartition(".")
                value = d[section][name] if section else d[name]
                self._set_value(editor, value)
            # A config that is not a preset shows as "custom: NAME" (the placeholder).
            self.preset.setPlaceholderText(f"custom: {cfg.name}")
            self.preset.setCurrentIndex(self.preset.findText(cfg.name))
            self.description.setText(cfg.description)
            self.description.setVisible(bool(cfg.description))
        finally:
            self._loading = False
        self._validate()
        if old is not None:
            self.config_changed.emit()
            if self._valid_config is not None and old.projection != self._valid_config.projection:
                self.projection_changed.emit()

    def set_value(self, key: str, value: Any) -> None:
        """Set one field as a user would (tests and scripting)."""
        self._set_value(self.editors[key], value)

    def values(self) -> dict:
        return {key: self._get_value(editor) for key, editor in self.editors.items()}

    # -- editors -------------------------------------------------------------------
    def _make_editor(self, key: str, default: object) -> Editor:
        if key in CHOICES:
            box = QtWidgets.QComboBox()
            box.addItems(list(CHOICES[key]))
            box.currentIndexChanged.connect(lambda _i, k=key: self._on_edited(k))
            return box
        if isinstance(default, int) and not isinstance(default, bool):
            spin = QtWidgets.QSpinBox()
            spin.setRange(*INT_SPIN_RANGE)
            spin.setKeyboardTracking(True)
            spin.valueChanged.connect(lambda _v, k=key: self._on_edited(k))
            return spin
        line = QtWidgets.QLineEdit()
        if not isinstance(default, (bool, str)):
            line.setProperty("float_field", True)
        line.textChanged.connect(lambda _t, k=key: self._on_edited(k))
        return line

    @staticmethod
    def _set_value(editor: Editor, value: Any) -> None:
        if isinstance(editor, QtWidgets.QComboBox):
            i = editor.findText(str(value))
            editor.setCurrentIndex(i if i >= 0 else 0)
        elif isinstance(editor, QtWidgets.QSpinBox):
            editor.setValue(int(value))
        elif editor.property("float_field"):
            # repr: the shortest text that reads back as exactly this float
            editor.setText(repr(float(value)) if isinstance(value, (int, float)) else str(value))
        else:
            editor.setText(str(value))

    @staticmethod
    def _get_value(editor: Editor) -> str | int | float:
        if isinstance(editor, QtWidgets.QComboBox):
            return editor.currentText()
        if isinstance(editor, QtWidgets.QSpinBox):
            return editor.value()
        text = editor.text().strip()
        if editor.property("float_field"):
            try:
                return float(text)
            except ValueError:
                return text
        return text

    # -- validation ----------------------------------------------------------------
    def _build(self, values: dict) -> ExperimentConfig:
        d = self._config.to_dict()
        for key, value in values.items():
            section, _, name = key.rpartition(".")
            (d[section] if section else d)[name] = value
        cfg = from_dict(d)
        resources.check_runnable(cfg)  # Start stays disabled for a config that cannot run here
        return cfg

    def _validate(self) -> None:
        values = self.values()
        trial = dict(values)
        base = self._config.to_dict()
        errors: dict[str, str] = {}
        cfg = None
        for _ in range(len(values) + 1):
            try:
                cfg = self._build(trial)
                break
            except ConfigError as exc:
                if exc.field in errors or exc.field not in trial:
                    errors.setdefault(exc.field, exc.message)
                    break
                errors[exc.field] = exc.message
                # Put back the last good value to find further problems in other fields.
                section, _, name = exc.field.rpartition(".")
                trial[exc.field] = base[section][name] if section else base[exc.field]
        was_valid = self._valid_config is not None
        self.errors = errors
        self._valid_config = cfg if not errors else None
        for key, label in self.error_labels.items():
            msg = errors.get(key)
            label.setText(f"⚠ {msg}" if msg else "")
            label.setVisible(bool(msg))
            self.editors[key].setStyleSheet("border: 1px solid #c0392b;" if msg else "")
            if msg and not self.groups[self._group_of[key]].isExpanded():
                self.groups[self._group_of[key]].expand(animate=False)
        if errors:
            self.summary.setText(
                "Start is disabled: "
                + "; ".join(f"{k}: {m}" for k, m in errors.items())
            )
        self.summary.setVisible(bool(errors))
        self.message_slot.setToolTip(self.summary.text() if errors else "")
        self._show_estimate(cfg, errors)
        # Each family's own fields: input_dim for vector families, image_size for image
        # families, the generator for random_relu, the digit split for digits_pose.
        family = FAMILY.get(values.get("data.family", ""))
        images = family is not None and family.image
        self.editors["data.input_dim"].setEnabled(not images)
        self.editors["data.image_size"].setEnabled(images)
        for other in FAMILY_LIST:
            for name in other.fields:
                self.editors[f"data.{name}"].setEnabled(family is not None
                                                         and name in family.fields)
        if was_valid != (not errors):
            self.validity_changed.emit(not errors)

    def _show_estimate(self, cfg: ExperimentConfig | None, errors: dict) -> None:
        """The live resource estimate: normal, or orange when the first snapshot is slow.

        While any value is bad (over the memory limit included) the summary takes its
        place in the slot and says it all (the estimate and which fields to lower).
        """
        self.estimate.setVisible(not errors)
        if cfg is not None:
            est = resources.estimate(cfg)
            limit = resources.human_bytes(resources.memory_limit())
            slow = est.first_snapshot_s > SLOW_FIRST_SNAPSHOT_S
            self.estimate.setText(f"Needs {est.summary()} (memory limit {limit})")
            self.estimate.setStyleSheet(ESTIMATE_STYLE + (" color: #b9770e;" if slow else ""))

    def _on_edited(self, key: str) -> None:
        if self._loading:
            return
        self._validate()
        if self._valid_config is not None:
            self.config_changed.emit()
            if key.startswith("projection."):
                self.projection_changed.emit()

    def _on_preset_chosen(self, index: int) -> None:
        name = self.preset.itemText(index)
        try:
            self.set_config(load_preset(name))
        except ConfigError as exc:
            self.preset.setCurrentIndex(self.preset.findText(self._config.name))
            self.summary.setText(str(exc))
            self.summary.show()


    # -- lock while a run is active (owned by the screen-truth work, issue 7) -------------
    def set_locked(self, locked: bool, reason: str = "") -> None:
        """Make the run's settings read-only while a run is active, saying why.

        Projection settings stay editable (they apply to the view at once). Picking a
        preset while locked changes nothing here: it emits `preset_requested(name)` so the
        window can ask whether to stop the run first.
        """
        if not hasattr(self, "lock_banner"):
            self.lock_banner = QtWidgets.QLabel("")
            self.lock_banner.setObjectName("lockBanner")
            self.lock_banner.setWordWrap(True)
            self.lock_banner.setStyleSheet(
                "background: #fdf2e9; color: #8a4b08; border: 1px solid #e59866;"
                " padding: 3px; font-size: 11px;"
            )
            self._column.insertWidget(0, self.lock_banner)
            self.lock_banner.hide()
            self.locked = False
        self.lock_banner.setText(reason or "Read-only while a run is active.")
        self.lock_banner.setVisible(locked)
        if locked == self.locked:
            return
        self.locked = locked
        for key, editor in self.editors.items():
            if key.startswith("projection."):
                continue
            if isinstance(editor, QtWidgets.QComboBox):
                editor.setEnabled(not locked)
            else:
                editor.setReadOnly(locked)
        if locked:
            self.preset.activated.disconnect(self._on_preset_chosen)
            self.preset.activated.connect(self._on_preset_chosen_locked)
        else:
            self.preset.activated.disconnect(self._on_preset_chosen_locked)
            self.preset.activated.connect(self._on_preset_chosen)

    def _on_preset_chosen_locked(self, index: int) -> None:
        name = self.preset.itemText(index)
        self.preset.setCurrentIndex(self.preset.findText(self._config.name))
        self.preset_requested.emit(name)


def field_names() -> list[str]:
    """Every dotted setting the panel edits (for tests)."""
    return [_key(s, n) for _t, s, names in GROUPS for n in names]

