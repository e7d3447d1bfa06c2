"""The modules own their weight in the kernel's layout (output channels innermost), so every forward is one launch,
and the layout survives what users do to a model; outputs keep the layout torch's module gives.

Each test compares against torch's own module in fp64 and counts launches. The distributed runs (DDP, FSDP2) are in
``test_distributed.py``; ``freeze`` in ``test_freezing.py``.
"""

import copy
import io

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_close_to_reference
from torch import nn

import triton_convt
from triton_convt import ConvTranspose1d, ConvTranspose2d, ConvTranspose3d, convert
from triton_convt.launch.weights import has_kernel_layout, kernel_layout_strides

OURS = {1: ConvTranspose1d, 2: ConvTranspose2d, 3: ConvTranspose3d}
THEIRS = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
#: Spatial input sizes per dimensionality: tiny, but every axis has a border and more than one phase.
SPATIAL = {1: (5,), 2: (3, 4), 3: (2, 2, 2)}
ARGS = dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1, output_padding=1, groups=2)


def twins(ndim: int, dtype=torch.float32, **args):
    """torch's module and ours from the same seed (equal parameters), in ``dtype``."""
    args = {**ARGS, **args}
    torch.manual_seed(1)
    theirs = THEIRS[ndim](**args).to(dtype)
    torch.manual_seed(1)
    ours = OURS[ndim](**args).to(dtype)
    return theirs, ours


