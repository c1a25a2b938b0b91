"""Manifold generators x = f(gamma, theta): gamma picks the class, theta moves along it.

Each family is deterministic from its seed: the map f, the seen and unseen classes'
gammas, and every batch of thetas drawn from a given torch.Generator. Each of those
roles draws from its own stream (engine.seeds.FAMILY_ROLES), class by class, so a
family with more seen classes has the same map and the same unseen classes. digits_pose
draws its classes from scikit-learn's bundled handwritten digits (nothing is downloaded).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from .config import IMAGE_THETA, DataConfig, digit_list
from .digits import check_digits, unseen_quota
from .seeds import role_seed


def class_gammas(cfg: DataConfig, seed: int) -> torch.Tensor:
    """Every class's gamma, seen classes first, then unseen, then validation classes:
    seen class i's is row i of the "seen_gamma" stream, unseen class j's row j of the
    "unseen_gamma" stream, validation class k's row k of the "validation_gamma" stream
    (numpy's draws fill row by row, so a class's gamma does not depend on how many there
    are)."""
    return torch.from_numpy(np.concatenate([
        np.random.default_rng(role_seed(seed, role)).standard_normal((n, cfg.gamma_dim))
        for role, n in (("seen_gamma", cfg.seen_classes), ("unseen_gamma", cfg.unseen_classes),
                        ("validation_gamma", cfg.validation_classes))
    ]).astype(np.float32))


class ManifoldFamily:
    """Base: holds the gammas of all classes (seen first, then unseen, then validation)
    and maps to x."""

    theta_names: list[str]
    image_shape: tuple[int, int] | None = None

    def __init__(self, cfg: DataConfig, seed: int):
        self.cfg = cfg
        self.gamma = class_gammas(cfg, seed)
        self._build(torch.Generator().manual_seed(role_seed(seed, "generator")))
        self.theta_names = [f"theta[{i}]" for i in range(cfg.theta_dim)]

    @property
    def x_dim(self) -> int:
        return self.cfg.x_dim

    def _build(self, g: torch.Generator) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def f(self, gamma: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def render(self, labels: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """x for these classes at these poses (noise-free)."""
        return self.f(self.gamma[labels], theta)

    def sample_theta(self, n: int, g: torch.Generator) -> torch.Tensor:
        return self.cfg.theta_scale * torch.randn(n, self.cfg.theta_dim, generator=g)

    def sample(
        self, labels: torch.Tensor, g: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x and theta for the given class labels, fresh theta (and noise) per sample."""
        theta = self.sample_theta(len(labels), g)
        x = self.render(labels, theta)
        if self.cfg.noise > 0:
            x = x + self.cfg.noise * torch.randn(x.shape, generator=g)
        return x, theta

    def to(self, device: torch.device) -> ManifoldFamily:
        """Move the map's tensors to a device (gammas stay on CPU for indexing)."""
        return self


GENERATOR_ACT = {"relu": torch.relu, "gelu": F.gelu, "tanh": torch.tanh}


