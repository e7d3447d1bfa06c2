"""Weight handling before a launch: which kernel variant a weight needs.

Today that is one question, whether every weight is finite (non-finite weights need the kernel variant that masks
each tap's product to its in-range rows, so that NaN and inf land where torch's CPU result has them). Weight layout
conversion and the folded weights of fused ops belong here too.
"""

from __future__ import annotations

import weakref

import torch

# id(weight) -> (weak reference to it, its _version, whether it was finite). Not a WeakKeyDictionary: that compares
# keys with ==, which a tensor answers elementwise.
_finite_weights: dict[int, tuple[weakref.ref, int, bool]] = {}


def weights_finite(weight: torch.Tensor) -> bool:
    """Whether every weight is finite, computed once per version of ``weight`` (a module's weight changes
    version at each optimizer step, a frozen model's never), so that finite weights keep the plain kernel.

    On a GPU the first call per version waits for one reduction over the weights.
    """
    if weight.device.type == "meta":  # no values to look at (plans built for shape checks only)
        return True
    seen = _finite_weights.get(id(weight))
    if seen is None or seen[0]() is not weight or seen[1] != weight._version:
        if len(_finite_weights) > 256:  # forget tensors that are gone
            for key in [k for k, v in _finite_weights.items() if v[0]() is None]:
                del _finite_weights[key]
        seen = (weakref.ref(weight), weight._version, bool(torch.isfinite(weight).all()))
        _finite_weights[id(weight)] = seen
    return seen[2]
