"""Configuration: validation names the field and range; TOML round-trips; presets load."""

from __future__ import annotations

import pytest

from engine import config as cfg
from engine.config import MAX_TEXT, ConfigError, ExperimentConfig


@pytest.mark.parametrize(
    "changes, field, fragment",
    [
        ({"train.lr": -1.0}, "train.lr", "[1e-07, 10000]"),
        ({"train.steps": 0}, "train.steps", "[1, "),
        ({"data.family": "spheres"}, "data.family", "random_relu, linear, image_pose"),
        ({"hashing.bits": 40}, "hashing.bits", "[1, 24]"),
        ({"model.depth": 2.5}, "model.depth", "integer"),
        ({"probe.ways": 30}, "probe.ways", "data.unseen_classes=20"),
        ({"data.theta_scale": "big"}, "data.theta_scale", "number"),
    ],
)
def test_invalid_values_name_field_and_range(changes, field, fragment):
    with pytest.raises(ConfigError) as info:
        ExperimentConfig().replace(**changes)
    assert info.value.field == field
    assert str(info.value).startswith(field)
    assert fragment in str(info.value)


def test_image_pose_limits_theta_to_pose_parameters():
    with pytest.raises(ConfigError, match=r"data.theta_dim: must be in \[1, 5\]"):
        ExperimentConfig().replace(**{"data.family": "image_pose", "data.theta_dim": 16})


def test_toml_round_trip(tmp_path):
    c = ExperimentConfig().replace(**{"seed": 9, "train.lr": 0.003, "data.family": "linear"})
    path = tmp_path / "exp.toml"
    c.save(path)
    assert cfg.load(path) == c


def test_unknown_keys_and_bad_files_are_named(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nsteps = 10\nlearning_rate = 1\n")
    with pytest.raises(ConfigError, match="train.learning_rate: unknown setting"):
        cfg.load(bad)
    broken = tmp_path / "broken.toml"
    broken.write_text("[train\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        cfg.load(broken)
    with pytest.raises(ConfigError, match="cannot read"):
        cfg.load(tmp_path / "missing.toml")


def test_every_preset_loads_and_validates():
    names = cfg.preset_names()
    assert "default" in names
    for name in names:
        c = cfg.load_preset(name)
        assert c.name == name and c.description


def test_int_accepted_for_float_fields(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text("[train]\nlr = 1\n")
    assert cfg.load(p).train.lr == 1.0


def test_text_fields_are_typed_and_bounded():
    for field, limit in MAX_TEXT.items():
        ExperimentConfig().replace(**{field: "x" * limit})
        with pytest.raises(ConfigError, match=f"{field}: must be at most {limit} characters"):
            ExperimentConfig().replace(**{field: "x" * (limit + 1)})
        with pytest.raises(ConfigError, match=f"{field}: must be a string, got 5"):
            ExperimentConfig().replace(**{field: 5})


def test_messages_stay_short_whatever_the_value():
    with pytest.raises(ConfigError) as info:
        ExperimentConfig().replace(**{"train.lr": "9" * 100_000})
    assert len(str(info.value)) < 150
    with pytest.raises(ConfigError, match=r"seed: must be in \[0, 2147483647\]"):
        ExperimentConfig().replace(seed=2**31)


def test_unknown_dotted_setting_is_named():
    with pytest.raises(ConfigError, match="trainer.steps: unknown setting"):
        ExperimentConfig().replace(**{"trainer.steps": 5})


def test_bom_is_accepted_and_text_is_parsed_whole(tmp_path):
    p = tmp_path / "bom.toml"
    p.write_bytes("\ufeff".encode() + ExperimentConfig().replace(seed=4).to_toml().encode())
    assert cfg.load(p).seed == 4
    assert cfg.parse("seed = 4\n").seed == 4
    with pytest.raises(ConfigError, match="config: not valid TOML"):
        cfg.parse("seed = [" * 3000)
