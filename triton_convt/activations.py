"""The activations the epilogue can fuse: their names, torch's definition of each, and the nn modules they fold.

The kernel's version of each lives in :mod:`triton_convt.kernels.epilogue`; the functions here are torch's own
(used by the CPU fallback and as the tests' reference).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: leaky_relu's slope when none is given (torch's default).
DEFAULT_NEGATIVE_SLOPE = 0.01

#: name -> torch's function of (tensor, negative_slope).
ACTIVATIONS = {
    "relu": lambda x, slope: F.relu(x),
    "leaky_relu": lambda x, slope: F.leaky_relu(x, slope),
    "gelu": lambda x, slope: F.gelu(x),
    "gelu_tanh": lambda x, slope: F.gelu(x, approximate="tanh"),
    "silu": lambda x, slope: F.silu(x),
    "sigmoid": lambda x, slope: torch.sigmoid(x),
    "tanh": lambda x, slope: torch.tanh(x),
}


def check_activation(activation: str | None) -> str:
    """The kernel's name for ``activation`` ("none" for None); ValueError for an unknown one."""
    if activation is None:
        return "none"
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; valid: None, " + ", ".join(repr(a) for a in ACTIVATIONS))
    return activation


def apply_torch(x: torch.Tensor, activation: str | None, negative_slope: float) -> torch.Tensor:
    """torch's result of ``activation`` on ``x`` (``x`` itself for None)."""
    return x if activation is None else ACTIVATIONS[activation](x, negative_slope)


def describe(activation: str | None, negative_slope: float) -> str:
    """The modules' ``extra_repr`` words for a fused activation: ``", activation='leaky_relu', negative_slope=0.2"``,
    empty for None (a module without one prints as torch's own)."""
    if activation is None:
        return ""
    text = f", activation={activation!r}"
    return text + (f", negative_slope={negative_slope}" if activation == "leaky_relu" else "")


#: nn module type -> activation name, for the modules whose result depends on nothing but their input.
_PLAIN_MODULES = {nn.ReLU: "relu", nn.SiLU: "silu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh"}


def from_module(module: nn.Module) -> tuple[str, float] | None:
    """``(activation, negative_slope)`` computing what ``module`` computes, or None if the epilogue cannot."""
    if type(module) in _PLAIN_MODULES:
        return _PLAIN_MODULES[type(module)], DEFAULT_NEGATIVE_SLOPE
    if type(module) is nn.LeakyReLU:
        return "leaky_relu", module.negative_slope
    if type(module) is nn.GELU:
        return ("gelu_tanh" if module.approximate == "tanh" else "gelu"), DEFAULT_NEGATIVE_SLOPE
    return None