def expected(theirs: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """torch's module's output in fp64, from the same parameters."""
    with torch.no_grad():
        return copy.deepcopy(theirs).double()(x.double())


def one_call(module, x, count_launches) -> torch.Tensor:
    """``module(x)`` without grad, checked to be one launch."""
    before = count_launches()
    with torch.no_grad():
        y = module(x)
    assert count_launches() - before == 1
    return y


def test_kernel_layout_is_output_channels_innermost():
    # [C_in, C_out/g, kH, kW] laid out as [C_in, kH, kW, C_out/g]: channels_last for 2-D, channels_last_3d for 3-D,
    # the same order for 1-D (which has no memory format of its own).
    assert kernel_layout_strides((4, 6, 3, 2)) == torch.empty(4, 6, 3, 2).to(memory_format=torch.channels_last).stride()
    assert (
        kernel_layout_strides((4, 6, 2, 3, 2))
        == torch.empty(4, 6, 2, 3, 2).to(memory_format=torch.channels_last_3d).stride()
    )
    assert kernel_layout_strides((4, 6, 5)) == (30, 1, 6)
    assert has_kernel_layout(torch.empty(4, 1, 3, 3))  # one output channel: torch's layout already has it
    assert not has_kernel_layout(torch.empty(4, 2, 3, 3))


@pytest.mark.parametrize("ndim, dtype, groups", [
    (1, torch.float32, 1), (1, torch.float16, 2), (1, torch.bfloat16, 1), (1, torch.float64, 2),
    (2, torch.float32, 2), (2, torch.float16, 1), (2, torch.bfloat16, 2), (2, torch.float64, 1),
    (3, torch.float32, 1), (3, torch.float16, 2), (3, torch.bfloat16, 1), (3, torch.float64, 2),
    (2, torch.float32, 4),  # depthwise: one input channel per group
])  # fmt: skip
def test_every_forward_is_one_launch(ndim, dtype, groups, count_launches):
    theirs, ours = twins(ndim, dtype, groups=groups, out_channels=8)
    assert ours.weight.shape == theirs.weight.shape and has_kernel_layout(ours.weight)
    assert torch.equal(ours.weight, theirs.weight) and ours.weight.stride() != theirs.weight.stride()
    x = torch.randn(2, 4, *SPATIAL[ndim], dtype=dtype)
    y = one_call(ours, x, count_launches)
    assert y.stride() == theirs(x).stride()
    assert_close_to_reference(y, expected(theirs, x))


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("input_layout", ["contiguous", "channels_last"])
def test_outputs_keep_the_strides_of_torchs_module(ndim, input_layout, count_launches):
    """The output's layout is the one torch's module gives with its default weight, decided by the input alone: an
    NCHW input gives an NCHW output, a channels-innermost one a channels-innermost output."""
    theirs, ours = twins(ndim)
    x = torch.randn(2, 4, *SPATIAL[ndim])
    if input_layout == "channels_last":
        x = x.movedim(1, -1).contiguous().movedim(-1, 1)
    calls = ((x,), (x[0],), (x, [2 * s for s in SPATIAL[ndim]])) if ndim == 2 else ((x,),)  # unbatched, output_size
    for args in calls:
        with torch.no_grad():
            y, reference = ours(*args), theirs(*args)
        strides = reference.stride()
        if ndim == 1 and input_layout == "channels_last":
            # torch's CPU path makes this one contiguous, cuDNN channels-innermost; the package follows cuDNN's rule
            # (test_nd.py), so the reference is its functional call with torch's default weight.
            strides = triton_convt.conv_transpose1d(x, theirs.weight, theirs.bias, 2, 1, 1, 2).stride()
            assert strides == (60, 1, 6)
        assert y.shape == reference.shape and y.stride() == strides
        assert_close_to_reference(y, reference.double() if len(args) > 1 else expected(theirs, args[0]))
    assert count_launches() == len(calls) + (2 if ndim == 1 and input_layout == "channels_last" else 0)


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_weight_gradient_has_the_weights_strides(ndim, count_launches):
    """AccumulateGrad and DDP's buckets take a gradient laid out like its parameter without a copy."""
    theirs, ours = twins(ndim, torch.float64)
    x = torch.randn(2, 4, *SPATIAL[ndim], dtype=torch.float64)
    ours(x).square().sum().backward()
    theirs(x).square().sum().backward()
    assert ours.weight.grad.stride() == ours.weight.stride()
    assert_close_to_reference(ours.weight.grad, theirs.weight.grad)
    assert_close_to_reference(ours.bias.grad, theirs.bias.grad)


def test_state_dict_loads_both_ways_and_keeps_the_layout(count_launches):
    theirs, ours = twins(2)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    assert all(torch.equal(ours.state_dict()[k], v) for k, v in theirs.state_dict().items())
    checkpoint = {k: torch.randn_like(v) for k, v in theirs.state_dict().items()}  # torch's contiguous layout
    weight = ours.weight
    ours.load_state_dict(checkpoint)
    assert ours.weight is weight and has_kernel_layout(ours.weight) and torch.equal(ours.weight, checkpoint["weight"])
    ours.load_state_dict(checkpoint, assign=True)  # installs the checkpoint's tensor: re-laid
    assert isinstance(ours.weight, nn.Parameter) and has_kernel_layout(ours.weight)
    assert torch.equal(ours.weight, checkpoint["weight"])
    theirs.load_state_dict(ours.state_dict())  # back into torch's module
    assert torch.equal(theirs.weight, checkpoint["weight"])
    x = torch.randn(2, 4, 3, 4)
    assert_close_to_reference(one_call(ours, x, count_launches), expected(theirs, x))


OPTIMIZERS = [
    (torch.optim.SGD, dict(lr=0.1, momentum=0.9, foreach=False)),
    (torch.optim.SGD, dict(lr=0.1, momentum=0.9, foreach=True)),
    (torch.optim.Adam, dict(lr=0.01, foreach=True)),
    (torch.optim.Adam, dict(lr=0.01, fused=True)),
    (torch.optim.AdamW, dict(lr=0.01, foreach=False)),
    (torch.optim.AdamW, dict(lr=0.01, fused=True)),
]


@pytest.mark.parametrize("optimizer, kwargs", OPTIMIZERS, ids=lambda o: getattr(o, "__name__", None) or str(o))
def test_optimizer_steps_keep_the_layout(optimizer, kwargs, count_launches):
    theirs, ours = twins(1, torch.float64)
    steppers = [optimizer(m.parameters(), **kwargs) for m in (theirs, ours)]
    for _ in range(2):
        x = torch.randn(2, 4, 5, dtype=torch.float64)
        for m, opt in zip((theirs, ours), steppers):
            opt.zero_grad()
            m(x).square().mean().backward()
            opt.step()
    assert has_kernel_layout(ours.weight)
    assert_close_to_reference(ours.weight, theirs.weight.detach())
    x = torch.randn(2, 4, 5, dtype=torch.float64)
    assert_close_to_reference(one_call(ours, x, count_launches), expected(theirs, x))


def _save_load(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_the_layout_survives_what_users_do_to_a_model(ndim, count_launches):
    _, ours = twins(ndim)
    model = nn.Sequential(ours, nn.ReLU())
    memory_format = {1: torch.channels_last, 2: torch.channels_last, 3: torch.channels_last_3d}[ndim]
    variants = {
        "to(float64)": lambda m: m.to(torch.float64),
        "half()": lambda m: m.half(),
        "to(memory_format=channels_last)": lambda m: m.to(memory_format=memory_format),
        "to(memory_format=contiguous_format)": lambda m: m.to(memory_format=torch.contiguous_format),
        "deepcopy": copy.deepcopy,
        "torch.save/load": _save_load,
        "load of a saved state_dict": lambda m: _loaded_into_fresh(m, ndim),
        "requires_grad_(False)": lambda m: m.requires_grad_(False),
    }
    x = torch.randn(2, 4, *SPATIAL[ndim])
    for name, change in variants.items():
        changed = change(copy.deepcopy(model))
        layer = changed[0]
        assert has_kernel_layout(layer.weight) and layer.weight.shape == model[0].weight.shape, name
        if ndim != 1 and "memory_format" not in name:
            continue  # the layout is the point; one dimensionality runs every variant (interpreter time)
        y = one_call(changed, x.to(layer.weight.dtype), count_launches)
        reference = nn.Sequential(_torch_twin(layer), nn.ReLU())
        assert y.stride() == reference(x.to(layer.weight.dtype)).stride(), name
        assert_close_to_reference(y, expected(reference, x))
    on_meta = copy.deepcopy(model).to("meta")  # another device (a GPU run moves to the CPU and back too)
    assert on_meta[0].weight.is_meta and has_kernel_layout(on_meta[0].weight)
    if x.is_cuda:
        moved = copy.deepcopy(model).cpu().to(x.device)
        assert has_kernel_layout(moved[0].weight)
        assert_close_to_reference(one_call(moved, x, count_launches), expected(nn.Sequential(
            _torch_twin(model[0]), nn.ReLU()), x))  # fmt: skip


def _torch_twin(layer: nn.Module) -> nn.Module:
    """torch's module with ``layer``'s arguments and parameters (values only, torch's default layout)."""
    torch_type = type(layer).torch_type()
    twin = torch_type(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                      layer.output_padding, layer.groups, layer.bias is not None, layer.dilation,
                      dtype=layer.weight.dtype, device=layer.weight.device)  # fmt: skip
    twin.load_state_dict({k: v.contiguous() for k, v in layer.state_dict().items()})
    return twin


def _loaded_into_fresh(model: nn.Module, ndim: int) -> nn.Module:
    fresh = nn.Sequential(OURS[ndim](**ARGS), nn.ReLU())
    fresh.load_state_dict(_save_load(model.state_dict()))
    return fresh


def test_convert_relays_in_place_and_optimizers_keep_working(count_launches):
    """convert keeps each layer object and Parameter (re-laid through ``.data``): hooks stay registered, and an
    optimizer whose state was made before the conversion (in torch's layout) steps on as torch's does."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.ConvTranspose1d(4, 3, 4, 2, 1), nn.LeakyReLU(0.1), nn.ConvTranspose1d(3, 2, 4, 2, 1))
    model.double()
    twin = copy.deepcopy(model)
    layers, params = list(model), list(model.parameters())
    seen = []
    layers[0].register_forward_hook(lambda *_: seen.append(True))
    steppers = [torch.optim.Adam(m.parameters(), lr=0.01) for m in (twin, model)]
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    for step in range(2):
        if step == 1:
            assert convert(model) is model
            assert [model[0], model[2]] == [layers[0], layers[2]] and isinstance(model[0], ConvTranspose1d)
            assert list(model.parameters()) == params and all(has_kernel_layout(m.weight) for m in (model[0], model[2]))
            assert model[0].activation == "leaky_relu" and isinstance(model[1], nn.Identity)
        for m, opt in zip((twin, model), steppers):
            opt.zero_grad()
            m(x).square().mean().backward()
            opt.step()
    assert seen == [True, True]
    for ours, theirs in zip(model.parameters(), twin.parameters()):
        assert_close_to_reference(ours.detach(), theirs.detach())
    start = count_launches()
    with torch.no_grad():
        assert_close_to_reference(model(x), twin(x))
    assert count_launches() - start == 2  # one per layer


def test_a_weight_torch_relaid_stays_correct_and_freeze_relays_it(count_launches):
    """Where torch lays the weight out anew (FSDP's flat parameters, ``weight.data = t``, a new Parameter), each
    call copies it into the kernel's layout (two launches) and stays correct; ``freeze`` re-lays it (one)."""
    theirs, ours = twins(2)
    model = nn.Sequential(ours).eval()
    flat = torch.cat([p.detach().reshape(-1) for p in ours.parameters()])  # an FSDP-like flat buffer
    ours.weight.data = flat[: ours.weight.numel()].view(ours.weight.shape)
    x = torch.randn(2, 4, 3, 4)
    with torch.no_grad():
        assert_close_to_reference(ours(x), expected(theirs, x))
    assert count_launches() == 2
    weight = ours.weight
    assert triton_convt.freeze(model) is model and ours.weight is weight and has_kernel_layout(ours.weight)
    assert_close_to_reference(one_call(ours, x, count_launches), expected(theirs, x))
    ours.weight = nn.Parameter(theirs.weight.detach().clone())
    triton_convt.freeze(model)
    assert has_kernel_layout(ours.weight)
    assert_close_to_reference(one_call(ours, x, count_launches), expected(theirs, x))


def test_functional_calls_with_torchs_layout_still_copy_the_weight(count_launches):
    """The functional API reads the weight the caller passes: torch's default layout costs the copy launch, and a
    channels_last weight makes the output channels_last (torch's rule), unless ``layout_from_weight=False``."""
    x = torch.randn(2, 4, 3, 4)
    w = torch.randn(4, 3, 3, 3)
    y = triton_convt.conv_transpose2d(x, w, stride=2)
    assert count_launches() == 2 and y.is_contiguous()
    w_last = w.to(memory_format=torch.channels_last)
    assert triton_convt.conv_transpose2d(x, w_last, stride=2).is_contiguous(memory_format=torch.channels_last)
    assert triton_convt.conv_transpose2d(x, w_last, stride=2, layout_from_weight=False).is_contiguous()
    assert count_launches() == 4
    assert_close_to_reference(y, F.conv_transpose2d(x.double(), w.double(), stride=2))


def test_opcheck_with_the_modules_layout_rule():
    """The op's argument for the modules' rule: real and fake implementations agree on the output's strides (and the
    weight gradient's, which has the weight's)."""
    x = torch.randn(1, 4, 3, 2, requires_grad=True)
    w = torch.randn(4, 3, 2, 2).to(memory_format=torch.channels_last).requires_grad_()
    args = (x, w, None, [2, 2], [0, 0], [0, 0], 1, [1, 1], "relu", 0.01, False)
    assert torch.ops.triton_convt.conv_transpose2d(*args).is_contiguous()
    # Schema and fake tensors (the strides); the other utilities trace the op again (seconds under the interpreter).
    torch.library.opcheck(
        torch.ops.triton_convt.conv_transpose2d.default, args, test_utils=("test_schema", "test_faketensor")
    )


def test_pixel_shuffle_conv_owns_its_layout_through_the_shared_mechanism(count_launches):
    """``PixelShuffleConv2d`` owns its weight with *output* channels innermost (its kernel's layout) through the same
    mechanism as the transposed convolutions: construction, ``.to(memory_format=...)`` and ``freeze`` re-lay it in
    place, and each call is then one launch with torch's result."""
    from triton_convt import PixelShuffleConv2d
    from triton_convt.launch.conv_pixel_shuffle_fwd import is_kernel_layout

    conv, shuffle = nn.Conv2d(3, 8, 3, padding=1), nn.PixelShuffle(2)
    ours = PixelShuffleConv2d.from_modules(conv, shuffle)
    weight = ours.weight
    assert weight is conv.weight and is_kernel_layout(weight)
    x = torch.randn(1, 3, 3, 5)
    with torch.no_grad():
        want = F.pixel_shuffle(F.conv2d(x.double(), conv.weight.double(), conv.bias.double(), padding=1), 2)
    ours.to(memory_format=torch.contiguous_format)
    assert ours.weight is weight and is_kernel_layout(ours.weight)
    ours.weight.data = ours.weight.data.contiguous()  # torch re-lays it: correct, two launches
    with torch.no_grad():
        assert_close_to_reference(ours(x), want)
    assert count_launches() == 2
    triton_convt.freeze(ours.eval())
    assert ours.weight is weight and is_kernel_layout(ours.weight)
    with torch.no_grad():
        assert_close_to_reference(one_call(ours, x, count_launches), want)
