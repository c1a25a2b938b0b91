"""A snapshot's measurements, numpy only (no torch): the Measurer, the run's one-shot
episodes, and the measurement process that runs beside training (engine.training).

The process is spawned per run: it imports this module (numpy and engine.hashing, no
torch), builds the run's Measurer (the raw-input baselines) in its initializer and then
measures each snapshot's embeddings as training hands them over. Its one BLAS thread is
the measurement core of engine.threads' rule."""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from . import hashing, metrics, threads
from .config import ExperimentConfig
from .seeds import stream_seed
from .snapshot import ProbeSet

INVARIANCE_ROWS = 800  # invariance is O(n^2): measured on a fixed subsample of unseen rows


@dataclass
class FitRows:
    """Fresh samples of many seen classes (all of them up to FIT_ROWS / 2), 2-5 each: the
    rows the ridge probes are fitted on. Fixed per run, measured at every snapshot."""

    x: np.ndarray  # (m, x_dim) float32
    label: np.ndarray  # (m,) global class id (all seen)
    theta: np.ndarray  # (m, theta_dim)
    gamma: np.ndarray  # (m, gamma_dim) each row's class gamma



def validation_episodes(cfg: ExperimentConfig, validation: ProbeSet,
                        should_stop: Callable[[], bool] | None = None) -> list:
    """One-shot episodes over the validation classes, drawn as the unseen ones are (ways
    at most the number of validation classes) from their own stream."""
    n = len(validation.classes)
    return metrics.oneshot_episodes(
        validation.class_index, np.arange(n), min(cfg.probe.ways, n), cfg.probe.episodes,
        seed=stream_seed(cfg.seed, "validation_episodes"), should_stop=should_stop)


def probe_episodes(
    cfg: ExperimentConfig, probe: ProbeSet, should_stop: Callable[[], bool] | None = None
) -> list:
    """The run's fixed one-shot episodes over the probe's unseen classes."""
    unseen = np.flatnonzero(~probe.class_seen)
    return metrics.oneshot_episodes(
        probe.class_index, unseen, min(cfg.probe.ways, len(unseen)), cfg.probe.episodes,
        seed=stream_seed(cfg.seed, "episodes"), should_stop=should_stop,
    )



