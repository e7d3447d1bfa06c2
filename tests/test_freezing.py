"""``triton_convt.freeze`` / ``unfreeze``: a frozen nearest-upsample + conv keeps its folded weight as a buffer and is
one launch per call; misuse and weight changes the module can see raise, naming the function that fixes them."""

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_close_to_reference
from torch import nn

import triton_convt
from triton_convt import UpsampleConv2d, freeze, unfreeze
from triton_convt.functional.upsample_conv import fold_params, upsample_conv2d_prefolded
from triton_convt.launch.upsample_conv_fwd import fold_weight
from triton_convt.ops.upsample_conv import _torch_fold
from triton_convt.upsample_modules import FusedUpsample2D


def reference(x, conv: nn.Module, scale=2, activation=None):
    """torch's composition in fp64: nearest upsampling, the conv (then the activation); differentiable in ``x``."""
    u = F.interpolate(x.double(), scale_factor=scale, mode="nearest")
    w, b = conv.weight.detach().double(), conv.bias.detach().double()
    y = F.conv2d(u, w, b, 1, conv.padding, conv.dilation, conv.groups)
    return y if activation is None else getattr(torch, activation)(y)


def fused_upsample(channels=4, out_channels=3) -> FusedUpsample2D:
    """A FusedUpsample2D made from a minimal stand-in of diffusers' Upsample2D (the attributes it reads)."""
    block = nn.Module()
    block.channels, block.out_channels, block.use_conv, block.use_conv_transpose = channels, out_channels, True, False
    block.name, block.interpolate, block.norm = "conv", True, None
    block.conv = nn.Conv2d(channels, out_channels, 3, padding=1)
    return FusedUpsample2D(block)


def upsample_conv() -> UpsampleConv2d:
    return UpsampleConv2d(4, 6, (3, 2), scale_factor=(2, 3), padding="same", groups=2, activation="tanh")


def conv_of(module):
    return module if isinstance(module, UpsampleConv2d) else module.conv


def launches_of(call, count_launches):
    before = count_launches()
    result = call()
    return count_launches() - before, result


@pytest.mark.parametrize("kind", ["upsample_conv", "fused_upsample"])
@pytest.mark.parametrize("x_layout, w_layout", [("nchw", "nchw"), ("channels_last", "nchw"), ("nchw", "channels_last")])
def test_frozen_is_one_launch_with_the_unfrozen_layout_and_values(kind, x_layout, w_layout, count_launches):
    torch.manual_seed(0)
    module = (upsample_conv if kind == "upsample_conv" else fused_upsample)().eval()
    if w_layout == "channels_last":
        module.to(memory_format=torch.channels_last)
    x = torch.randn(2, 4, 3, 2)
    if x_layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    scale, activation = ((2, 3), "tanh") if kind == "upsample_conv" else (2, None)
    with torch.no_grad():
        n_unfrozen, unfrozen = launches_of(lambda: module(x), count_launches)
        assert freeze(module) is module and module.frozen
        n_frozen, frozen = launches_of(lambda: module(x), count_launches)
    assert (n_unfrozen, n_frozen) == (2, 1)
    # torch's composition's layout: channels_last when the input or the conv weight is.
    assert frozen.stride() == unfrozen.stride()
    assert frozen.is_contiguous(memory_format=torch.channels_last) == ("channels_last" in (x_layout, w_layout))
    assert_close_to_reference(frozen, reference(x, conv_of(module), scale, activation))


def test_the_fold_is_a_buffer_outside_the_state_dict(count_launches):
    module = upsample_conv().eval()
    keys = set(module.state_dict())
    freeze(module)
    assert count_launches() == 1  # the fold
    assert "folded_weight" in dict(module.named_buffers()) and set(module.state_dict()) == keys
    assert module.folded_weight.is_contiguous(memory_format=torch.channels_last)  # the kernel's layout
    fresh = upsample_conv()
    fresh.load_state_dict(module.state_dict())  # loads into an unfrozen module, and back
    assert torch.equal(fresh.weight, module.weight)


