"""The network: an MLP whose embedding (the layer before the class head) is hashed."""

from __future__ import annotations

import torch
from torch import nn

from .config import ConfigError, ModelConfig

ACT = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


def pick_device(name: str = "auto") -> torch.device:
    """cuda, then mps, then cpu for "auto"; an explicit device that is missing is an error."""
    has_mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if has_mps:
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("model.device", "cuda is not available here (use auto or cpu)")
    if name == "mps" and not has_mps:
        raise ConfigError("model.device", "mps is not available here (use auto or cpu)")
    return torch.device(name)


class HashNet(nn.Module):
    """x -> [Linear, act] x depth -> Linear (the embedding) -> Linear head over seen classes."""

    def __init__(self, x_dim: int, n_classes: int, cfg: ModelConfig):
        super().__init__()
        layers: list[nn.Module] = []
        d = x_dim
        for _ in range(cfg.depth):
            layers += [nn.Linear(d, cfg.width), ACT[cfg.activation]()]
            d = cfg.width
        layers.append(nn.Linear(d, cfg.embed_dim))
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(cfg.embed_dim, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The representation that is hashed."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))
