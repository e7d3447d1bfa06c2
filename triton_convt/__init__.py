"""triton_convt: Triton kernels for PyTorch's transposed convolution (``nn.ConvTranspose1d/2d/3d``), for
nearest-upsample + conv (``upsample_conv2d``, ``UpsampleConv2d``) folded into one, and for conv2d + pixel_shuffle
(``conv2d_pixel_shuffle``, ``PixelShuffleConv2d``) in one launch.

The data path, top down: :mod:`triton_convt.modules` (the nn module) and :mod:`triton_convt.converter`
(``convert``) -> :mod:`triton_convt.functional` (the public functional API: argument normalisation and validation)
-> :mod:`triton_convt.ops` (the ``torch.library`` ops and their autograd) -> :mod:`triton_convt.launch` (launch
planning: shape and phase arithmetic, weight handling, config choice, grid, launch) -> :mod:`triton_convt.kernels`
(the ``@triton.jit`` kernels, with the epilogue). The modules own their weight in the kernel's layout
(:mod:`triton_convt.owned_layout`); :func:`freeze` computes derived weights once for inference
(:mod:`triton_convt.freezing`). The tools (report, static profile, tuning, work model, demo)
live in :mod:`triton_convt.tools`, which importing this package does not load.
"""

from .activations import ACTIVATIONS
from .converter import convert
from .freezing import freeze, unfreeze
from .functional import conv2d_pixel_shuffle, conv_transpose1d, conv_transpose2d, conv_transpose3d, upsample_conv2d
from .modules import ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from .pixel_shuffle_modules import PixelShuffleConv2d
from .upsample_modules import UpsampleConv2d

__version__ = "0.1.0"
__all__ = [
    "ACTIVATIONS",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "PixelShuffleConv2d",
    "UpsampleConv2d",
    "conv2d_pixel_shuffle",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "convert",
    "freeze",
    "unfreeze",
    "upsample_conv2d",
]
