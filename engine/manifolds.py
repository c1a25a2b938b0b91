"""Manifold generators x = f(gamma, theta): gamma picks the class, theta moves along it.

Each family is deterministic from its seed: the map f, the seen and unseen classes'
gammas, and every batch of thetas drawn from a given torch.Generator.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .config import IMAGE_THETA, DataConfig


class ManifoldFamily:
    """Base: holds the gammas of all classes (seen first, then unseen) and maps to x."""

    theta_names: list[str]
    image_shape: tuple[int, int] | None = None

    def __init__(self, cfg: DataConfig, seed: int):
        self.cfg = cfg
        g = torch.Generator().manual_seed(seed)
        n = cfg.seen_classes + cfg.unseen_classes
        self.gamma = torch.randn(n, cfg.gamma_dim, generator=g)
        self._build(g)
        self.theta_names = [f"theta[{i}]" for i in range(cfg.theta_dim)]

    @property
    def x_dim(self) -> int:
        return self.cfg.x_dim

    def class_is_seen(self, labels: np.ndarray) -> np.ndarray:
        return np.asarray(labels) < self.cfg.seen_classes

    def _build(self, g: torch.Generator) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def f(self, gamma: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def sample_theta(self, n: int, g: torch.Generator) -> torch.Tensor:
        return self.cfg.theta_scale * torch.randn(n, self.cfg.theta_dim, generator=g)

    def sample(
        self, labels: torch.Tensor, g: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x and theta for the given class labels, fresh theta (and noise) per sample."""
        theta = self.sample_theta(len(labels), g)
        x = self.f(self.gamma[labels], theta)
        if self.cfg.noise > 0:
            x = x + self.cfg.noise * torch.randn(x.shape, generator=g)
        return x, theta

    def to(self, device: torch.device) -> ManifoldFamily:
        """Move the map's tensors to a device (gammas stay on CPU for indexing)."""
        return self


class RandomReLU(ManifoldFamily):
    """x = W2 relu(W1 [gamma; theta] + b1): a fixed random one-hidden-layer ReLU network.

    theta bends each class into a curved manifold entangled with gamma."""

    hidden = 128

    def _build(self, g: torch.Generator) -> None:
        c = self.cfg
        d_in = c.gamma_dim + c.theta_dim
        self.w1 = torch.randn(d_in, self.hidden, generator=g) / math.sqrt(d_in)
        self.b1 = 0.1 * torch.randn(self.hidden, generator=g)
        self.w2 = torch.randn(self.hidden, c.input_dim, generator=g) * math.sqrt(2 / self.hidden)

    def f(self, gamma: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        z = torch.cat([gamma, theta], dim=1)
        h = torch.relu(z @ self.w1 + self.b1)
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
        n, s = len(gamma), self.cfg.image_size
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
        img = self.canonical(gamma).unsqueeze(1)
        grid = F.affine_grid(affine, [n, 1, s, s], align_corners=False)
        out = F.grid_sample(img, grid, align_corners=False, padding_mode="zeros")
        return (out.squeeze(1) * bright.view(n, 1, 1)).reshape(n, s * s)


FAMILY_CLASSES = {"random_relu": RandomReLU, "linear": Linear, "image_pose": ImagePose}


def make_family(cfg: DataConfig, seed: int) -> ManifoldFamily:
    """The generator family named by cfg.family, fully determined by seed."""
    return FAMILY_CLASSES[cfg.family](cfg, seed)
