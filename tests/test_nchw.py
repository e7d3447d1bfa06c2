"""NCHW (NCL, NCDHW) inputs run the phase GEMM's window variant (``triton_convt.launch.window``): aligned windows of
input columns as GEMM rows, every W tap as a column block, every phase of a row tile in one program. Checked under
the interpreter against torch in fp64 at every border its loads and its epilogue meet: taps left, right, above and
below the input, 1-D, 2-D and 3-D, odd widths, rows narrower than a window (several rows and images per tile) and
wider than one (overlapping windows), kernels of 3, 5 and 16 taps, views whose W stride is not 1, and the input
gradient, which runs the same variant; and the narrow layers (RGB heads: at most ``NARROW_COLUMNS`` output channels per
group) that run it in channels_last too. Shapes are tiny: the interpreter's time grows with programs."""

import copy

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_close_to_reference, assert_matches_nonfinite

import triton_convt
from triton_convt.functional.conv_transpose import check_call
from triton_convt.launch import conv_transpose_bwd, conv_transpose_fwd
from triton_convt.launch.kernel_plan import KernelPlan, spatial_3d
from triton_convt.launch.phase_gemm import gemm_weight

CONV_T = {3: F.conv_transpose1d, 4: F.conv_transpose2d, 5: F.conv_transpose3d}
CONV = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}


