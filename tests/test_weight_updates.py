"""Every ordinary way a weight changes is seen by the next call, whether the module still owns its weight in the
kernel's layout or lost it.

The module keeps its weight with output channels innermost, which the GEMM kernel reads in place: one launch. A
weight that lost that layout (torch re-laid it: ``weight.data = t``, FSDP's flat parameters) is copied into it on
every call (two launches), never into a cached copy, which a write through ``.data`` or an inference tensor's
in-place change would leave stale. Each test changes the weight one way between two calls and checks the second call
against torch with the weight as it is now, and the launch count.
"""

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_close_to_reference, forward_launches
from torch import nn

import triton_convt
from triton_convt.launch.weights import has_kernel_layout, to_kernel_layout

LAYOUTS = ("owned", "lost")


def module(layout: str) -> triton_convt.ConvTranspose2d:
    m = triton_convt.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1)
    if layout == "lost":
        m.weight.data = m.weight.data.contiguous()  # torch's layout, as a user's .data assignment gives it
    assert has_kernel_layout(m.weight) == (layout == "owned")
    return m


def check_now(m: nn.Module, x: torch.Tensor, count_launches) -> None:
    """One call of ``m`` equals torch's ConvTranspose2d with ``m``'s parameters as they are now, in the launches
    its weight's layout needs."""
    before = count_launches()
    with torch.no_grad():
        y = m(x)
        expected = F.conv_transpose2d(x.double(), m.weight.double(), m.bias.double(), m.stride, m.padding,
                                      m.output_padding, m.groups, m.dilation)  # fmt: skip
    assert count_launches() - before == forward_launches(m.weight)
    assert_close_to_reference(y, expected)


def assert_layout_kept(m: nn.Module, layout: str) -> None:
    """An owned weight is still in the kernel's layout (one launch), a lost one still in torch's (two)."""
    assert has_kernel_layout(m.weight) == (layout == "owned")


#: The lost layout's repack is one path for every kind of change (test_the_launch_count_follows_the_weight_layout
#: and test_owned_layout check it in the quick tier); each change against it runs in the full tier.
@pytest.fixture(params=["owned", pytest.param("lost", marks=pytest.mark.full)])
def layer(request):
    return module(request.param), torch.randn(2, 4, 5, 5), request.param


def test_the_launch_count_follows_the_weight_layout(count_launches):
    x = torch.randn(2, 4, 5, 5)
    for layout, launches in (("lost", 2), ("owned", 1)):
        m = module(layout)
        start = count_launches()
        with torch.no_grad():
            m(x)
        assert count_launches() - start == launches


# Full tier: the quick tier's test_owned_layout.py::test_optimizer_steps_keep_the_layout checks the next call after it.
@pytest.mark.full
def test_optimizer_step(layer, count_launches):
    m, x, layout = layer
    check_now(m, x, count_launches)
    optimizer = torch.optim.SGD(m.parameters(), lr=0.5)
    m(x).square().sum().backward()
    optimizer.step()
    assert_layout_kept(m, layout)
    check_now(m, x, count_launches)


# Full tier: the quick tier's test_owned_layout.py::test_state_dict_loads_both_ways_and_keeps_the_layout checks
# the next call after it.
@pytest.mark.full
def test_load_state_dict(layer, count_launches):
    m, x, layout = layer
    check_now(m, x, count_launches)
    other = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1)
    m.load_state_dict(other.state_dict())
    assert torch.equal(m.weight, other.weight)
    assert_layout_kept(m, layout)
    check_now(m, x, count_launches)


def test_copy_and_in_place_init(layer, count_launches):
    m, x, layout = layer
    check_now(m, x, count_launches)
    with torch.no_grad():
        m.weight.copy_(torch.randn_like(m.weight))
    check_now(m, x, count_launches)
    nn.init.normal_(m.weight)
    assert_layout_kept(m, layout)
    check_now(m, x, count_launches)


def test_writes_through_data_keep_the_version_and_are_seen(layer, count_launches):
    m, x, layout = layer
    check_now(m, x, count_launches)
    version = m.weight._version
    m.weight.data.mul_(-2.0)  # EMA code and gradcheck write this way: the version counter does not move
    assert m.weight._version == version
    check_now(m, x, count_launches)
    m.weight.data = torch.randn_like(m.weight)  # a new storage under the same Parameter (randn_like keeps strides)
    assert_layout_kept(m, layout)
    check_now(m, x, count_launches)


def test_a_new_parameter(layer, count_launches):
    m, x, layout = layer
    check_now(m, x, count_launches)
    m.weight = nn.Parameter(torch.randn(4, 6, 3, 3))  # torch's layout: two launches until freeze or .to(...)
    check_now(m, x, count_launches)


def test_in_place_changes_of_inference_tensors(count_launches):
    """Inference tensors have no version counter at all: only reading the weight on every call sees the change."""
    x = torch.randn(2, 4, 5, 5)
    with torch.inference_mode():
        for layout in LAYOUTS:
            m = module(layout)
            w = m.weight.detach().clone()  # an inference tensor, in the module's layout
            assert w.is_inference()
            kwargs = dict(stride=2, padding=1, output_padding=1)
            first = triton_convt.conv_transpose2d(x, w, m.bias, **kwargs)
            w[:, :, 1] *= -3.0
            second = triton_convt.conv_transpose2d(x, w, m.bias, **kwargs)
            for y, weight in ((first, m.weight), (second, w)):
                assert_close_to_reference(y, F.conv_transpose2d(x.double(), weight.double(), m.bias.double(), **kwargs))
            assert not torch.equal(first, second)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_gradcheck_which_perturbs_the_weight_through_data(layout):
    # Tiny operands and fast mode: under the interpreter every perturbed call is a launch or two.
    x = torch.randn(1, 2, 2, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 2, 3, 2, dtype=torch.float64)
    if layout == "owned":
        w = to_kernel_layout(w)
    w.requires_grad_()
    b = torch.randn(2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda *t: triton_convt.conv_transpose2d(*t, stride=2, padding=1),
        (x, w, b),
        eps=1e-6,
        atol=1e-7,
        fast_mode=True,
    )
