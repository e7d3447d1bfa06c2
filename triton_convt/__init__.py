"""triton_convt: Triton kernels for PyTorch's transposed 2-D convolution (``nn.ConvTranspose2d``).

The data path: :mod:`triton_convt.module` (the nn module and ``convert``) -> :mod:`triton_convt.op` (the functional
op) -> :mod:`triton_convt.launcher` (config, grid, launch) -> :mod:`triton_convt.kernels.conv_transpose2d_fwd` (the
phase-decomposed gather kernel) -> :mod:`triton_convt.kernels.epilogue` (bias, activation, cast, store). Shape and
phase arithmetic: :mod:`triton_convt.shapes`.
"""

from .activations import ACTIVATIONS
from .module import ConvTranspose2d, convert
from .op import conv_transpose2d

__version__ = "0.1.0"
__all__ = ["ACTIVATIONS", "ConvTranspose2d", "conv_transpose2d", "convert"]
