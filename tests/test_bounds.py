"""No access outside the tensors: out= views inside sentinel-filled buffers keep every sentinel, and operands read
as views inside NaN-filled buffers give finite, correct results (a read past an operand's edge that reached the sum
would bring a NaN in)."""

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import SENTINEL, assert_close_to_reference, forward_launches

import triton_convt

# name: (input shape, weight shape, keyword arguments): strides 1-3, groups, depthwise, dilation, and phases with
# no tap (which store bias only).
CONFIGS = {
    "k3-s2-p1-op1": ((2, 4, 3, 4), (4, 3, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    "k4-s2-p1-groups2": ((1, 4, 3, 3), (4, 2, 4, 4), dict(stride=2, padding=1, groups=2)),
    "depthwise-k3-s1-d2": ((1, 3, 4, 3), (3, 1, 3, 3), dict(groups=3, dilation=2)),
    "k2-s3x2-bias-only-phases": ((2, 3, 2, 3), (3, 2, 2, 2), dict(stride=(3, 2), dilation=(2, 1), output_padding=1)),
}

# name: (buffer shape from the view's shape (n, c, h, w), the view of the buffer). Every view has the output's shape;
# together they leave elements on every side, between channels, between columns and between batches, and put the
# channel, row or batch axis innermost.
# fmt: off
LAYOUTS = {
    "every-side": (lambda n, c, h, w: torch.empty(n + 2, c + 3, h + 2, w + 3),
                   lambda b, n, c, h, w: b[1 : 1 + n, 2 : 2 + c, 1 : 1 + h, 1 : 1 + w]),
    "every-side-channels-last": (
        lambda n, c, h, w: torch.empty(n + 2, c + 3, h + 2, w + 3).contiguous(memory_format=torch.channels_last),
        lambda b, n, c, h, w: b[1 : 1 + n, 1 : 1 + c, 2 : 2 + h, 1 : 1 + w]),
    "channel-slice-of-concat": (lambda n, c, h, w: torch.empty(n, c + 5, h, w),
                                lambda b, n, c, h, w: b[:, 2 : 2 + c]),
    "transposed-hw": (lambda n, c, h, w: torch.empty(n, c, w + 1, h + 2),
                      lambda b, n, c, h, w: b[:, :, 1:, 1 : 1 + h].transpose(2, 3)),
    "every-other-column": (lambda n, c, h, w: torch.empty(n, c, h, 2 * w + 1),
                           lambda b, n, c, h, w: b[..., 1::2]),
    "every-other-batch": (lambda n, c, h, w: torch.empty(2 * n + 1, c, h, w),
                          lambda b, n, c, h, w: b[1::2]),
    "hwnc-permuted-with-gaps": (lambda n, c, h, w: torch.empty(h + 1, w, n, c + 2),
                                lambda b, n, c, h, w: b[1:, :, :, 1 : 1 + c].permute(2, 3, 0, 1)),
}
# fmt: on


def embedded(values: torch.Tensor, fill: float) -> torch.Tensor:
    """``values`` as a view at the centre of a ``fill``-filled buffer, one element larger on every side."""
    buf = torch.full([s + 2 for s in values.shape], fill, dtype=values.dtype)
    view = buf[tuple(slice(1, 1 + s) for s in values.shape)]
    view.copy_(values)
    return view


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("config", list(CONFIGS))
def test_out_view_keeps_every_sentinel_and_reads_stay_inside(config, layout, count_launches):
    x_shape, w_shape, kwargs = CONFIGS[config]
    x = embedded(torch.randn(x_shape), math.nan)
    w = embedded(torch.randn(w_shape), math.nan)
    b = embedded(torch.randn(w_shape[1] * kwargs.get("groups", 1)), math.nan)
    expected = F.conv_transpose2d(x.double(), w.double(), b.double(), **kwargs)

    make_buffer, view_of = LAYOUTS[layout]
    buf = make_buffer(*expected.shape).fill_(SENTINEL)
    out = view_of(buf, *expected.shape)
    inside = torch.zeros_like(buf, dtype=torch.bool)
    view_of(inside, *expected.shape).fill_(True)
    assert out.shape == expected.shape and not inside.all()

    triton_convt.conv_transpose2d(x, w, b, **kwargs, out=out)
    assert count_launches() == forward_launches(w, kwargs.get("groups", 1))
    assert (buf[~inside] == SENTINEL).all(), f"{int((buf[~inside] != SENTINEL).sum())} sentinels overwritten"
    assert_close_to_reference(out, expected)
