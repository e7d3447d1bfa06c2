"""``freeze`` and ``unfreeze``: derived weights computed once, for inference, the convention of torch's freezing and
diffusers' ``fuse_qkv_projections``.

A nearest-upsample + conv (:class:`~triton_convt.upsample_modules.UpsampleConv2d`,
:class:`~triton_convt.upsample_modules.FusedUpsample2D`) computes a folded weight from its conv weight on every call:
two launches, with no cache that a weight change could leave stale. :func:`freeze` computes the fold once and keeps
it as a buffer (``folded_weight``, in the kernel's layout, not in ``state_dict``), so each forward is one launch;
``weight`` stays the Parameter that is saved and loaded. The contract (:class:`FoldFreezable`):

* freezing requires eval mode; a frozen module called in training mode, or with grad enabled and a weight that
  requires grad, raises RuntimeError naming :func:`unfreeze` (with grad enabled and only the input or the bias
  requiring grad, the call computes the fold itself, differentiably, as an unfrozen module does);
* what the module can check without reading the weight's values is checked on every call: its version counter
  (optimizer steps, ``copy_``, ``load_state_dict``; inference tensors have none), its storage (``weight.data = t``,
  a new Parameter), dtype, device and shape, and the module's scale, padding, dilation and groups; a change raises
  RuntimeError naming :func:`freeze` (call it again). **A write through ``.data`` after freezing
  (``weight.data.mul_(...)``) is not seen**: the module keeps computing with the fold of the old values. So is a copy
  (``copy.deepcopy``, ``torch.load``), which must be frozen again;
* ``.to(...)``, ``.half()``, ``.cuda()`` (the module's ``_apply``) fold again, from the converted weight;
* under ``torch.compile`` the weight's state is not checked (dynamo cannot trace a data-pointer comparison): the
  compiled call reads the buffer as it is; the mode and grad checks hold there too;
* :func:`unfreeze` drops the buffers: two launches per call again, and training works.

:func:`freeze` also re-lays every module that owns its weight in the kernel's layout
(:class:`~triton_convt.owned_layout.OwnsKernelLayout`: the transposed convolutions) and lost it (FSDP's flat
parameters, a ``weight.data = t`` assignment), so that each is one launch again. Both functions return the model and
are idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .functional.upsample_conv import fold_params
from .ops.upsample_conv import fold
from .owned_layout import OwnsKernelLayout

#: The buffer a frozen module keeps its folded weight in.
FOLDED = "folded_weight"


def freeze(model: nn.Module) -> nn.Module:
    """Compute every derived weight of ``model`` once, for inference; returns ``model``.

    Every :class:`FoldFreezable` module (``UpsampleConv2d``, ``FusedUpsample2D``) keeps its folded weight as a buffer
    (not in ``state_dict``) and runs each forward in one launch; every module that owns its weight in the kernel's
    layout (``ConvTranspose1d/2d/3d``) and lost it is re-laid. RuntimeError, before anything changes, if one of
    those modules is in training mode (``model.eval()`` first). Freezing a frozen model folds again only where the
    weight changed. The contract of a frozen module is in :mod:`triton_convt.freezing`.
    """
    touched = [(name, m) for name, m in model.named_modules() if isinstance(m, (OwnsKernelLayout, FoldFreezable))]
    training = [name or type(m).__name__ for name, m in touched if m.training]
    if training:
        raise RuntimeError(
            f"triton_convt.freeze is for inference and needs eval mode, but {', '.join(training)} is in training "
            "mode: call model.eval() first"
        )
    for _, m in touched:
        if isinstance(m, OwnsKernelLayout):
            m.own_layout()
        if isinstance(m, FoldFreezable):
            m.freeze_fold()
    return model


def unfreeze(model: nn.Module) -> nn.Module:
    """Drop what :func:`freeze` kept: every frozen module computes its folded weight per call again (two launches)
    and can be trained. Returns ``model``; a model that is not frozen is left as it is."""
    for m in model.modules():
        if isinstance(m, FoldFreezable):
            m.unfreeze_fold()
    return model


@dataclass(frozen=True)
class WeightRecord:
    """What a frozen module checks on every call, read without touching the weight's values (no host sync)."""

    version: int | None  #: the version counter; None for an inference tensor, which has none
    data_ptr: int
    dtype: torch.dtype
    device: torch.device
    shape: tuple[int, ...]
    args: tuple  #: the fold's arguments (scale, padding, dilation, groups) as the module holds them

    @classmethod
    def of(cls, weight: torch.Tensor, args: tuple) -> WeightRecord:
        """The record of ``weight`` as it is now, with the fold's arguments ``args``."""
        try:
            version = weight._version
        except RuntimeError:  # "Inference tensors do not track version counter"
            version = None
        return cls(version, weight.data_ptr(), weight.dtype, weight.device, tuple(weight.shape), args)

    def differences(self, other: WeightRecord) -> list[str]:
        """What changed from this record to ``other``, in words."""
        names = {
            "version": "its version counter (an in-place update)",
            "data_ptr": "its storage",
            "dtype": "dtype",
            "device": "device",
            "shape": "shape",
            "args": "the module's scale, padding, dilation or groups",
        }
        return [text for field, text in names.items() if getattr(self, field) != getattr(other, field)]