class Measurer:
    """Measures one model state on the fixed probe set; the raw-input baselines are
    computed once, here, and the untrained ones at the first measurement."""

    def __init__(
        self, cfg: ExperimentConfig, probe: ProbeSet, embed_dim: int,
        should_abort: Callable[[], bool] | None = None, fit: FitRows | None = None,
        validation: ProbeSet | None = None,
    ):
        self.cfg = cfg
        self.validation = validation
        self.should_abort = should_abort  # polled inside long one-shot measurements
        self.probe = probe
        self.fit = fit
        self.class_index = probe.class_index
        n_classes = len(probe.classes)
        self.episodes = probe_episodes(cfg, probe, should_abort)
        self.ways = min(cfg.probe.ways, int((~probe.class_seen).sum()))
        self.seen_rows = np.flatnonzero(probe.seen)
        self.unseen_rows = np.flatnonzero(~probe.seen)
        self.row_gamma = probe.gamma[self.class_index]
        rng = np.random.default_rng(stream_seed(cfg.seed, "invariance_rows"))
        n = len(self.unseen_rows)  # the claim is about unseen classes
        self.inv_rows = np.sort(self.unseen_rows[
            rng.choice(n, size=min(n, INVARIANCE_ROWS), replace=False)])
        h = cfg.hashing
        self.simhash_seed = stream_seed(cfg.seed, "simhash")
        self.simhash = hashing.SimHash(embed_dim, h.bits, h.tables, seed=self.simhash_seed)
        raw_seed = stream_seed(cfg.seed, "raw_simhash")
        self.angles, pairs = hashing.gamma_pair_angles(probe.gamma)
        self.pair_i, self.pair_j = pairs
        self.unseen_pairs = ~probe.class_seen[self.pair_i] & ~probe.class_seen[self.pair_j]
        self.n_classes = n_classes
        raw = probe.x
        raw_center = hashing.seen_center(raw, probe.seen)
        raw_m = hashing.exact_collision_matrix(raw, raw_center, self.class_index, n_classes,
                                               h.bits)
        self.raw_same, self.raw_diff = hashing.same_and_different(raw_m, self.class_index)
        raw_split = hashing.split_rates(raw_m, self.class_index, probe.class_seen)
        self.raw_pair_collision = raw_m[self.pair_i, self.pair_j]
        self.boot_seed = stream_seed(cfg.seed, "bootstrap")
        self.unseen_classes = np.flatnonzero(~probe.class_seen)
        self.class_counts = np.bincount(self.class_index, minlength=n_classes)
        self.oneshot_raw, raw_ci = self._oneshot(raw)
        self.invariance_raw = metrics.invariance_ratio(
            raw[self.inv_rows], self.class_index[self.inv_rows]
        )
        probes = self._probes(raw, None if fit is None else fit.x)
        linear = self._learned_linear(raw)
        lsh = hashing.lsh_index_oneshot(raw, self.episodes, h.bits, h.tables, raw_seed,
                                        should_stop=should_abort, center=raw_center)
        self.baselines = dict(  # RunInfo's raw-input fields
            oneshot_raw=self.oneshot_raw,
            raw_same_class_collision=self.raw_same,
            raw_different_class_collision=self.raw_diff,
            raw_unseen_same_class_collision=raw_split["unseen_same"],
            raw_unseen_different_class_collision=raw_split["unseen_different"],
            raw_pair_collision=self.raw_pair_collision.astype(np.float32),
            raw_pair_embed_angle=self._pair_embed_angle(raw, raw_center),
            raw_hash_center=raw_center,
            locality_spearman_raw=metrics.spearman(
                self.angles[self.unseen_pairs], self.raw_pair_collision[self.unseen_pairs]
            ),
            gamma_r2_raw=probes["gamma"],
            theta_r2_raw=probes["theta"],
            theta_r2_unseen_raw=probes["theta_unseen"],
            theta_r2_seen_raw=probes["theta_seen"],
            within_share_raw=metrics.within_class_share(raw[self.unseen_rows],
                                                        self.class_index[self.unseen_rows]),
            invariance_raw=self.invariance_raw,
            **{f"lsh_{k}_raw": v for k, v in lsh.items()},
            **linear,
        )
        self.baselines.update(self._validation_baselines(raw))
        self.baseline_ci = {"oneshot_raw": raw_ci, "gamma_r2_raw": probes["gamma_ci"],
                     "oneshot_learned_linear": self.baselines.pop("oneshot_learned_linear_ci")}
        self.untrained: dict[str, Any] = {}  # RunInfo's untrained fields (floats)

    def _validation_baselines(self, raw: np.ndarray) -> dict:
        """The raw input's and the learned linear baseline's one-shot on the validation
        classes (nan without them)."""
        v = self.validation
        if v is None:
            return {}
        self.val_episodes = validation_episodes(self.cfg, v, self.should_abort)
        return dict(
            val_oneshot_raw=metrics.oneshot_accuracy(v.x, self.val_episodes, self.should_abort),
            val_oneshot_learned_linear=metrics.oneshot_accuracy(
                self.linear.transform(v.x), self.val_episodes, self.should_abort),
        )

    def _validation(self, val_embedding: np.ndarray | None, center: np.ndarray) -> dict:
        """The embedding's figures on the validation classes: one-shot on their episodes
        and the expected collision rates hashed around the (seen-class) hash centre."""
        v = self.validation
        if v is None or val_embedding is None:
            return {}
        m = hashing.exact_collision_matrix(val_embedding, center, v.class_index,
                                           len(v.classes), self.cfg.hashing.bits)
        same, diff = hashing.same_and_different(m, v.class_index)
        return dict(
            val_oneshot_trained=metrics.oneshot_accuracy(val_embedding, self.val_episodes,
                                                         self.should_abort),
            val_same_class_collision=same, val_different_class_collision=diff,
        )

    def _oneshot(self, features: np.ndarray) -> tuple[float, tuple[float, float]]:
        """One-shot accuracy on the run's episodes and its 95% bootstrap interval."""
        acc, hits, counts = metrics.oneshot_scores(
            features, self.episodes, self.class_index, self.n_classes, self.should_abort)
        return acc, metrics.bootstrap_ci(hits, counts, self.boot_seed)

    def _learned_linear(self, raw: np.ndarray) -> dict:
        """The learned linear baseline (metrics.LearnedLinear, LDA of the raw input fitted
        on the probe's seen-class rows only, so probe.npz alone reproduces it), scored on
        the same one-shot episodes and expected collision rates as the network."""
        seen = self.seen_rows
        self.linear = metrics.LearnedLinear(raw[seen], self.probe.label[seen])
        z = self.linear.transform(raw)
        m = hashing.exact_collision_matrix(z, hashing.seen_center(z, self.probe.seen),
                                           self.class_index, self.n_classes,
                                           self.cfg.hashing.bits)
        split = hashing.split_rates(m, self.class_index, self.probe.class_seen)
        oneshot, ci = self._oneshot(z)
        return dict(
            oneshot_learned_linear=oneshot,
            oneshot_learned_linear_ci=ci,
            learned_linear_unseen_same_class_collision=split["unseen_same"],
            learned_linear_unseen_different_class_collision=split["unseen_different"],
            invariance_learned_linear=metrics.invariance_ratio(
                z[self.inv_rows], self.class_index[self.inv_rows]),
        )

    def _pair_embed_angle(self, features: np.ndarray, center: np.ndarray) -> np.ndarray:
        return hashing.class_mean_angles(
            features, self.class_index, self.n_classes, self.pair_i, self.pair_j, center
        ).astype(np.float32)

    def _probes(self, features: np.ndarray, fit_features: np.ndarray | None) -> dict:
        """Ridge read-outs of gamma (R^2 on unseen classes, with its 95% interval over
        them) and theta (on all probe rows, unseen rows, seen rows); nan without fit
        rows."""
        nan = float("nan")
        if self.fit is None or fit_features is None:
            return {"gamma": nan, "gamma_ci": (nan, nan), "theta": nan,
                    "theta_unseen": nan, "theta_seen": nan}
        ridge = metrics.RidgeProbe(fit_features, self.fit.label, seed=self.cfg.seed)
        u, s = self.unseen_rows, self.seen_rows
        gamma_pred = ridge.predict(self.fit.gamma, features[u])
        theta_pred = ridge.predict(self.fit.theta, features)
        theta = self.probe.theta
        return {
            "gamma": metrics.r2_score(self.row_gamma[u], gamma_pred),
            "gamma_ci": metrics.r2_ci(self.row_gamma[u], gamma_pred, self.class_index[u],
                                      self.n_classes, self.boot_seed),
            "theta": metrics.r2_score(theta, theta_pred),
            "theta_unseen": metrics.r2_score(theta[u], theta_pred[u]),
            "theta_seen": metrics.r2_score(theta[s], theta_pred[s]),
        }

    def measure(
        self, embedding: np.ndarray, logits_seen: np.ndarray,
        fit_embedding: np.ndarray | None = None, loss: float = float("nan"),
        first_loss: float = float("nan"), val_embedding: np.ndarray | None = None,
    ) -> dict:
        """All per-snapshot figures for one embedding of the probe set (and of the fit
        rows and validation rows)."""
        h = self.cfg.hashing
        center = hashing.seen_center(embedding, self.probe.seen)
        m = hashing.exact_collision_matrix(embedding, center, self.class_index,
                                           self.n_classes, h.bits)
        same, diff = hashing.same_and_different(m, self.class_index)
        split = hashing.split_rates(m, self.class_index, self.probe.class_seen)
        acc = float(np.mean(logits_seen.argmax(1) == self.probe.label[self.seen_rows]))
        oneshot, oneshot_ci = self._oneshot(embedding)
        probes = self._probes(embedding, fit_embedding)
        within = metrics.within_class_share(embedding[self.unseen_rows],
                                            self.class_index[self.unseen_rows])
        val = self._validation(val_embedding, center)
        if not self.untrained:  # the first measurement is of the untrained network
            self.untrained = dict(
                oneshot_untrained=oneshot,
                gamma_r2_untrained=probes["gamma"],
                theta_r2_untrained=probes["theta"],
                theta_r2_unseen_untrained=probes["theta_unseen"],
                theta_r2_seen_untrained=probes["theta_seen"],
                within_share_untrained=within,
                **({"val_oneshot_untrained": val["val_oneshot_trained"]} if val else {}),
            )
            self.baseline_ci.update(oneshot_untrained=oneshot_ci,
                                    gamma_r2_untrained=probes["gamma_ci"])
        u = self.unseen_classes
        coll_ci = metrics.collision_ci(m[np.ix_(u, u)], self.class_counts[u], self.boot_seed)
        lsh = hashing.lsh_index_oneshot(
            embedding, self.episodes, h.bits, h.tables, self.simhash_seed,
            should_stop=self.should_abort, center=center,
        )
        pair_collision = m[self.pair_i, self.pair_j]
        return dict(
            train_accuracy=acc,
            oneshot_trained=oneshot,
            same_class_collision=same,
            different_class_collision=diff,
            seen_same_class_collision=split["seen_same"],
            seen_different_class_collision=split["seen_different"],
            unseen_same_class_collision=split["unseen_same"],
            unseen_different_class_collision=split["unseen_different"],
            collision_matrix=m.astype(np.float32),
            pair_collision=pair_collision.astype(np.float32),
            pair_embed_angle=self._pair_embed_angle(embedding, center),
            hash_center=center,
            locality_spearman_unseen=metrics.spearman(
                self.angles[self.unseen_pairs], pair_collision[self.unseen_pairs]
            ),
            gamma_r2_trained=probes["gamma"],
            theta_r2_trained=probes["theta"],
            theta_r2_unseen_trained=probes["theta_unseen"],
            theta_r2_seen_trained=probes["theta_seen"],
            within_share_trained=within,
            ci95={k: list(v) for k, v in (  # lists: as they read back from the record
                ("oneshot_trained", oneshot_ci), ("gamma_r2_trained", probes["gamma_ci"]),
                ("unseen_same_class_collision", coll_ci["same"]),
                ("unseen_different_class_collision", coll_ci["different"]))},
            invariance_trained=metrics.invariance_ratio(
                embedding[self.inv_rows], self.class_index[self.inv_rows]
            ),
            **{f"lsh_{k}_trained": v for k, v in lsh.items()},
            **val,
            collapsed=metrics.collapse_reason(  # one drawn set of tables: real buckets
                loss, first_loss, embedding, self.simhash.codes(embedding - center)),
        )

    def run_fields(self) -> dict[str, Any]:
        """The run's fixed figures (RunInfo's fields but the probe set, total_steps and
        device); call after the first (untrained) measurement."""
        h = self.cfg.hashing
        return dict(
            ways=self.ways, episodes=len(self.episodes), bits=h.bits, tables=h.tables,
            pair_angle=self.angles.astype(np.float32), **self.untrained, **self.baselines,
            baseline_ci95={k: list(v) for k, v in self.baseline_ci.items()},
            validation_classes=0 if self.validation is None else len(self.validation.classes),
        )



