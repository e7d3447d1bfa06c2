"""Everything that differs between the Triton releases the package supports, in one place.

``pyproject.toml`` admits every Triton that torch's CUDA wheels pin from torch 2.11 on: 3.6.0 (torch 2.11), 3.7.1
(2.12, 2.13), 3.8.x (2.14) and 3.9.x (later), so that a GPU user keeps the torch and Triton they have. CI runs the
full suite on 3.9.0 and the AOT compile checks plus an interpreter subset on 3.6.0 (``.ci/oldest-triton``).

Compared on 3.6.0 and 3.9.0 (both run in CI) and in the sources of 3.7.1 and 3.8.0, the differences the package
meets are:

* the smallest ``tl.dot`` reduction a GPU build accepts: 16 for every float dtype up to 3.7, 16/8/4 for 16-bit,
  fp32 and fp64 from 3.8. A config whose ``BLOCK_K`` is below it does not compile, so it is no candidate
  (:func:`compiles`, applied by :func:`triton_convt.launch.configs.usable`); the bound is read from the installed
  NVIDIA backend, not from a table of versions. The interpreter accepts any size, so the filter also keeps the
  interpreter's choice the one a GPU would make.
* the interpreter of 3.6 turns a loop bound into a Python int with ``int()`` of a one-element array, which NumPy
  2.4 refuses (fixed in 3.7): it needs ``numpy<2.4``, and a launch says so (:func:`interpreter_error`) instead of
  failing inside the kernel. GPU runs do not use NumPy.
* not an API difference but one CI sees: 3.6's code for the input-gradient kernel makes ptxas save one or two
  values across the loops (8 to 16 bytes in 7 of its 48 builds, outside every loop); the zero-spill bound of the
  static profile holds on the Triton the config files were written for (their ``"triton"`` entry). 3.7.1, not in
  CI, spills in 4 forward and input-gradient builds, in 2 of them inside the loops (input gradient, fp32, NCHW,
  64x32x16, sm_80); 3.8.0 in none. 3.6's code for the NCHW window variant at 128x256x64 on sm_90 saves 712 bytes
  and reads 1.38x the tutorial's hot loop (3.9's: no spill, 0.92x), so that key's largest sm_90 tiles are
  256x128x64, the same area, which spills on neither (1.00x on 3.6, 0.91x on 3.9).

The same in all of them (and reached through here where the runtime uses them, so that a change lands in this
file): ``tl.dot``'s ``input_precision`` and ``out_dtype`` arguments, ``triton.knobs.runtime.interpret``,
``triton.runtime.interpreter.InterpretedFunction``, and the AOT path of :mod:`triton_convt.tools.aot`
(``native_specialize_impl`` and its ``"D"`` divisibility key, integers equal to 1 made constexprs,
``ASTSource(fn, signature, constexprs, attrs)``, ``GPUTarget``, ``make_backend``). The interpreter's bf16 ``tl.dot``
returns garbage in 3.6 and 3.9 alike (:func:`dot_in_fp32`). A new difference gets its rule here and its check in
CI's job on the oldest Triton.
"""

from __future__ import annotations

import functools
import re

import torch
import triton
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction

__all__ = ["InterpretedFunction", "compiles", "dot_in_fp32", "interpreter_error", "interpreting", "min_dot_k"]

#: The operand dtype whose ``tl.dot`` constraints stand for each dtype class of ``autotune_configs/``.
_CLASS_DTYPE = {"16bit": tl.float16, "fp32": tl.float32, "fp64": tl.float64}


def interpreting() -> bool:
    """Whether Triton runs kernels in its interpreter (``TRITON_INTERPRET=1``), read from Triton's own setting."""
    return bool(triton.knobs.runtime.interpret)


def dot_in_fp32(dtype: torch.dtype, interpreted: bool) -> bool:
    """Whether ``tl.dot`` must take its operands in fp32: bf16 under the interpreter, whose bf16 ``tl.dot`` returns
    garbage (a 16x16x16 product is off by 2e10 on 3.6.0 and on 3.9.0). Compiled kernels keep bf16 operands."""
    return interpreted and dtype == torch.bfloat16


@functools.cache
def min_dot_k(dtype_class: str) -> int:
    """The smallest ``tl.dot`` reduction (K) the installed Triton compiles for a dtype class, from the NVIDIA
    backend's own bound (sm_80 and sm_90 share it); 16, the bound of every release for 16-bit operands, where the
    installed Triton has no NVIDIA backend."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler.compiler import make_backend

    try:
        backend = make_backend(GPUTarget("cuda", 80, 32))
    except RuntimeError:  # "0 compatible backends": a Triton built for other GPUs only
        return 16
    bound = backend.get_codegen_implementation(backend.parse_options({}))["min_dot_size"]
    dtype = _CLASS_DTYPE[dtype_class]
    return bound(dtype, dtype)[2]


def compiles(config: dict, dtype_class: str) -> bool:
    """Whether the installed Triton can compile ``config`` of a ``tl.dot`` kernel for ``dtype_class`` (configs
    without ``BLOCK_K`` have no ``tl.dot``)."""
    return "BLOCK_K" not in config or config["BLOCK_K"] >= min_dot_k(dtype_class)


def _major_minor(version: str) -> tuple[int, int]:
    """``"3.6.0+git1234"`` -> ``(3, 6)``."""
    major, minor = re.findall(r"\d+", version)[:2]
    return int(major), int(minor)


@functools.cache
def interpreter_error() -> str | None:
    """Why the installed Triton's interpreter cannot run the kernels, or None: triton 3.6's interpreter with
    NumPy 2.4 or later (every kernel's runtime loop bound fails there with "only 0-dimensional arrays can be
    converted to Python scalars")."""
    import numpy

    if _major_minor(triton.__version__) < (3, 7) and _major_minor(numpy.__version__) >= (2, 4):
        return (
            f"the Triton interpreter of triton {triton.__version__} cannot run with numpy {numpy.__version__} "
            "(it needs numpy<2.4; triton 3.7 fixed it): pip install 'numpy<2.4'"
        )
    return None