class FoldFreezable:
    """What :func:`freeze` does to a nearest-upsample + conv module, mixed in before its torch base class. A subclass
    says where its conv weight and fold arguments are (:meth:`fold_source`) and calls :meth:`frozen_fold` at the
    start of its forward."""

    def fold_source(self) -> tuple[torch.Tensor, tuple] | None:
        """``(weight, (scale_factor, padding, dilation, groups))`` the module folds, or None when it has no fold."""
        raise NotImplementedError

    @property
    def frozen(self) -> bool:
        """Whether :func:`freeze` made this module keep its folded weight."""
        return getattr(self, "_frozen_record", None) is not None

    def freeze_fold(self) -> None:
        """Compute the folded weight into the ``folded_weight`` buffer (not persistent) and record the weight's
        state; nothing to do when it is frozen and the weight is unchanged."""
        source = self.fold_source()
        if source is None:
            return
        weight, args = source
        record = WeightRecord.of(weight, args)
        if self.frozen and record == self._frozen_record:
            return
        with torch.no_grad():
            folded = fold(weight.detach(), fold_params(weight, *args))
        self.register_buffer(FOLDED, folded, persistent=False)
        self._frozen_record = WeightRecord.of(weight, args)  # the fold read the weight: nothing else changed it

    def unfreeze_fold(self) -> None:
        """Drop the folded weight and the record (nothing to do when not frozen)."""
        if FOLDED in self._buffers:
            del self._buffers[FOLDED]
        self._frozen_record = None

    def frozen_fold(self, input: torch.Tensor, bias: torch.Tensor | None, args: tuple) -> torch.Tensor | None:
        """The folded weight a frozen module's call with fold arguments ``args`` runs on, or None when the call
        computes the fold itself (not frozen, other arguments than frozen ones, or grad needed through the input or
        the bias only). RuntimeError naming :func:`unfreeze` in training mode or when the weight needs its gradient,
        naming :func:`freeze` when the weight changed since it was frozen."""
        if not self.frozen:
            return None
        name = type(self).__name__
        if self.training:
            raise RuntimeError(
                f"{name} was frozen by triton_convt.freeze (inference only) and is called in training mode: call "
                "triton_convt.unfreeze(model) to train it"
            )
        weight, frozen_args = self.fold_source()
        grad = torch.is_grad_enabled()
        if grad and weight.requires_grad:
            raise RuntimeError(
                f"{name} was frozen by triton_convt.freeze (inference only) and its weight requires grad with grad "
                "enabled: run it under torch.no_grad() or torch.inference_mode(), or call "
                "triton_convt.unfreeze(model) to train it"
            )
        # Not while torch.compile traces: dynamo cannot trace a data-pointer comparison (the mode and grad checks
        # above it guards on).
        if not torch.compiler.is_compiling():
            now = WeightRecord.of(weight, frozen_args)
            if now != self._frozen_record:
                raise RuntimeError(
                    f"{name}'s weight changed since triton_convt.freeze "
                    f"({', '.join(self._frozen_record.differences(now))}): its folded weight is stale; call "
                    "triton_convt.freeze(model) again, or triton_convt.unfreeze(model)"
                )
        if args != frozen_args or (grad and (input.requires_grad or (bias is not None and bias.requires_grad))):
            return None
        return self._buffers[FOLDED]

    def _apply(self, fn, recurse=True):
        # The buffer was converted with the weight, but a fold in another dtype is not the converted fold (the
        # taps' sums round differently): fold again from the converted weight.
        result = super()._apply(fn, recurse)
        if self.frozen:
            self._frozen_record = None
            self.freeze_fold()
        return result
