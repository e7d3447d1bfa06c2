"""Kernel configs, read from ``autotune_configs/`` (data, not code), and the choice of one for a problem."""

from __future__ import annotations

import functools
import json
from importlib import resources

import torch


@functools.cache
def load(target: str = "default") -> dict:
    """The config file of one target family (``autotune_configs/<target>.json``)."""
    text = resources.files("triton_convt.autotune_configs").joinpath(f"{target}.json").read_text()
    return json.loads(text)


def dtype_class(dtype: torch.dtype) -> str:
    """Configs are kept per dtype class: 16-bit floats share tiles, fp32 and fp64 have their own."""
    if dtype in (torch.float16, torch.bfloat16):
        return "16bit"
    return {torch.float32: "fp32", torch.float64: "fp64"}[dtype]


def _ceil_pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def choose(kernel: str, dtype: torch.dtype, sizes: dict[str, int], target: str = "default") -> dict:
    """The first config of the file's list whose tiles are not larger than the problem.

    ``sizes`` maps a tile name (``BLOCK_M`` ...) to the problem extent along it. A tile is too large when it
    exceeds that extent rounded up to a power of two; the smallest tile the list offers along a dimension is never
    too large, so the list's last (smallest) entry always remains.
    """
    candidates = load(target)[kernel][dtype_class(dtype)]
    limits = {
        name: max(_ceil_pow2(extent), min(c[name] for c in candidates)) for name, extent in sizes.items()
    }
    for config in candidates:
        if all(config[name] <= limit for name, limit in limits.items()):
            return dict(config)
    raise LookupError(f"no {kernel} config in autotune_configs/{target}.json fits {sizes}")
