"""The public functional API: torch's argument conventions, validated before anything runs, one file per op family.

:mod:`.arguments` holds the normalisation and checks the ops share; :mod:`.conv_transpose` the transposed
convolution, :mod:`.upsample_conv` nearest-upsample + conv (folded into one), :mod:`.conv_pixel_shuffle` conv2d +
pixel_shuffle (one launch).
"""

from .conv_pixel_shuffle import conv2d_pixel_shuffle
from .conv_transpose import conv_transpose1d, conv_transpose2d, conv_transpose3d
from .upsample_conv import upsample_conv2d

__all__ = ["conv2d_pixel_shuffle", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "upsample_conv2d"]
