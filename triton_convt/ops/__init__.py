"""The ``torch.library`` ops (``torch.ops.triton_convt.*``) and their autograd, one file per op family.

Importing this package registers them, each family through :func:`.family.register` from a small description
(:class:`.family.OpFamily`): a new op family describes itself there rather than copying a registration. They take
validated, normalised arguments: call them through the functional API (:mod:`triton_convt.functional`), which
checks and prepares every call.
"""

from . import conv_pixel_shuffle, conv_transpose, upsample_conv
from .dispatch import TorchFallbackWarning

__all__ = ["TorchFallbackWarning", "conv_pixel_shuffle", "conv_transpose", "upsample_conv"]
