"""ConvTranspose1d/3d and autograd for 1-D and 3-D: torch's module database, initialisation and state_dict, convert
on a small vocoder and a small 3-D decoder, gradcheck in fp64, opcheck and torch.compile(fullgraph=True)."""

import pytest
import torch
from helpers import assert_close_to_reference, assert_compiled_matches_eager
from torch import nn
from torch.testing._internal.common_modules import module_db

import triton_convt
from triton_convt import ConvTranspose1d, ConvTranspose3d, convert

OURS = {1: ConvTranspose1d, 3: ConvTranspose3d}
THEIRS = {1: nn.ConvTranspose1d, 3: nn.ConvTranspose3d}


@pytest.mark.parametrize("ndim", [1, 3])
def test_module_db_inputs_match_torch(ndim, count_launches):
    info = next(m for m in module_db if m.module_cls is THEIRS[ndim])
    inputs = info.module_inputs_func(info, device="cpu", dtype=torch.float64, requires_grad=False, training=False)
    assert inputs
    for module_input in inputs:
        args, kwargs = module_input.constructor_input.args, module_input.constructor_input.kwargs
        torch.manual_seed(0)
        theirs = THEIRS[ndim](*args, **kwargs).double()
        torch.manual_seed(0)
        ours = OURS[ndim](*args, **kwargs).double()
        assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))
        with torch.no_grad():
            y = ours(*module_input.forward_input.args, **module_input.forward_input.kwargs)
            assert_close_to_reference(y, theirs(*module_input.forward_input.args, **module_input.forward_input.kwargs))
    assert count_launches() > 0


@pytest.mark.parametrize("ndim", [1, 3])
def test_constructor_state_dict_repr_from_torch(ndim):
    args = dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1, output_padding=1, groups=2)
    torch.manual_seed(1)
    theirs = THEIRS[ndim](**args)
    torch.manual_seed(1)
    ours = OURS[ndim](**args, activation="leaky_relu", negative_slope=0.2)
    assert isinstance(ours, THEIRS[ndim]) and ours.state_dict().keys() == theirs.state_dict().keys()
    assert all(torch.equal(ours.state_dict()[k], v) for k, v in theirs.state_dict().items())
    assert "activation='leaky_relu', negative_slope=0.2" in repr(ours)
    assert repr(OURS[ndim](**args)) == repr(THEIRS[ndim](**args))
    shared = OURS[ndim].from_torch(theirs.eval(), activation="tanh")
    assert shared.weight is theirs.weight and not shared.training and shared.kernel_size == theirs.kernel_size
    theirs.padding_mode = ours.padding_mode = "reflect"
    x = torch.randn(1, 4, *(3,) * ndim)
    with pytest.raises(ValueError) as expected:
        theirs(x)
    with pytest.raises(ValueError, match=str(expected.value)):
        ours(x)


def vocoder():
    """A HiFi-GAN-like upsampler at toy size: conv_pre, then LeakyReLU + ConvTranspose1d (k = 2s) stages."""
    return nn.Sequential(
        nn.Conv1d(8, 8, 7, padding=3),
        nn.ConvTranspose1d(8, 4, 8, 4, 2), nn.LeakyReLU(0.1),
        nn.ConvTranspose1d(4, 2, 4, 2, 1), nn.LeakyReLU(0.1),
        nn.Conv1d(2, 1, 7, padding=3), nn.Tanh(),
    )  # fmt: skip


def decoder3d():
    """An nnU-Net-like 3-D decoder at toy size: k2 s2 upsampling, norm, activation."""
    return nn.Sequential(
        nn.ConvTranspose3d(6, 4, 2, 2, bias=False), nn.InstanceNorm3d(4, affine=True), nn.LeakyReLU(0.01),
        nn.ConvTranspose3d(4, 2, 2, 2), nn.ReLU(),
    )  # fmt: skip


