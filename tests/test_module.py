"""The drop-in module and ``convert`` on small real decoders."""

import pytest
import torch
from helpers import assert_close_to_reference
from torch import nn

import triton_convt
from triton_convt import ConvTranspose2d, convert

# fmt: off
ARGS = dict(in_channels=6, out_channels=4, kernel_size=(3, 4), stride=2, padding=1, output_padding=1, groups=2,
            dilation=(1, 2))
# fmt: on


def twins(**extra):
    """torch's module and ours, built from the same seed."""
    torch.manual_seed(1)
    theirs = nn.ConvTranspose2d(**ARGS)
    torch.manual_seed(1)
    ours = ConvTranspose2d(**ARGS, **extra)
    return theirs, ours


def test_same_initialisation_and_state_dict_both_ways():
    theirs, ours = twins()
    assert isinstance(ours, nn.ConvTranspose2d)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value)
    fresh_theirs, fresh_ours = nn.ConvTranspose2d(**ARGS), ConvTranspose2d(**ARGS)
    fresh_ours.load_state_dict(theirs.state_dict())
    fresh_theirs.load_state_dict(ours.state_dict())
    assert torch.equal(fresh_ours.weight, theirs.weight) and torch.equal(fresh_theirs.bias, ours.bias)


@pytest.mark.parametrize(
    "shape, output_size",
    [((2, 6, 5, 4), None), ((6, 5, 4), None), ((2, 6, 5, 4), (10, 12))],
    ids=["batched", "unbatched", "output-size"],
)
def test_forward_matches_torch_module(shape, output_size, count_launches):
    theirs, ours = twins()
    x = torch.randn(shape)
    with torch.no_grad():
        y = ours(x, output_size=output_size)
        expected = theirs.double()(x.double(), output_size=output_size)
    assert count_launches() == 1  # the module owns its weight in the kernel's layout
    assert_close_to_reference(y, expected)


def test_activation_is_fused_and_shown(count_launches):
    theirs, ours = twins(activation="leaky_relu", negative_slope=0.2)
    assert "activation='leaky_relu', negative_slope=0.2" in repr(ours)
    assert repr(ConvTranspose2d(**ARGS)) == repr(nn.ConvTranspose2d(**ARGS))  # no activation: nothing added
    x = torch.randn(2, 6, 5, 4)
    with torch.no_grad():
        y = ours(x)
        expected = nn.functional.leaky_relu(theirs.double()(x.double()), 0.2)
    assert count_launches() == 1  # the module owns its weight in the kernel's layout
    assert_close_to_reference(y, expected)


def test_constructor_errors_match_torch():
    with pytest.raises(ValueError, match="zeros"):
        ConvTranspose2d(4, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="unknown activation"):
        ConvTranspose2d(4, 4, 3, activation="mish")


def test_from_torch_shares_parameters():
    theirs = nn.ConvTranspose2d(**ARGS).eval()
    ours = ConvTranspose2d.from_torch(theirs, activation="tanh")
    assert ours.weight is theirs.weight and ours.bias is theirs.bias  # re-laid in place, shared
    assert not ours.training and ours.activation == "tanh"
    assert ours.kernel_size == theirs.kernel_size and ours.dilation == theirs.dilation


class LayerNorm2d(nn.Module):
    """SAM's channel LayerNorm for NCHW tensors."""

    def __init__(self, channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


def dcgan_generator(nz=8, ngf=4):
    return nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, 3, 4, 2, 1, bias=False), nn.Tanh(),
    )  # fmt: skip


def sam_mask_upscaler(dim=16):
    return nn.Sequential(
        nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2), LayerNorm2d(dim // 4), nn.GELU(),
        nn.ConvTranspose2d(dim // 4, dim // 8, kernel_size=2, stride=2), nn.GELU(),
    )  # fmt: skip


class UNetUp(nn.Module):
    """pix2pix/UNet decoder block: upsample, concatenate the skip connection, convolve."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.up = nn.ConvTranspose2d(c_in, c_out, kernel_size=2, stride=2)
        self.conv = nn.Sequential(nn.Conv2d(2 * c_out, c_out, 3, padding=1), nn.ReLU())

    def forward(self, x, skip):
        return self.conv(torch.cat([self.up(x), skip], dim=1))


def randomise_norms(model):
    """BatchNorm with non-trivial running statistics, so that a wrong fold would show."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize(
    "name, make, inputs, folded",
    [
        ("dcgan", lambda: randomise_norms(dcgan_generator()), lambda: (torch.randn(2, 8, 1, 1),), ["tanh"]),
        ("sam-upscaler", sam_mask_upscaler, lambda: (torch.randn(1, 16, 4, 4),), ["gelu"]),
        ("unet-up", lambda: UNetUp(8, 4), lambda: (torch.randn(2, 8, 3, 3), torch.randn(2, 4, 6, 6)), []),
    ],
)
def test_convert_keeps_outputs_one_launch_per_layer(name, make, inputs, folded, count_launches):
    torch.manual_seed(2)
    model = make()
    args = inputs()
    with torch.no_grad():
        expected = model.double()(*[a.double() for a in args])
        model.float()
        layers = sum(type(m) is nn.ConvTranspose2d for m in model.modules())
        assert convert(model) is model
        ours = [m for m in model.modules() if isinstance(m, ConvTranspose2d)]
        assert len(ours) == layers and not any(type(m) is nn.ConvTranspose2d for m in model.modules())
        assert [m.activation for m in ours if m.activation] == folded
        y = model(*args)
    assert count_launches() == len(ours)  # one per layer
    assert_close_to_reference(y, expected)


def test_convert_folds_every_foldable_activation():
    acts = [nn.ReLU(), nn.LeakyReLU(0.3), nn.GELU(), nn.GELU(approximate="tanh"), nn.SiLU(), nn.Sigmoid(), nn.Tanh()]
    for act, name in zip(acts, ["relu", "leaky_relu", "gelu", "gelu_tanh", "silu", "sigmoid", "tanh"]):
        seq = convert(nn.Sequential(nn.ConvTranspose2d(2, 2, 2, 2), act))
        assert seq[0].activation == name and isinstance(seq[1], nn.Identity)
    assert convert(nn.Sequential(nn.ConvTranspose2d(2, 2, 2, 2), nn.LeakyReLU(0.3)))[0].negative_slope == 0.3
    kept = convert(nn.Sequential(nn.ConvTranspose2d(2, 2, 2, 2), nn.BatchNorm2d(2), nn.ReLU()))
    assert kept[0].activation is None and isinstance(kept[2], nn.ReLU)


def test_convert_of_a_bare_layer_returns_the_replacement():
    layer = nn.ConvTranspose2d(2, 3, 2, 2)
    converted = triton_convt.convert(layer)
    assert isinstance(converted, ConvTranspose2d) and converted is layer  # adopted in place
