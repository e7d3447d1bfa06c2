"""Kernel configs, read from ``autotune_configs/`` (data, not code), and the choice of one for a problem.

A config file (``autotune_configs/<target>.json``) holds, per kernel key and dtype class ("16bit", "fp32", "fp64"),
a list of configs in order of preference; top-level entries that are not dicts ("triton", "target", "about",
"tuned_on") describe the file. How a launch gets its config:

* CPU tensors (the interpreter, and the AOT compiles of :mod:`triton_convt.tools.aot`): :func:`choose` takes the first
  config of ``default.json`` whose tiles are not larger than the problem and pad it little (the least padded if
  none does). Exactly one config, deterministically: ``triton.autotune`` cannot benchmark without a GPU.
* CUDA tensors (ROCm's too: ROCm torch calls its devices "cuda"): :func:`config_for` loads the file of the device
  (:func:`target_for`: by capability, or gfx processor on AMD, then name, then ``default``), drops configs whose
  shared memory exceeds the device or whose tiles are far larger than the problem (:func:`prune`), and if more
  than one is left, benchmarks them once with ``triton.autotune`` (:func:`autotune_plans`) per tuning key
  (:func:`tuning_key`: the kernel's structural constexprs, which strides are 1, and the problem sizes bucketed to
  powers of two). The winner is kept in a JSON file in the user cache
  directory (:class:`TuningCache`, never inside the repository), so another process with the same key does not
  tune again.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import torch
import triton

from .. import compat
from .kernel_plan import device_guard

#: Where the files live, as an importable package (the top-level ``autotune_configs/`` directory, installed).
PACKAGE = "triton_convt.autotune_configs"

#: Bytes per element of the operands of each dtype class (the tiles staged in shared memory).
ITEMSIZE = {"16bit": 2, "fp32": 4, "fp64": 8}


@functools.cache
def load(target: str = "default") -> dict:
    """The config file of one target family (``autotune_configs/<target>.json``)."""
    text = resources.files(PACKAGE).joinpath(f"{target}.json").read_text()
    return json.loads(text)


def dumps(data: dict) -> str:
    """A config file's text: one top-level entry per line, one config per line (diffs of a tuning stay small)."""
    out = []
    for key, value in data.items():
        if not isinstance(value, dict):
            out.append(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
            continue
        classes = [
            f"    {json.dumps(cls)}: [\n" + ",\n".join(f"      {json.dumps(c)}" for c in lst) + "\n    ]"
            for cls, lst in value.items()
        ]
        out.append(f"  {json.dumps(key)}: {{\n" + ",\n".join(classes) + "\n  }")
    return "{\n" + ",\n".join(out) + "\n}\n"


def available_targets() -> list[str]:
    """The target names that have a config file, sorted."""
    return sorted(p.name[: -len(".json")] for p in resources.files(PACKAGE).iterdir() if p.name.endswith(".json"))


def source(kernel: str, target: str) -> str:
    """The file ``kernel``'s candidates come from on ``target``: its own, or ``default`` when it does not list the
    kernel (a file need not list every kernel; ``sm80``/``sm90`` list the forward GEMM kernel only)."""
    return target if kernel in load(target) else "default"


def kernel_keys(data: dict) -> list[str]:
    """The kernel keys of a loaded config file (every entry whose value is a dict of dtype classes), in file order.

    Other engineers' kernels add keys; everything that iterates over a file's kernels goes through here.
    """
    return [key for key, value in data.items() if isinstance(value, dict)]


def dtype_class(dtype: torch.dtype) -> str:
    """Configs are kept per dtype class: 16-bit floats share tiles, fp32 and fp64 have their own."""
    if dtype in (torch.float16, torch.bfloat16):
        return "16bit"
    return {torch.float32: "fp32", torch.float64: "fp64"}[dtype]


def _ceil_pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def fitting(candidates: list[dict], sizes: dict[str, int]) -> list[dict]:
    """The candidates whose tiles are not far larger than the problem, in the list's order.

    ``sizes`` maps a tile name (``BLOCK_M`` ...) to the problem extent along it. A tile is too large when it
    exceeds that extent rounded up to a power of two; the smallest tile the list offers along a dimension is never
    too large. The list's last entry (its smallest, though not always the smallest along every dimension: sm80's
    16-bit list has no 64x64x32 tile, whose hot loop is too long) always remains, so the result is never empty.
    """
    limits = {name: max(_ceil_pow2(extent), min(c[name] for c in candidates)) for name, extent in sizes.items()}
    fit = [c for c in candidates if all(c[name] <= limit for name, limit in limits.items())]
    return fit if candidates[-1] in fit else fit + [candidates[-1]]


#: How much tile padding (issued over needed tile work, :func:`padding`) the untuned choice accepts to keep the
#: file's preferred, larger tile. Issue 5's bound on issued over useful MACs.
PADDING_SLACK = 1.10


def padding(config: dict, sizes: dict[str, int]) -> float:
    """How much work a config's tiles issue over the problem's: the product over ``sizes`` of each extent rounded
    up to a multiple of its tile, over the extent (1.0: every tile is full)."""
    out = 1.0
    for name, extent in sizes.items():
        out *= -(-extent // config[name]) * config[name] / extent
    return out


def preferred(candidates: list[dict], sizes: dict[str, int]) -> dict:
    """The first of ``candidates`` (in order of preference) that pads the problem by at most
    :data:`PADDING_SLACK`; if none does, the least padded (the first of those). DCGAN's 100 latent channels, for
    instance, take a K tile of 16 (112 issued) over the preferred 32 (128 issued)."""
    tight = [c for c in candidates if padding(c, sizes) <= PADDING_SLACK]
    return dict(tight[0] if tight else min(candidates, key=lambda c: padding(c, sizes)))


def usable(target: str, kernel: str, dtype_cls: str) -> list[dict]:
    """The configs ``autotune_configs/<target>.json`` lists for ``kernel`` and ``dtype_cls``, in order, less those the
    installed Triton cannot compile (:func:`triton_convt.compat.compiles`: before triton 3.8, no ``tl.dot`` takes a
    K step below 16, so the fp64 tiles with a K step of 8 drop out). Every choice among a file's configs (launcher,
    tuner, static profile) starts here."""
    return [c for c in load(target)[kernel][dtype_cls] if compat.compiles(c, dtype_cls)]


def choose(kernel: str, dtype: torch.dtype, sizes: dict[str, int], target: str = "default") -> dict:
    """The config a launch takes without tuning: :func:`preferred` among the file's :func:`usable` configs whose
    tiles are not larger than the problem (:func:`fitting`)."""
    candidates = fitting(usable(target, kernel, dtype_class(dtype)), sizes)
    if not candidates:
        raise LookupError(f"no {kernel} config in autotune_configs/{target}.json fits {sizes}")
    return preferred(candidates, sizes)


def shared_memory_estimate(config: dict, dtype_cls: str) -> int:
    """Bytes of shared memory a config needs at most: ``num_stages`` copies of the A ``[BLOCK_M, BLOCK_K]`` and
    B ``[BLOCK_K, BLOCK_N]`` tiles of a ``tl.dot`` kernel, or the accumulator ``[BLOCK_M, BLOCK_N]`` (fp32, fp64 for
    fp64) if larger: the NCHW window variant's epilogue may stage it to gather its taps (configs without ``BLOCK_K``
    stage no operand tiles).

    Triton pipelines at most ``num_stages`` buffers and reuses them for the epilogue's layout conversion and
    gathers, so the compiled kernel needs no more than this; the static profile checks that bound on every shipped
    config.
    """
    if "BLOCK_K" not in config:
        return 0
    tile = config["BLOCK_M"] * config["BLOCK_K"] + config["BLOCK_K"] * config["BLOCK_N"]
    accumulator = config["BLOCK_M"] * config["BLOCK_N"] * (8 if dtype_cls == "fp64" else 4)
    return max(config["num_stages"] * tile * ITEMSIZE[dtype_cls], accumulator)


def prune(candidates: list[dict], dtype_cls: str, sizes: dict[str, int], shared_limit: int) -> list[dict]:
    """The candidates worth benchmarking on a device with ``shared_limit`` bytes of shared memory per block:
    those that fit the problem (:func:`fitting`) and the device. Never empty: if nothing fits the device, the
    fitting config that needs the least shared memory is kept, so that the launch reports the real error."""
    fit = fitting(candidates, sizes)
    small = [c for c in fit if shared_memory_estimate(c, dtype_cls) <= shared_limit]
    return small or [min(fit, key=lambda c: shared_memory_estimate(c, dtype_cls))]


def slug(name: str) -> str:
    """A device name as a file-name stem: ``"NVIDIA H100 80GB HBM3"`` -> ``"nvidia-h100-80gb-hbm3"``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def own_target(arch: tuple[int, int] | str) -> str:
    """The name a device's own config file has: ``sm<major><minor>`` for an NVIDIA compute capability, the processor
    for an AMD gfx name (ROCm's ``gcnArchName``: ``"gfx942:sramecc+:xnack-"`` -> ``gfx942``)."""
    if isinstance(arch, str):
        return arch.split(":")[0].strip().lower()
    return f"sm{arch[0]}{arch[1]}"


def target_for(arch: tuple[int, int] | str, name: str, available: list[str]) -> str:
    """The config file for a device: its own (:func:`own_target`: ``sm90`` for capability (9, 0), ``gfx942`` for an
    MI300) if there is one, else a file named after the device (:func:`slug`), else ``default``.

    ``arch`` is the capability of an NVIDIA GPU and the gfx name of an AMD one, never an AMD device's capability,
    which only imitates CUDA's (an MI300 reports 9.4, an MI250 9.0) and would select a file tuned for an NVIDIA GPU.
    """
    for target in (own_target(arch), slug(name)):
        if target in available:
            return target
    return "default"


def bucket(sizes: dict[str, int]) -> dict[str, int]:
    """Problem extents rounded up to powers of two: problems in one bucket share a tuning result."""
    return {name: _ceil_pow2(extent) for name, extent in sizes.items()}


def tuning_key(kernel: str, sizes: dict[str, int], plan: Any) -> str:
    """The key one tuning result is stored under: the kernel key, the bucketed sizes, and what makes a distinct
    compiled kernel apart from the config: the plan's constexprs other than the config's own (dtype, stride,
    kernel size, epilogue, ...), the dtype of its tensors, and which of its strides are 1 (the memory layout, as
    the JIT specialises it).

    ``plan`` is a :class:`.kernel_plan.KernelPlan` built with any of the candidate configs.
    """
    # The annotation names the constexprs both of a JITFunction and of the interpreter's InterpretedFunction.
    parameters = inspect.signature(plan.kernel.fn).parameters
    structural = []
    for name, value in plan.args.items():
        if "constexpr" in str(parameters[name].annotation) and not name.startswith("BLOCK_"):
            structural.append(f"{name}={value}")
        elif isinstance(value, torch.Tensor):
            structural.append(f"{name}:{str(value.dtype).split('.')[1]}")
        elif name.startswith("stride") and value == 1:
            structural.append(f"{name}=1")
    sized = ",".join(f"{name}<={extent}" for name, extent in sorted(bucket(sizes).items()))
    return f"{kernel}|{sized}|{','.join(structural)}"


def cache_dir() -> str:
    """Where tuning results persist: ``$TRITON_CONVT_CACHE_DIR``, else ``$XDG_CACHE_HOME/triton_convt``, else
    ``~/.cache/triton_convt``."""
    if os.environ.get("TRITON_CONVT_CACHE_DIR"):
        return os.environ["TRITON_CONVT_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "triton_convt")


@dataclass
class TuningCache:
    """Tuning winners of one device and config file, as ``{tuning key: config}`` in one JSON file.

    The file name carries the device, the config file and the Triton version, so a result is never reused on
    another device, with another candidate list's file, or by another compiler.
    """

    path: str

    @classmethod
    def for_device(cls, device_name: str, target: str, directory: str | None = None) -> TuningCache:
        name = f"{slug(device_name)}-{target}-triton{triton.__version__}.json"
        return cls(os.path.join(directory or cache_dir(), name))

    def read(self) -> dict[str, dict]:
        """All stored winners (empty when the file does not exist or is unreadable)."""
        try:
            with open(self.path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str, candidates: list[dict]) -> dict | None:
        """The stored winner for ``key`` if it is still one of ``candidates`` (a config file edited since the
        tuning may have dropped it)."""
        hit = self.read().get(key)
        return dict(hit) if hit in candidates else None

    def put(self, key: str, config: dict) -> None:
        """Store a winner. The file is replaced atomically, so a concurrent reader sees the old or new content."""
        data = self.read()
        data[key] = config
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(self.path), suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)


def split_plans(plans: list[Any]) -> tuple[dict, list[dict], dict[tuple, tuple]]:
    """What ``triton.autotune`` needs to launch one of ``plans`` (the same kernel and tensors, one per config).

    Returns ``(fixed, per_config, grids)``: the arguments equal in every plan; for each plan, the arguments that
    differ (tile sizes, and what the launcher derives from them, such as tile counts); and each plan's grid keyed
    by those differing values in sorted-name order, so that a grid function can find it from the meta-parameters.
    """
    first = plans[0].args

    def same(a, b) -> bool:  # tensors: the same memory seen the same way (a plan may hold its own view of it)
        if torch.is_tensor(a) or torch.is_tensor(b):
            return a is b or (torch.is_tensor(a) and torch.is_tensor(b) and a.data_ptr() == b.data_ptr()
                              and a.shape == b.shape and a.stride() == b.stride() and a.dtype == b.dtype)  # fmt: skip
        return a == b

    def differs(name: str) -> bool:
        return not all(same(p.args[name], first[name]) for p in plans)

    varying = sorted(name for name in first if differs(name))
    per_config = [{name: p.args[name] for name in varying} for p in plans]
    fixed = {name: value for name, value in first.items() if name not in varying}
    grids = {tuple(p.args[name] for name in varying): p.grid for p in plans}
    return fixed, per_config, grids


def autotune_plans(plans: list[Any], autotune: Callable = triton.autotune) -> int:
    """Benchmark ``plans`` with ``triton.autotune`` on their own arguments and return the index of the fastest.

    Every plan computes the same output completely (no plan reads what it writes), so the benchmark runs need no
    reset. ``autotune`` is a parameter so that a test can check the wiring without a GPU.
    """
    fixed, per_config, grids = split_plans(plans)
    names = sorted(per_config[0])
    triton_configs = [
        triton.Config(kwargs, num_warps=p.num_warps, num_stages=p.num_stages) for kwargs, p in zip(per_config, plans)
    ]
    tuner = autotune(configs=triton_configs, key=[])(plans[0].kernel)
    with device_guard(plans[0].device):  # benchmark on the tensors' device, as the launch will run
        tuner[lambda meta: grids[tuple(meta[name] for name in names)]](**fixed)
    return next(i for i, c in enumerate(triton_configs) if c is tuner.best_config)


def device_arch(properties: Any, hip: str | None) -> tuple[int, int] | str:
    """The arch :func:`target_for` takes, from ``torch.cuda.get_device_properties``: the compute capability
    ``(major, minor)`` under CUDA torch, the gfx name (``gcnArchName``) under ROCm torch (``hip``:
    ``torch.version.hip``), whose capability only imitates CUDA's."""
    if hip:
        return properties.gcnArchName
    return (properties.major, properties.minor)


def device_limits(device: torch.device) -> tuple[tuple[int, int] | str, str, int]:
    """``(arch, name, shared memory per block)`` of a GPU, as torch and Triton see it (:func:`device_arch`)."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    shared = triton.runtime.driver.active.utils.get_device_properties(index)["max_shared_mem"]
    properties = torch.cuda.get_device_properties(index)
    return device_arch(properties, torch.version.hip), properties.name, shared


def config_for(
    kernel: str,
    dtype: torch.dtype,
    device: torch.device,
    sizes: dict[str, int],
    plan_for: Callable[[dict], Any],
    *,
    limits: tuple[tuple[int, int] | str, str, int] | None = None,
    tune: Callable[[list[Any]], int] = autotune_plans,
    cache_directory: str | None = None,
) -> dict:
    """The config a launch of ``kernel`` on ``device`` uses (see the module docstring).

    ``plan_for(config)`` builds the launch with a config; it is called only on a GPU, to tune and to form the
    tuning key. ``limits`` (else :func:`device_limits`), ``tune`` and ``cache_directory`` exist for tests, which
    stand in for the GPU.
    """
    if device.type != "cuda" or compat.interpreting():
        return choose(kernel, dtype, sizes)
    arch, name, shared_limit = limits or device_limits(device)
    target = source(kernel, target_for(arch, name, available_targets()))
    cls = dtype_class(dtype)
    candidates = prune(usable(target, kernel, cls), cls, sizes, shared_limit)
    if len(candidates) == 1:
        return dict(candidates[0])
    plans = [plan_for(c) for c in candidates]
    key = tuning_key(kernel, sizes, plans[0])
    cache = TuningCache.for_device(name, target, cache_directory)
    winner = cache.get(key, candidates)
    if winner is None:
        winner = dict(candidates[tune(plans)])
        cache.put(key, winner)
    return winner
