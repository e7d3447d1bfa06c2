"""The one-input-channel-per-group kernel (depthwise, FCN's upsampling): chosen by the launcher, torch's result."""

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_close_to_reference, tiered, tile_volume

import triton_convt
from triton_convt.functional.conv_transpose import check_call
from triton_convt.launch import configs, conv_transpose_fwd

# name: (input shape, channel multiplier, kernel, keyword arguments)
CASES = {
    "fcn-k4-s2-p1": ((2, 21, 5, 6), 1, (4, 4), dict(stride=2, padding=1)),
    "fcn-k16-s8-p4": ((1, 5, 3, 2), 1, (16, 16), dict(stride=8, padding=4)),
    "multiplier3-k3-s2-op1-d2": ((1, 4, 4, 3), 3, (3, 3), dict(stride=2, output_padding=1, dilation=2)),
    "asymmetric-s3x1-k2x3": ((2, 6, 3, 4), 2, (2, 3), dict(stride=(3, 1), padding=(0, 1))),
}


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("name", list(CASES))
def test_depthwise_kernel_runs_and_matches_torch(name, layout, count_launches, monkeypatch):
    shape, mult, kernel, kwargs = CASES[name]
    chosen = []
    monkeypatch.setattr(
        conv_transpose_fwd, "depthwise_plan", lambda *a, **k: chosen.append(1) or _depthwise_plan(*a, **k)
    )
    x = torch.randn(shape)
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    w, b = torch.randn(shape[1], mult, *kernel), torch.randn(shape[1] * mult)
    y = triton_convt.conv_transpose2d(x, w, b, groups=shape[1], **kwargs, activation="relu")
    assert chosen == [1] and count_launches() == 1
    ref = F.relu(F.conv_transpose2d(x.double(), w.double(), b.double(), groups=shape[1], **kwargs))
    assert_close_to_reference(y, ref)
    assert y.stride() == F.conv_transpose2d(x, w, b, groups=shape[1], **kwargs).stride()


_depthwise_plan = conv_transpose_fwd.depthwise_plan


def _shipped():
    dtypes = {"16bit": (torch.float16, torch.bfloat16), "fp32": (torch.float32,), "fp64": (torch.float64,)}
    data = configs.load("default")["conv_transpose2d_fwd_depthwise"]
    return [(d, c) for cls, cands in data.items() for c in cands for d in dtypes[cls]]


# Quick tier: the smallest block of each dtype; -m full: every other one.
@pytest.mark.parametrize("dtype, config", tiered(_shipped(), key=lambda d, c: d, rank=lambda d, c: tile_volume(c)),
                         ids=lambda v: str(v).replace(" ", ""))  # fmt: skip
def test_every_shipped_depthwise_config_is_correct(dtype, config, count_launches):
    # Each phase has 2 x 9 x 7 rows of 40 channels (multiplier 2): 5040 elements, so blocks of every shipped
    # size end partially.
    x = torch.randn(2, 20, 9, 7, dtype=dtype)
    w, b = torch.randn(20, 2, 4, 4, dtype=dtype), torch.randn(40, dtype=dtype)
    params = check_call(x, w, b, 2, 1, 0, 20, 1)
    y = conv_transpose_fwd.allocate_output(x, w, params)
    conv_transpose_fwd.depthwise_plan(x, w, b, y, params, activation="silu", config=config).launch()
    assert count_launches() == 1
    ref = F.silu(F.conv_transpose2d(x.double(), w.double(), b.double(), stride=2, padding=1, groups=20))
    assert_close_to_reference(y, ref)


def test_grouped_layers_with_several_input_channels_keep_the_gemm_kernel(monkeypatch):
    chosen = []
    monkeypatch.setattr(
        conv_transpose_fwd, "depthwise_plan", lambda *a, **k: chosen.append(1) or _depthwise_plan(*a, **k)
    )
    triton_convt.conv_transpose2d(torch.randn(1, 4, 3, 3), torch.randn(4, 1, 3, 3), groups=2)
    assert chosen == []