def config(m, n, k):
    return {"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k, "num_warps": 4, "num_stages": 2}


# name: (input shape, weight shape, keyword arguments, config). The configs are chosen to reach each layout of
# windows: one window per row with several rows (and images) per tile, or rows wider than a window, split into
# overlapping windows (W_TILES > 1).
# fmt: off
CASES = {
    # Taps reading the row left of the input and the one right of it, above and below: k4 s2 p1, odd width.
    "k4s2p1-every-border-odd-width": ((2, 3, 5, 7), (3, 4, 4, 4), dict(stride=2, padding=1), config(32, 16, 16)),
    # Rows of 3 columns: windows of 4, 8 rows of two images per tile.
    "rows-narrower-than-a-window": ((2, 3, 3, 3), (3, 2, 4, 4), dict(stride=2, padding=1), config(32, 16, 8)),
    # Rows of 40 columns in windows of 16 every 8: the taps of columns near a window's edge come from its halo.
    "rows-wider-than-a-window": ((1, 2, 2, 40), (2, 3, 4, 4), dict(stride=2, padding=1), config(16, 16, 8)),
    # No padding and a kernel wider than the stride: taps past the right and bottom edge; 3 taps along W (two
    # products, of 2 and 1 column blocks); output_padding writes columns no tap reaches but the bias.
    "k3s2op1-taps-past-the-end": ((1, 3, 4, 6), (3, 2, 3, 3), dict(stride=2, output_padding=1), config(32, 16, 16)),
    # Dilation: a column's taps two inputs apart, spanning windows' halos; 5 taps along W (4 + 1 blocks).
    "dilated-5-taps-wide-rows": ((1, 2, 2, 50), (2, 2, 3, 5), dict(stride=(1, 3), padding=(1, 4), dilation=(1, 2)),
                                 config(32, 16, 8)),
    # Groups, a bias, an activation, and 5 input channels: a partial K block (no EVEN_K).
    "groups-bias-partial-k": ((1, 10, 3, 5), (10, 3, 3, 3), dict(stride=2, padding=1, groups=2), config(32, 16, 8)),
    # A stride larger than the kernel: phases without taps write the bias only.
    "stride-past-the-kernel": ((1, 2, 3, 4), (2, 3, 2, 1), dict(stride=3), config(16, 8, 8)),
    # One input column: the W axis runs with the kernel's span (4) as its stride, wider than the 2 output columns.
    "one-column-input": ((2, 2, 3, 1), (2, 1, 3, 4), dict(stride=(2, 1), padding=(1, 1)), config(16, 8, 8)),
    # 1-D: HiFi-GAN's k16 s8 p4 (16 taps, two per output column) in windows of 32 every 24.
    "1d-k16s8p4-windows": ((1, 3, 50), (3, 2, 16), dict(stride=8, padding=4), config(32, 32, 8)),
    "1d-k4s2p1-odd-length": ((2, 3, 37), (3, 4, 4), dict(stride=2, padding=1), config(16, 16, 8)),
    # 3-D: MONAI's k3 s2 p1 op1 (1 to 8 taps per phase, 8 phases in one program) and nnU-Net's k2 s2.
    "3d-k3s2p1op1": ((1, 2, 3, 3, 5), (2, 3, 3, 3, 3), dict(stride=2, padding=1, output_padding=1), config(16, 8, 8)),
    "3d-k2s2": ((2, 3, 2, 3, 3), (3, 2, 2, 2, 2), dict(stride=2), config(32, 8, 8)),
}
# fmt: on


def _params(x, w, b, kwargs):
    args = [kwargs.get(k, d) for k, d in (("stride", 1), ("padding", 0), ("output_padding", 0), ("groups", 1),
                                           ("dilation", 1))]  # fmt: skip
    return check_call(x, w, b, *args)


def _forward(x, w, b, kwargs, cfg, **options):
    """The forward launch with config ``cfg``; returns its output and its plan's arguments."""
    params = _params(x, w, b, kwargs)
    y = conv_transpose_fwd.allocate_output(x, w, params)
    plan = conv_transpose_fwd.forward_plan(x, gemm_weight(spatial_3d(w)), b, y, params, config=cfg, **options)
    plan.launch()
    return y, plan.args


def _input_grad(dz, x, w, kwargs, cfg):
    """The input gradient's launch with config ``cfg``, and its plan's arguments."""
    params = _params(x, w, None, kwargs)
    dx = torch.empty_like(x)
    plan = conv_transpose_bwd.input_grad_plan(dz, gemm_weight(spatial_3d(w)), dx, params, config=cfg)
    plan.launch()
    return dx, plan.args


#: The epilogue the cases' forward launches take (the kernel's ``EPILOGUE``): 1, a shift per tap (no dilation, a
#: stride of a power of two); 0, each column's taps from the table (dilation, a stride of 3). Input gradients take 2.
FORWARD_EPILOGUE = {"dilated-5-taps-wide-rows": 0, "stride-past-the-kernel": 0}


@pytest.mark.parametrize("case", list(CASES))
def test_forward_and_input_gradient_at_every_border(case, count_launches):
    x_shape, w_shape, kwargs, cfg = CASES[case]
    x, w = torch.randn(x_shape), torch.randn(w_shape)
    b = torch.randn(w_shape[1] * kwargs.get("groups", 1))
    y, args = _forward(x, w, b, kwargs, cfg, activation="silu")
    assert args["W_WINDOW"] and args["stride_xw"] == 1 and args["EPILOGUE"] == FORWARD_EPILOGUE.get(case, 1)
    if "wider" in case or "windows" in case or "wide-rows" in case:
        assert args["W_TILES"] > 1  # the case reaches overlapping windows
    expected = F.silu(CONV_T[x.dim()](x.double(), w.double(), b.double(), **kwargs))
    assert_close_to_reference(y, expected)

    dz = torch.randn(y.shape)
    dx, args = _input_grad(dz, x, w, kwargs, cfg)
    assert args["W_WINDOW"] and args["EPILOGUE"] == 2
    conv_kwargs = {k: v for k, v in kwargs.items() if k != "output_padding"}
    assert_close_to_reference(dx, CONV[x.dim()](dz.double(), w.double(), **conv_kwargs))


@pytest.mark.parametrize("view", ["every-other-column", "transposed-hw", "channel-slice"])
def test_views_with_other_strides_give_torchs_result(view, count_launches):
    # A W stride other than 1 (every other column, or H and W transposed) or a channel slice: the window variant
    # reads them through their strides (the compiler then cannot prove a window contiguous, and keeps scalar loads).
    base = torch.randn(2, 5, 6, 11)
    x = {"every-other-column": base[:, :3, :, ::2], "transposed-hw": base[:, :3, :, :6].transpose(2, 3),
         "channel-slice": base[:, 1:4]}[view]  # fmt: skip
    w, b = torch.randn(3, 2, 4, 3), torch.randn(2)
    y, args = _forward(x, w, b, dict(stride=2, padding=1), config(32, 16, 8))
    assert args["W_WINDOW"] and (args["stride_xw"] != 1) == (view != "channel-slice")
    assert_close_to_reference(y, F.conv_transpose2d(x.double(), w.double(), b.double(), stride=2, padding=1))


def test_a_one_pixel_input_writes_its_nchw_output_through_the_window_variant(count_launches):
    # DCGAN's first layer: a 1x1 input has its channels innermost (it is NCHW and channels_last at once), but its
    # NCHW output would be written phase by phase, a fraction of each sector at a time: the window variant takes it.
    x, w = torch.randn(3, 5, 1, 1), torch.randn(5, 8, 4, 4)  # 8 output channels: not narrow (see below)
    y, args = _forward(x, w, None, {}, config(16, 16, 8))
    assert args["W_WINDOW"] and y.is_contiguous()
    assert_close_to_reference(y, F.conv_transpose2d(x.double(), w.double()))
    y, args = _forward(x.contiguous(memory_format=torch.channels_last), w.contiguous(memory_format=torch.channels_last),
                       None, {}, config(16, 16, 8))  # fmt: skip
    assert not args["W_WINDOW"]  # a channels_last output: the phase path writes whole pixels


def test_non_finite_weights_reach_only_the_outputs_torch_multiplies(count_launches):
    # An inf weight times the zeros a border tap reads must not turn an output NaN (torch never multiplies there):
    # the variant masks each product to its in-range rows, and its epilogue adds no out-of-window column.
    x, w = torch.randn(1, 2, 3, 5), torch.randn(2, 2, 4, 4)
    w[0, 1, 0, 3] = float("inf")
    w[1, 0, 3, 0] = float("nan")
    y, args = _forward(x, w, None, dict(stride=2, padding=1), config(16, 16, 8))
    assert args["W_WINDOW"] and args["MASK_PRODUCTS"]
    assert_matches_nonfinite(y, F.conv_transpose2d(x.double(), w.double(), stride=2, padding=1))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64], ids=str)