def test_freeze_needs_eval_mode_and_changes_nothing_otherwise(count_launches):
    model = nn.Sequential(upsample_conv(), triton_convt.ConvTranspose2d(6, 2, 2, 2))
    model[1].weight.data = model[1].weight.data.contiguous()  # lost the kernel's layout
    with pytest.raises(RuntimeError, match=r"eval"):
        freeze(model)
    assert not model[0].frozen and not model[1].weight.is_contiguous(memory_format=torch.channels_last)
    assert count_launches() == 0
    freeze(model.eval())
    assert model[0].frozen and model[1].weight.is_contiguous(memory_format=torch.channels_last)


def test_misuse_raises_naming_unfreeze(count_launches):
    module = freeze(upsample_conv().eval())
    x = torch.randn(1, 4, 2, 2)
    with pytest.raises(RuntimeError, match=r"unfreeze"):
        module(x)  # grad enabled and the weight requires grad
    module.train()
    with pytest.raises(RuntimeError, match=r"training mode.*unfreeze"), torch.no_grad():
        module(x)
    assert count_launches() == 1  # the fold only


def test_grad_through_the_input_only_folds_per_call(count_launches):
    """Frozen weights (requires_grad False) with an input that needs its gradient: the call folds itself, as an
    unfrozen module does, and the gradient flows to the input."""
    module = freeze(upsample_conv().eval()).requires_grad_(False)
    x = torch.randn(1, 4, 2, 2, dtype=torch.float64, requires_grad=True)
    module.double()
    n, y = launches_of(lambda: module(x), count_launches)
    assert n == 2
    y.sum().backward()
    x_ref = x.detach().requires_grad_()
    reference(x_ref, module, (2, 3), "tanh").sum().backward()
    assert_close_to_reference(x.grad, x_ref.grad)


