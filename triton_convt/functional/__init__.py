"""The public functional API: torch's argument conventions, validated before anything runs, one file per op family.

:mod:`.arguments` holds the normalisation and checks the ops share; :mod:`.conv_transpose` the transposed
convolution, :mod:`.upsample_conv` nearest-upsample + conv (folded into one).
"""

from .conv_transpose import conv_transpose1d, conv_transpose2d, conv_transpose3d
from .upsample_conv import upsample_conv2d

__all__ = ["conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "upsample_conv2d"]