def test_dtypes_and_the_int64_index_path(dtype, count_launches):
    x, w, b = torch.randn(1, 3, 3, 9, dtype=dtype), torch.randn(3, 2, 3, 4, dtype=dtype), torch.randn(2, dtype=dtype)
    cfg = config(16, 16, 16) if dtype != torch.float64 else config(16, 8, 8)
    expected = F.conv_transpose2d(x.double(), w.double(), b.double(), stride=2, padding=1)
    for index64 in (False, True):
        y, args = _forward(x, w, b, dict(stride=2, padding=1), cfg, index64=index64)
        assert args["W_WINDOW"] and (args["INDEX_DTYPE"].primitive_bitwidth == 64) == index64
        assert_close_to_reference(y, expected)


def test_the_public_api_and_autograd_take_the_window_variant(count_launches):
    # Through the functional API with the launcher's own config, forward and backward, 2-D NCHW.
    x = torch.randn(1, 3, 4, 5, requires_grad=True)
    w = torch.randn(3, 2, 4, 4, requires_grad=True)
    y = triton_convt.conv_transpose2d(x, w, stride=2, padding=1)
    y.backward(torch.ones_like(y))
    xd, wd = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    ref = F.conv_transpose2d(xd, wd, stride=2, padding=1)
    ref.backward(torch.ones_like(ref))
    assert_close_to_reference(y, ref)
    assert_close_to_reference(x.grad, xd.grad)
    assert_close_to_reference(w.grad, wd.grad)


def _channels_last(t):
    """``t`` with its channels innermost (channels_last in 2-D, channels_last_3d in 3-D, NLC in 1-D)."""
    return t.movedim(1, -1).contiguous().movedim(-1, 1)