CHANGES = {
    "in-place update": lambda m: m.weight.detach().mul_(0.5),  # an optimizer step, copy_, load_state_dict
    "weight.data = t": lambda m: setattr(m.weight, "data", m.weight.data * 0.5),
    "a new Parameter": lambda m: setattr(m, "weight", nn.Parameter(m.weight.detach() * 0.5)),
    "another dtype": lambda m: setattr(m.weight, "data", m.weight.data.double()),
    "the module's padding": lambda m: setattr(m, "padding", (1, 0)),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_the_module_sees_raises_naming_freeze(change, count_launches):
    module = freeze(upsample_conv().eval())
    x = torch.randn(1, 4, 2, 2)
    CHANGES[change](module)
    dtype = module.weight.dtype
    with pytest.raises(RuntimeError, match=r"changed since triton_convt.freeze.*freeze\(model\) again"), \
            torch.no_grad():  # fmt: skip
        module(x.to(dtype))
    freeze(module)  # folds again from the weight as it is now
    module.bias.data = module.bias.data.to(dtype)  # not checked: the fold does not read the bias
    with torch.no_grad():
        n, y = launches_of(lambda: module(x.to(dtype)), count_launches)
    assert n == 1
    assert_close_to_reference(y, reference(x, module, (2, 3), "tanh"))


def test_a_write_through_data_is_not_seen(count_launches):
    """The contract's stated limit: ``.data`` writes move no version counter and keep the storage."""
    module = freeze(upsample_conv().eval())
    x = torch.randn(1, 4, 2, 2)
    with torch.no_grad():
        before = module(x)
        module.weight.data.mul_(-1.0)
        assert torch.equal(module(x), before)  # the fold of the old values
        freeze(module)  # unchanged as far as the module can see: nothing to do
        assert torch.equal(module(x), before)
        unfreeze(module)
        assert_close_to_reference(module(x), reference(x, module, (2, 3), "tanh"))


def test_unfreeze_drops_the_buffer_and_training_works(count_launches):
    module = freeze(upsample_conv().eval())
    assert unfreeze(module) is module and unfreeze(module) is module  # idempotent
    assert not module.frozen and dict(module.named_buffers()) == {}
    module.train().double()
    x = torch.randn(1, 4, 2, 2, dtype=torch.float64)
    n, y = launches_of(lambda: module(x), count_launches)
    assert n == 2
    y.square().sum().backward()
    assert_close_to_reference(y.detach(), reference(x, module, (2, 3), "tanh"))
    w = module.weight.detach().clone().requires_grad_()
    u = F.interpolate(x, scale_factor=(2, 3), mode="nearest")
    torch.tanh(F.conv2d(u, w, module.bias.detach(), 1, "same", 1, 2)).square().sum().backward()
    assert_close_to_reference(module.weight.grad, w.grad)


def test_freeze_is_idempotent_and_to_folds_again(count_launches):
    module = upsample_conv().eval()
    assert freeze(freeze(module)) is module
    assert count_launches() == 1  # the second freeze found the weight unchanged
    module.double()  # _apply: folds again from the converted weight
    assert module.folded_weight.dtype == torch.float64 and count_launches() == 2
    x = torch.randn(1, 4, 2, 2, dtype=torch.float64)
    with torch.no_grad():
        n, y = launches_of(lambda: module(x), count_launches)
    assert n == 1
    assert_close_to_reference(y, reference(x, module, (2, 3), "tanh"))


def test_fused_upsample_folds_per_call_for_another_output_size(count_launches):
    module = freeze(fused_upsample().eval())
    x = torch.randn(1, 4, 2, 3)
    with torch.no_grad():
        n, y = launches_of(lambda: module(x, output_size=(6, 9)), count_launches)  # x3: not the frozen fold
    assert n == 2
    assert_close_to_reference(y, reference(x, module.conv, 3))


def test_inference_tensors_freeze_without_a_version_counter(count_launches):
    with torch.inference_mode():
        module = upsample_conv().eval()
        assert module.weight.is_inference()
        freeze(module)
        x = torch.randn(1, 4, 2, 2)
        n, y = launches_of(lambda: module(x), count_launches)
    assert n == 1
    assert_close_to_reference(y, reference(x, module, (2, 3), "tanh"))


def test_opcheck_of_the_prefolded_op():
    module = freeze(upsample_conv().eval())
    x = torch.randn(1, 4, 2, 2).to(memory_format=torch.channels_last)
    args = (x, module.weight.detach(), module.folded_weight, module.bias.detach(), [2, 3], [1, 1, 0, 1], [1, 1], 2,
            "tanh", 0.01)  # fmt: skip
    assert torch.ops.triton_convt.upsample_conv2d_prefolded(*args).is_contiguous(memory_format=torch.channels_last)
    # Schema and fake tensors (the strides); the other utilities trace the op again (seconds under the interpreter).
    torch.library.opcheck(
        torch.ops.triton_convt.upsample_conv2d_prefolded.default, args, test_utils=("test_schema", "test_faketensor")
    )


@pytest.mark.parametrize(
    "kernel, scale, padding, groups", [((3, 3), (2, 2), 1, 1), ((3, 2), (2, 3), "same", 2), ((4, 1), (3, 1), (2, 0), 4)]
)
def test_torchs_fold_equals_the_kernels(kernel, scale, padding, groups):
    """The fold a frozen module makes off the Triton path (CPU without the interpreter, meta tensors) is the
    kernel's."""
    w = torch.randn(8, 8 // groups, *kernel, dtype=torch.float64)
    params = fold_params(w, scale, padding, 1, groups)
    torchs, kernels = _torch_fold(w, params), fold_weight(w, params)
    assert torchs.stride() == kernels.stride()
    torch.testing.assert_close(torchs, kernels)
    on_meta = freeze(UpsampleConv2d(8, 8, kernel, scale, padding, groups=groups, device="meta").eval())
    assert on_meta.folded_weight.is_meta and on_meta.folded_weight.shape == kernels.shape


def test_the_prefolded_call_refuses_autograd():
    module = freeze(upsample_conv().eval())
    with pytest.raises(RuntimeError, match="no autograd"):
        upsample_conv2d_prefolded(torch.randn(1, 4, 2, 2), module.weight, module.folded_weight, module.bias, (2, 3),
                                  "same", 1, 2)  # fmt: skip
