"""Where a model's behaviour depends on more than the layer's arguments: containers whose forward does not chain
their children (``convert`` must not fold there), and a ``padding_mode`` changed after construction (torch's
forward refuses it)."""

import pytest
import torch
from helpers import assert_close_to_reference
from torch import nn

from triton_convt import ConvTranspose2d, convert


class DenseBlock(nn.Sequential):
    """MONAI's DenseBlock: each child sees the running concatenation of the input and every earlier child's
    output, so a ReLU child is applied to the whole concatenation, not to the layer before it."""

    def forward(self, x):
        for layer in self.children():
            x = torch.cat([x, layer(x)], 1)
        return x


class Chain(nn.Sequential):
    """A Sequential subclass that adds nothing to ``forward``: it chains its children like nn.Sequential."""


def dense_block(c=3):
    return DenseBlock(nn.ConvTranspose2d(c, c, 3, padding=1), nn.ReLU(), nn.ConvTranspose2d(4 * c, c, 3, padding=1))


def test_convert_does_not_fold_into_a_container_that_overrides_forward(count_launches):
    torch.manual_seed(4)
    model = nn.Sequential(dense_block(), nn.ConvTranspose2d(15, 2, 2, 2), nn.Tanh()).eval()
    x = torch.randn(2, 3, 5, 4)
    with torch.no_grad():
        expected = model.double()(x.double())
        model.float()
        assert convert(model) is model
        y = model(x)
    assert count_launches() == sum(isinstance(m, ConvTranspose2d) for m in model.modules())  # one per layer
    assert_close_to_reference(y, expected)
    block = model[0]
    # Every layer is swapped (that never changes the output), but the ReLU of the DenseBlock stays a ReLU...
    assert [type(m) for m in block] == [ConvTranspose2d, nn.ReLU, ConvTranspose2d]
    assert block[0].activation is None
    # ... while the plain nn.Sequential around it still folds its Tanh.
    assert model[1].activation == "tanh" and isinstance(model[2], nn.Identity)


def test_convert_folds_in_a_sequential_subclass_that_keeps_its_forward(count_launches):
    torch.manual_seed(5)
    model = Chain(nn.ConvTranspose2d(3, 4, 4, 2, 1), nn.GELU(), nn.ConvTranspose2d(4, 2, 2, 2)).eval()
    x = torch.randn(1, 3, 4, 4)
    with torch.no_grad():
        expected = model.double()(x.double())
        model.float()
        convert(model)
        assert model[0].activation == "gelu" and isinstance(model[1], nn.Identity)
        y = model(x)
    assert count_launches() == sum(isinstance(m, ConvTranspose2d) for m in model.modules())  # one per layer
    assert_close_to_reference(y, expected)


def _raised(module, x):
    with pytest.raises(Exception) as info:
        module(x)
    return type(info.value), str(info.value)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_mode_changed_after_construction_raises_torchs_error(mode, count_launches):
    theirs, ours = nn.ConvTranspose2d(4, 2, 3), ConvTranspose2d(4, 2, 3)
    converted = convert(nn.Sequential(nn.ConvTranspose2d(4, 2, 3)))[0]
    x = torch.randn(1, 4, 5, 5)
    for module in (theirs, ours):
        module.padding_mode = mode
    expected = _raised(theirs, x)
    assert expected[0] is ValueError
    assert _raised(ours, x) == expected
    # A torch layer changed before convert is swapped (convert succeeds, as torch's layer exists fine), and the
    # swapped layer raises in forward as torch's would.
    changed = nn.Sequential(nn.ConvTranspose2d(4, 2, 3), nn.ReLU())
    changed[0].padding_mode = mode
    assert _raised(convert(changed), x) == expected
    converted.padding_mode = mode
    assert _raised(converted, x) == expected
    assert count_launches() == 0