Measured = tuple[dict, dict | None]  # a snapshot's figures, and the run's fixed ones (first)


def measure_with(measurer: Measurer, embedding: np.ndarray, logits_seen: np.ndarray,
                 fit_embedding: np.ndarray | None, loss: float, first_loss: float,
                 val_embedding: np.ndarray | None) -> Measured:
    """One snapshot's figures (Measurer.measure, one BLAS thread), with the run's fixed
    fields (Measurer.run_fields) after the first, untrained, measurement."""
    from threadpoolctl import threadpool_limits

    first = not measurer.untrained
    with threadpool_limits(limits=1, user_api="blas"):
        figures = measurer.measure(embedding, logits_seen, fit_embedding, loss, first_loss,
                                   val_embedding)
    return figures, measurer.run_fields() if first else None

# The measurement process: a fresh interpreter that imports only this module's world.
_CHILD = "import sys; sys.path.insert(0, sys.argv[1]); from engine.measure import serve; serve()"


class MeasureProcess:
    """A run's measurement process. It starts (imports) at once; `setup(...)` says what
    run to measure; `submit(embedding, logits_seen, fit_embedding, loss, first_loss,
    val_embedding)` returns a Future of measure_with's result, measured there in
    submission order. An exception raised there is the Future's exception.

    A plain subprocess (`python -c`, requests and replies pickled over its stdin and
    stdout): unlike multiprocessing's spawn, it does not run the caller's main script
    again, and a daemonic process (a Dask worker) may start it. Two threads here write
    the requests and read the replies; `close()` ends the process (at once with `kill`,
    else after what was submitted) and them."""

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parent.parent)
        self._proc = subprocess.Popen([sys.executable, "-c", _CHILD, root],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        for pipe in (self._proc.stdin, self._proc.stdout):
            _widen(pipe)
        self._futures: deque[Future[Measured]] = deque()
        self._lock = threading.Lock()
        self._requests: queue.SimpleQueue[tuple | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write, name="gsh-measure-requests")
        self._reader = threading.Thread(target=self._read, name="gsh-measure-replies")
        self._writer.start()
        self._reader.start()

    def setup(self, cfg: ExperimentConfig, probe: ProbeSet, embed_dim: int,
              fit: FitRows | None, validation: ProbeSet | None) -> None:
        """The run to measure (once, before submit): the process builds its Measurer."""
        self._send((cfg, probe, embed_dim, fit, validation))

    def _send(self, request: tuple) -> None:
        self._requests.put(request)

    def _write(self) -> None:
        """Pickle requests into the process's stdin, here rather than in training's
        thread, which would wait whenever the process is slow to read (its reading
        thread needs the GIL that its measuring thread holds); closes stdin at the end."""
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            while (request := self._requests.get()) is not None:
                pickle.dump(request, stdin, protocol=pickle.HIGHEST_PROTOCOL)
                stdin.flush()
        except (OSError, ValueError):  # the process has ended: its Futures say why
            pass
        with contextlib.suppress(OSError):
            stdin.close()

    def submit(self, *args: Any) -> Future[Measured]:
        future: Future[Measured] = Future()
        with self._lock:
            self._futures.append(future)
        self._send(args)
        return future

    def _read(self) -> None:
        out = self._proc.stdout
        assert out is not None
        broken: Exception | None = None  # a reply that did not read back
        while True:
            try:
                ok, value = pickle.load(out)
            except (EOFError, OSError):
                break
            except Exception as exc:  # the stream is lost: end it all
                self._proc.kill()
                broken = exc
                break
            with self._lock:
                future = self._futures.popleft()
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        code = self._proc.wait()
        with self._lock:
            left, self._futures = list(self._futures), deque()
        for future in left:
            future.set_exception(broken or RuntimeError(
                f"the measurement process ended before measuring (exit code {code})"))

    def close(self, kill: bool = False) -> None:
        """End the process: at once with `kill` (measurements in progress are dropped),
        else once it has answered everything submitted. Returns when it has exited."""
        if kill:
            self._proc.kill()
        self._requests.put(None)  # the writer closes stdin once it has sent the rest
        self._writer.join()
        self._proc.wait()
        self._reader.join()
        if self._proc.stdout is not None:
            self._proc.stdout.close()


PIPE_BYTES = 1 << 20  # a snapshot's request (1-2 MB) in one or two writes, not 64 KB ones


def _widen(pipe: Any) -> None:
    """Grow a pipe's buffer to PIPE_BYTES where the system allows (Linux): fewer, larger
    writes and reads per request and reply."""
    setsize = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if pipe is not None and setsize is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(pipe.fileno(), setsize, PIPE_BYTES)


def serve() -> None:
    """The measurement process's main: build the run's Measurer from the first request on
    stdin, then answer each later one with (True, measure_with's result) or (False, the
    exception) on stdout, in order, until stdin closes. Requests are read by a thread, so
    training's writes never wait for a measurement to finish."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is training's to handle
    threads.lower_priority()  # measurements may lag training by a snapshot
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print() goes to stderr, not into the replies
    requests: queue.SimpleQueue[tuple | None] = queue.SimpleQueue()

    def read() -> None:
        try:
            while True:
                requests.put(pickle.load(sys.stdin.buffer))
        except (EOFError, OSError, pickle.UnpicklingError):
            requests.put(None)

    threading.Thread(target=read, name="gsh-measure-requests", daemon=True).start()
    setup = requests.get()
    if setup is None:
        return
    measurer: Measurer | None = None
    failed: Exception | None = None
    from threadpoolctl import threadpool_limits

    try:
        with threadpool_limits(limits=1, user_api="blas"):
            measurer = Measurer(setup[0], setup[1], setup[2], None, setup[3], setup[4])
    except Exception as exc:  # each measurement raises it
        failed = _noted(exc)
    while (request := requests.get()) is not None:
        try:
            if failed is not None:
                raise failed
            assert measurer is not None
            reply: tuple = (True, measure_with(measurer, *request))
        except Exception as exc:
            reply = (False, exc if exc is failed else _noted(exc))
        try:
            data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
            if not reply[0]:
                pickle.loads(data)  # an exception may pickle but not read back
        except Exception:  # then its text instead
            data = pickle.dumps((False, RuntimeError(
                "".join(traceback.format_exception(reply[1])))))
        replies.write(data)
        replies.flush()


def _noted(exc: Exception) -> Exception:
    """`exc` with where it was raised in the measurement process as a note (the parent
    re-raises it with its own traceback)."""
    exc.add_note("in the measurement process:\n" + "".join(
        traceback.format_tb(exc.__traceback__)).rstrip())
    return exc
