"""Small configs shared by tests: fast enough for a 2-core CI machine."""

from engine.config import ExperimentConfig


def tiny_config(**changes) -> ExperimentConfig:
    base = {
        "data.seen_classes": 10,
        "data.unseen_classes": 6,
        "data.input_dim": 32,
        "data.theta_dim": 4,
        "model.width": 32,
        "model.embed_dim": 16,
        "train.steps": 40,
        "train.batch_size": 64,
        "train.snapshot_every": 10,
        "probe.seen_classes": 5,
        "probe.per_class": 8,
        "probe.ways": 5,
        "probe.episodes": 10,
        "projection.method": "pca",
    }
    base.update(changes)
    return ExperimentConfig().replace(**base)


def record_tiny_run(out, **changes):
    """Train tiny_config(**changes) and record it into `out` (a run folder); returns out."""
    from engine.experiment import Experiment
    from engine.record import RunWriter

    cfg = tiny_config(**changes)
    exp = Experiment(cfg)
    with RunWriter(out, cfg, device=str(exp.device)) as w:
        for snap in exp.run():
            w.append(snap, exp.info)
    return out
