"""A short demo: run the Triton kernel on a few decoder layers (triton_convt's ``ConvTranspose2d``, one launch per
call) and check each against torch.

``triton-convt-demo``. On a machine without a GPU the kernel runs under the Triton interpreter on CPU
tensors (the demo restarts itself with ``TRITON_INTERPRET=1`` when needed); with a GPU it runs compiled on CUDA.
It prints what it checked and the largest error against torch's fp64 result; it times nothing.
"""

from __future__ import annotations

import argparse

import torch

from .. import launch
from ..modules import ConvTranspose2d
from .checking import TOLERANCE, reference, relative_error
from .cli import ensure_runnable

#: (name, input shape, out channels, kernel, keyword arguments): small versions of real upsampling layers.
LAYERS = [
    ("torch doc example, 16->33, k3 s2", (2, 16, 6, 6), 33, (3, 3), dict(stride=2)),
    ("torch doc example, k(3,5) s(2,1) p(4,2)", (2, 16, 7, 5), 33, (3, 5), dict(stride=(2, 1), padding=(4, 2))),
    ("DCGAN generator block, k4 s2 p1", (2, 32, 4, 4), 16, (4, 4), dict(stride=2, padding=1)),
    ("SAM mask upscaler, k2 s2", (1, 32, 8, 8), 16, (2, 2), dict(stride=2)),
    ("VAE decoder, k3 s2 p1 op1", (1, 16, 5, 5), 8, (3, 3), dict(stride=2, padding=1, output_padding=1)),
    ("FCN depthwise upsample, k4 s2 groups=4", (1, 4, 6, 6), 4, (4, 4), dict(stride=2, padding=1, groups=4)),
    ("dilated, k3 s2 d2", (1, 8, 5, 5), 8, (3, 3), dict(stride=2, dilation=2)),
]


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="triton-convt-demo", description=__doc__.split("\n\n")[0]).parse_args(argv)
    ensure_runnable("triton_convt.tools.demo")
    on_gpu = torch.cuda.is_available()
    device = "cuda" if on_gpu else "cpu"
    mode = "compiled, CUDA" if on_gpu else "Triton interpreter, CPU"
    print(f"triton_convt demo ({mode}): each layer, one launch, against torch's conv_transpose2d in fp64")
    failures = 0
    torch.manual_seed(0)
    for name, shape, c_out, kernel, kwargs in LAYERS:
        for dtype, layout in ((torch.float32, "NCHW"), (torch.float16, "channels_last")):
            x = torch.randn(shape, device=device, dtype=dtype)
            if layout == "channels_last":
                x = x.to(memory_format=torch.channels_last)
            layer = ConvTranspose2d(shape[1], c_out, kernel, **kwargs, device=device, dtype=dtype)
            w, b = layer.weight.detach(), layer.bias.detach()
            before = launch.launch_count()
            with torch.no_grad():
                y = layer(x)  # one launch: the module keeps its weight in the layout the kernel reads in place
            conv_args = tuple(kwargs.get(k, d) for k, d in (("stride", 1), ("padding", 0), ("output_padding", 0),
                                                              ("groups", 1), ("dilation", 1)))  # fmt: skip
            error = relative_error(y, reference(x, w, b, conv_args, None))
            ok = error <= TOLERANCE[dtype] and launch.launch_count() == before + 1
            failures += not ok
            print(
                f"  {'ok  ' if ok else 'FAIL'} {name:42s} {str(dtype)[6:]:8s} {layout:13s} "
                f"{tuple(x.shape)} -> {tuple(y.shape)}  max rel. error {error:.1e}"
            )
    print(f"{len(LAYERS) * 2 - failures} of {len(LAYERS) * 2} checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