@pytest.mark.parametrize(
    "name, make, shape, folded",
    [
        ("vocoder", vocoder, (2, 8, 3), ["leaky_relu", "leaky_relu"]),
        ("decoder3d", decoder3d, (1, 6, 2, 2, 1), ["relu"]),
    ],
)
def test_convert_keeps_outputs(name, make, shape, folded, count_launches):
    torch.manual_seed(2)
    model = make().eval()
    x = torch.randn(shape)
    with torch.no_grad():
        expected = model.double()(x.double())
        model.float()
        assert convert(model) is model
        ours = [m for m in model.modules() if isinstance(m, (ConvTranspose1d, ConvTranspose3d))]
        assert [m.activation for m in ours if m.activation] == folded
        assert not any(type(m) in (nn.ConvTranspose1d, nn.ConvTranspose3d) for m in model.modules())
        y = model(x)
    assert count_launches() == len(ours)  # one per layer: the modules own their weight in the kernel's layout
    assert_close_to_reference(y, expected)


# Quick tier: one per dimensionality; -m full: the other activations and groups.
@pytest.mark.parametrize(
    "ndim, activation, groups",
    [
        (1, "gelu", 2),
        pytest.param(1, "sigmoid", 4, marks=pytest.mark.full),
        (3, "silu", 1),
        pytest.param(3, "leaky_relu", 4, marks=pytest.mark.full),
    ],
)
def test_gradcheck(ndim, activation, groups, count_launches):
    shape = (2, 4, 3) if ndim == 1 else (1, 4, 2, 2, 1)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    w = (torch.randn(4, 4 // groups, *(3, 2, 2)[:ndim], dtype=torch.float64) / 2).requires_grad_()
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    f = getattr(triton_convt, f"conv_transpose{ndim}d")

    def fn(x, w, b):
        return f(
            x, w, b, stride=2, padding=1, output_padding=1, groups=groups, activation=activation, negative_slope=0.2
        )

    assert torch.autograd.gradcheck(fn, (x, w, b), fast_mode=True)
    assert count_launches() > 0


# Quick tier: 1-D (the op families register through one function, ops/family.py); -m full: 3-D too.
@pytest.mark.parametrize("ndim", [1, pytest.param(3, marks=pytest.mark.full)])
def test_opcheck(ndim):
    x = torch.randn(1, 4, *(3, 2, 2)[:ndim] if ndim == 3 else (3,), requires_grad=True)
    w = torch.randn(4, 2, *(2,) * ndim, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    one = [1] * ndim
    args = (x, w, b, [2] * ndim, one, one, 2, one, "silu", 0.01)
    op = getattr(torch.ops.triton_convt, f"conv_transpose{ndim}d")
    torch.library.opcheck(op.default, args)
    out = torch.empty(op(*args).shape)
    torch.library.opcheck(
        getattr(torch.ops.triton_convt, f"conv_transpose{ndim}d_out").default,
        (x.detach(), w.detach(), b.detach(), *args[3:], out),
    )


# Quick tier: the 1-D vocoder (the 2-D decoder compiles in test_autograd); -m full: the 3-D decoder too.
@pytest.mark.parametrize(
    "name, make, shape",
    [
        ("vocoder", vocoder, (2, 8, 3)),
        pytest.param("decoder3d", decoder3d, (2, 6, 1, 2, 1), marks=pytest.mark.full),
    ],
)
def test_torch_compile_fullgraph_matches_eager(name, make, shape, count_launches):
    torch.manual_seed(3)
    eager = convert(make())
    x = torch.randn(shape)
    compiled = assert_compiled_matches_eager(eager, x)
    start = count_launches()
    compiled(x)  # compiled already: the forward alone, one launch per layer (the modules own their weight's layout)
    assert count_launches() - start == sum(isinstance(m, triton_convt.modules.TritonConvTranspose)
                                           for m in eager.modules())  # fmt: skip
    assert count_launches() > 0


def test_meta_tensors_get_the_output_shape():
    x = torch.empty(2, 16, 3, 7, 5, device="meta")
    w = torch.empty(16, 3, 2, 3, 5, device="meta")
    y = triton_convt.conv_transpose3d(x, w, stride=(2, 2, 1), padding=(0, 1, 2))
    assert (
        y.device.type == "meta"
        and y.shape == nn.functional.conv_transpose3d(x, w, stride=(2, 2, 1), padding=(0, 1, 2)).shape
    )