# name: (input shape, weight shape, keyword arguments, config): narrow layers with channels innermost.
# fmt: off
NARROW = {
    # An RGB head (DCGAN's, pix2pix's: k4 s2 p1, 3 channels) on an odd width, several rows per tile.
    "rgb-k4s2p1-odd-width": ((2, 5, 3, 7), (5, 3, 4, 4), dict(stride=2, padding=1), config(32, 16, 8)),
    # Rows wider than a window: overlapping windows read channels_last rows too.
    "rgb-wide-rows": ((1, 4, 2, 40), (4, 3, 4, 4), dict(stride=2, padding=1), config(16, 16, 8)),
    # 3 taps along W (two products) and 2 channels per group.
    "k3-groups": ((1, 6, 3, 5), (6, 2, 3, 3), dict(stride=2, padding=1, output_padding=1, groups=2), config(32, 8, 8)),
    "1d-k4s2p1": ((2, 5, 9), (5, 1, 4), dict(stride=2, padding=1), config(16, 8, 8)),
    "3d-k2s2": ((1, 3, 2, 3, 3), (3, 4, 2, 2, 2), dict(stride=2), config(16, 8, 8)),
}
# fmt: on


@pytest.mark.parametrize("case", list(NARROW))
def test_narrow_channels_last_layers_run_the_window_variant(case, count_launches):
    # A phase GEMM of 3 columns would pad them to the tensor cores' 8 and load every input element for 3
    # multiply-adds; the window variant takes every W tap of those channels as its columns, in every layout.
    x_shape, w_shape, kwargs, cfg = NARROW[case]
    x, w = _channels_last(torch.randn(x_shape)), torch.randn(w_shape)
    b = torch.randn(w_shape[1] * kwargs.get("groups", 1))
    y, args = _forward(x, w, b, kwargs, cfg, activation="tanh")
    assert args["W_WINDOW"] and args["stride_xc"] == 1 and args["stride_yc"] == 1  # channels innermost both sides
    assert_close_to_reference(y, torch.tanh(CONV_T[x.dim()](x.double(), w.double(), b.double(), **kwargs)))
    # The input gradient reduces over the output channels and writes the input's: narrow when those are few.
    dz = _channels_last(torch.randn(y.shape))
    dx, args = _input_grad(dz, x, w, kwargs, cfg)
    assert args["W_WINDOW"] == (x.shape[1] // kwargs.get("groups", 1) <= 4)
    conv_kwargs = {k: v for k, v in kwargs.items() if k != "output_padding"}
    assert_close_to_reference(dx, CONV[x.dim()](dz.double(), w.double(), **conv_kwargs))


def test_a_converted_rgb_head_runs_the_window_variant_in_one_launch_and_trains(count_launches, monkeypatch):
    # The public path: a converted ConvTranspose2d head (8 -> 3, k4 s2 p1, tanh) in channels_last with its launcher's
    # own config, forward and backward; 5 output channels are not narrow and keep the phase path.
    launched = []
    real_launch = KernelPlan.launch
    monkeypatch.setattr(KernelPlan, "launch", lambda plan: (launched.append(plan.args), real_launch(plan))[1])
    head = torch.nn.Sequential(torch.nn.ConvTranspose2d(8, 3, 4, 2, 1), torch.nn.Tanh())
    ours = triton_convt.convert(copy.deepcopy(head))
    x = _channels_last(torch.randn(2, 8, 3, 5)).requires_grad_()
    start = count_launches()
    y = ours(x)
    assert count_launches() - start == 1 and launched[-1]["W_WINDOW"]
    y.sum().backward()
    xd = x.detach().double().requires_grad_()
    ref = head.double()(xd)
    ref.sum().backward()
    assert_close_to_reference(y, ref)
    assert_close_to_reference(x.grad, xd.grad)
    assert_close_to_reference(ours[0].weight.grad, head[0].weight.grad)
    wide = triton_convt.conv_transpose2d(x.detach(), torch.randn(8, 5, 4, 4), stride=2, padding=1)
    assert not launched[-1]["W_WINDOW"] and wide.shape[1] == 5