class RandomReLU(ManifoldFamily):
    """x = W_out act(... act(W1 [gamma; theta] + b1) ...): a fixed random network with
    data.generator_depth hidden layers of data.generator_width units (default: one layer
    of 128 ReLUs). theta bends each class into a curved manifold entangled with gamma."""

    def _build(self, g: torch.Generator) -> None:
        c = self.cfg
        d_in, w = c.gamma_dim + c.theta_dim, c.generator_width
        self.act = GENERATOR_ACT[c.generator_activation]
        gain = 1.0 if c.generator_activation == "tanh" else 2.0  # keeps the scale per layer
        self.w1 = torch.randn(d_in, w, generator=g) / math.sqrt(d_in)
        self.b1 = 0.1 * torch.randn(w, generator=g)
        self.deeper = []  # drawn after b1, so depth 1 keeps the original draws
        for _ in range(c.generator_depth - 1):
            wk = torch.randn(w, w, generator=g) * math.sqrt(gain / w)
            self.deeper.append((wk, 0.1 * torch.randn(w, generator=g)))
        self.w2 = torch.randn(w, c.input_dim, generator=g) * math.sqrt(gain / w)

    def f(self, gamma: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        z = torch.cat([gamma, theta], dim=1)
        h = self.act(z @ self.w1 + self.b1)
        for w, b in self.deeper:
            h = self.act(h @ w + b)
        return h @ self.w2


class Linear(ManifoldFamily):
    """x = A gamma + B theta: each class is an affine subspace."""

    def _build(self, g: torch.Generator) -> None:
        c = self.cfg
        self.a = torch.randn(c.gamma_dim, c.input_dim, generator=g) / math.sqrt(c.gamma_dim)
        self.b = torch.randn(c.theta_dim, c.input_dim, generator=g) / math.sqrt(c.theta_dim)

    def f(self, gamma: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        return gamma @ self.a + theta @ self.b


class ImagePose(ManifoldFamily):
    """gamma draws a canonical image of smooth blobs; theta is its pose.

    theta components, in order: rotation, shift_x, shift_y, scale, brightness (the
    first theta_dim of them vary; the rest stay at identity). theta_scale=1 means
    about +-30 degrees, +-3 px, +-20% scale and +-30% brightness at one sigma.
    """

    blobs = 5

    def _build(self, g: torch.Generator) -> None:
        c = self.cfg
        k = self.blobs
        self.w_pos = torch.randn(c.gamma_dim, 2 * k, generator=g) / math.sqrt(c.gamma_dim)
        self.w_amp = torch.randn(c.gamma_dim, k, generator=g) / math.sqrt(c.gamma_dim)
        self.w_wid = torch.randn(c.gamma_dim, k, generator=g) / math.sqrt(c.gamma_dim)
        s = c.image_size
        lin = torch.linspace(-1, 1, s)
        yy, xx = torch.meshgrid(lin, lin, indexing="ij")
        self.grid = torch.stack([xx, yy], dim=-1).reshape(1, 1, s * s, 2)
        self.image_shape = (s, s)

    def __init__(self, cfg: DataConfig, seed: int):
        super().__init__(cfg, seed)
        self.theta_names = list(IMAGE_THETA[: cfg.theta_dim])

    def canonical(self, gamma: torch.Tensor) -> torch.Tensor:
        """The class's canonical image (theta = identity pose), shape (n, s, s)."""
        k, s = self.blobs, self.cfg.image_size
        pos = 0.6 * torch.tanh(gamma @ self.w_pos).reshape(-1, k, 1, 2)
        amp = 0.4 + torch.sigmoid(2 * (gamma @ self.w_amp)).unsqueeze(-1)
        wid = 0.10 + 0.15 * torch.sigmoid(2 * (gamma @ self.w_wid)).unsqueeze(-1)
        d2 = ((self.grid - pos) ** 2).sum(-1)  # (n, k, s*s)
        img = (amp * torch.exp(-d2 / (2 * wid**2))).sum(1)
        return img.reshape(-1, s, s)

    def f(self, gamma: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        return pose(self.canonical(gamma), theta)


def pose(img: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Images (n, s, s) under poses theta (IMAGE_THETA order, missing ones at identity),
    flattened to (n, s*s); what leaves the frame is lost, what enters it is zero."""
    n, s = img.shape[0], img.shape[-1]
    t = torch.zeros(n, len(IMAGE_THETA))
    t[:, : theta.shape[1]] = theta
    angle = t[:, 0] * (math.pi / 6)
    shift = t[:, 1:3] * (3.0 * 2 / s)  # 3 px in normalised coordinates
    scale = torch.exp(0.2 * t[:, 3])
    bright = 1.0 + 0.3 * t[:, 4]
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    affine = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)],
        dim=1,
    )
    grid = F.affine_grid(affine, [n, 1, s, s], align_corners=False)
    out = F.grid_sample(img.unsqueeze(1), grid, align_corners=False, padding_mode="zeros")
    return (out.squeeze(1) * bright.view(n, 1, 1)).reshape(n, s * s)


@functools.lru_cache(maxsize=1)
def load_digit_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled handwritten digits: 1,797 8x8 images in [0, 1] and labels."""
    from sklearn.datasets import load_digits  # ships inside the package: no download

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


class DigitsPose(ManifoldFamily):
    """Each class is one real handwritten digit (scikit-learn's bundled 8x8 digits),
    upsampled to 20/28 of the frame and zero-padded like MNIST; theta is its pose, as in
    image_pose. Seen classes are images of data.seen_digits, unseen ones images of
    data.unseen_digits (balanced over those digits). Validation classes are other images
    of the seen digits, never trained on: the seen images are the start of one random
    order of the seen digits' images, the validation images its end, so either count
    leaves the other's images alone. gamma is the image's coordinates on the first
    gamma_dim principal components of the seen digits' images (the unseen classes' images
    excluded)."""

    def __init__(self, cfg: DataConfig, seed: int):
        check_digits(cfg)
        self.cfg = cfg
        images, label = load_digit_images()
        rng = np.random.default_rng(role_seed(seed, "unseen_images"))
        unseen = digit_list("data.unseen_digits", cfg.unseen_digits)
        picks = [
            rng.choice(np.flatnonzero(label == d), size=q, replace=False)
            for d, q in zip(unseen, unseen_quota(unseen, cfg.unseen_classes), strict=True)
        ]
        # round-robin over the unseen digits, so any prefix of them is balanced
        unseen_rows = np.array([p[i] for i in range(len(picks[0])) for p in picks if i < len(p)])
        pool = np.flatnonzero(np.isin(label, digit_list("data.seen_digits", cfg.seen_digits)))
        pool = np.setdiff1d(pool, unseen_rows)
        order = np.random.default_rng(role_seed(seed, "seen_images")).permutation(pool)
        seen_rows = order[: cfg.seen_classes]
        validation_rows = order[::-1][: cfg.validation_classes]  # disjoint (check_digits)
        # class -> image in load_digits
        self.rows = np.concatenate([seen_rows, unseen_rows, validation_rows])
        self.digit = label[self.rows]  # class -> its digit 0-9
        flat = images.reshape(len(images), -1).astype(np.float64)
        mean = flat[pool].mean(0)  # principal components of the seen digits only
        _, _, vt = np.linalg.svd(flat[pool] - mean, full_matrices=False)
        k = min(cfg.gamma_dim, vt.shape[0])
        self.gamma = torch.from_numpy(((flat[self.rows] - mean) @ vt[:k].T).astype(np.float32))
        s = cfg.image_size
        inner = max(2, round(s * 20 / 28))
        small = torch.from_numpy(images[self.rows]).unsqueeze(1)
        up = F.interpolate(small, size=(inner, inner), mode="bilinear", align_corners=False)
        lo = (s - inner) // 2
        self.images = F.pad(up.squeeze(1).clamp(min=0), (lo, s - inner - lo, lo, s - inner - lo))
        self.image_shape = (s, s)
        self.theta_names = list(IMAGE_THETA[: cfg.theta_dim])

    def render(self, labels: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        return pose(self.images[labels], theta)


# The generator of each family of engine.config.FAMILY_LIST (a test keeps them equal).
FAMILY_CLASSES = {
    "random_relu": RandomReLU, "linear": Linear, "image_pose": ImagePose,
    "digits_pose": DigitsPose,
}


def make_family(cfg: DataConfig, seed: int) -> ManifoldFamily:
    """The generator family named by cfg.family, fully determined by seed."""
    return FAMILY_CLASSES[cfg.family](cfg, seed)
