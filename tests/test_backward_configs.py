"""Every shipped config of every backward kernel gives torch's gradient under the interpreter (issue 5: a config
that only compiles is not enough; Inductor shipped a conv config that was silently wrong).

Each problem is sized by the config's tiles (one and a half tiles along every extent), so every tile ends
partially and small tiles do not mean many programs.
"""

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_close_to_reference, tiered, tile_volume

from triton_convt.functional.conv_transpose import check_call
from triton_convt.launch import configs
from triton_convt.launch import conv_transpose_bwd as backward

DTYPE = {"16bit": torch.float16, "fp32": torch.float32, "fp64": torch.float64}
KERNELS = ["conv_transpose2d_bwd_input", "conv_transpose2d_bwd_input_nchw", "conv_transpose2d_bwd_weight",
           "channel_sum", "activation_bwd"]  # fmt: skip


def _shipped():
    """(kernel, dtype, config) for every distinct tile config of every file that lists a backward kernel (configs
    that differ only in warps or stages are one case: the interpreter ignores both)."""
    seen = {}
    for target in configs.available_targets():
        data = configs.load(target)
        for kernel in KERNELS:
            for cls, candidates in data.get(kernel, {}).items():
                for config in candidates:
                    tiles = {k: v for k, v in config.items() if k.startswith("BLOCK")}
                    seen.setdefault(repr((kernel, cls, tiles)), (kernel, DTYPE[cls], config))
    return list(seen.values())


def _half_again(block: int) -> int:
    return block * 3 // 2 + 1


def _problem(dtype, c_in_g, c_out_g, pixels):
    """Two groups, k3 s2 p1 op1; ``pixels`` input pixels (rounded up to whole rows of 3)."""
    x = torch.randn(1, 2 * c_in_g, 3, -(-pixels // 3), dtype=dtype)
    w = torch.randn(2 * c_in_g, c_out_g, 3, 3, dtype=dtype)
    params = check_call(x, w, None, 2, 1, 1, 2, 1)
    return x, w, params


def _reference(x, w, dz):
    """dx and dw of conv_transpose2d(x, w) for the output gradient dz, in fp64."""
    xd, wd = x.double().requires_grad_(), w.double().requires_grad_()
    y = F.conv_transpose2d(xd, wd, stride=2, padding=1, output_padding=1, groups=2)
    return torch.autograd.grad(y, (xd, wd), dz.double())


# Quick tier: each kernel's smallest tile; -m full: every other one.
@pytest.mark.parametrize("kernel, dtype, config", tiered(_shipped(), key=lambda k, d, c: k,
                                                         rank=lambda k, d, c: tile_volume(c)),
                         ids=lambda v: str(v).replace(" ", ""))  # fmt: skip
def test_every_shipped_backward_config_is_correct(kernel, dtype, config, count_launches):
    if kernel.startswith("conv_transpose2d_bwd_input"):  # M input pixels, N input channels, K output channels
        # The NCHW key's configs run in NCHW, on the window variant, whose tiles hold BLOCK_N / 4 channels of a k3
        # layer (its 3 taps rounded up); the other key's in channels_last, on the phase path.
        nchw = kernel.endswith("_nchw")
        x, w, params = _problem(dtype, _half_again(config["BLOCK_N"] // (4 if nchw else 1)),
                                _half_again(config["BLOCK_K"]), _half_again(config["BLOCK_M"]))  # fmt: skip
        dz = torch.randn(1, 2 * w.shape[1], *params.output_hw(x.shape[2:]), dtype=dtype)
        if not nchw:
            x, dz = (t.contiguous(memory_format=torch.channels_last) for t in (x, dz))
        dx = torch.empty_like(x)
        plan = backward.input_grad_plan(dz, w, dx, params, config=config)
        assert plan.args["W_WINDOW"] == nchw
        plan.launch()
        assert_close_to_reference(dx, _reference(x, w, dz)[0])
    elif kernel == "conv_transpose2d_bwd_weight":  # M input channels, N output channels, K input pixels
        x, w, params = _problem(dtype, _half_again(config["BLOCK_M"]), _half_again(config["BLOCK_N"]),
                                _half_again(config["BLOCK_K"]))  # fmt: skip
        dz = torch.randn(1, 2 * w.shape[1], *params.output_hw(x.shape[2:]), dtype=dtype)
        plan, partial = backward.weight_grad_plan(x, dz, w, params, config=config)
        plan.launch()
        assert_close_to_reference(partial.sum(0).to(dtype), _reference(x, w, dz)[1])
    elif kernel == "channel_sum":  # P output pixels, C channels
        dz = torch.randn(2, _half_again(config["BLOCK_C"]), 3, -(-_half_again(config["BLOCK_P"]) // 6), dtype=dtype)
        plan, partial = backward.bias_grad_plan(dz, config=config)
        plan.launch()
        assert_close_to_reference(partial.sum(0).to(dtype), dz.double().sum((0, 2, 3)))
    else:  # activation_bwd: BLOCK elements; silu's derivative from the pre-activation
        z = torch.randn(_half_again(config["BLOCK"]), dtype=dtype)
        dy = torch.randn_like(z)
        dz = torch.empty_like(z)
        backward.activation_grad_plan(dy, z, dz, "silu", 0.01, config=config).launch()
        zd = z.double().requires_grad_()
        (expected,) = torch.autograd.grad(F.silu(zd), zd, dy.double())
        assert_close_to_reference(dz, expected)
    assert count_launches() == 1
