"""Modules that own their weight in the kernel's layout: the parameter is stored with the strides the kernel reads in
place (:mod:`triton_convt.launch.weights`), so every forward is one launch, with no derived copy that could go stale.

The weight stays the same ``nn.Parameter`` object with the same shape, values and ``state_dict`` keys: only its
strides differ from torch's default. Re-laying goes through ``param.data``, so an optimizer or a data-parallel wrapper
that already holds the Parameter keeps working. :class:`OwnsKernelLayout` keeps the layout where the module sees a
weight being replaced: at construction, in ``_apply`` (``.to(dtype)``, ``.to(device)``, ``.half()``,
``.to(memory_format=...)``) and in ``load_state_dict(..., assign=True)``. Everything else users do to a weight keeps
its strides by itself: in-place updates (optimizer steps, ``copy_``, ``load_state_dict``'s copy), ``copy.deepcopy``
and ``torch.save``/``torch.load`` (both keep strides), ``requires_grad_``. Where something outside the module lays
the weight out anew (FSDP's flat parameters, a user's ``weight.data = t`` or ``weight = nn.Parameter(t)``), the call
stays correct and costs a copy per call, until :func:`triton_convt.freeze` or the next ``.to(...)`` re-lays it.

Optimizer state is the optimizer's: made after the re-lay it has the parameter's layout (``zeros_like``); made before
it, it keeps torch's, which torch's fused optimizers on CUDA refuse (they require one layout for a parameter, its
gradient and its state). The weight gradient always has the weight's strides (the backward allocates it so).
"""

from __future__ import annotations

import torch

from .launch.weights import to_kernel_layout


class OwnsKernelLayout:
    """Mixed in before a torch module class (``class ConvTranspose2d(..., OwnsKernelLayout, nn.ConvTranspose2d)``):
    the parameters named in :attr:`kernel_layout_params` are kept in the kernel's layout (dimension 1 innermost:
    a transposed convolution's output channels, a convolution's input channels; see
    :mod:`triton_convt.launch.weights`). A module whose kernel wants another layout overrides
    :meth:`to_kernel_layout`; construction, ``_apply``, ``load_state_dict(assign=True)`` and
    :func:`triton_convt.freeze` then keep that one."""

    #: The parameters kept in the kernel's layout.
    kernel_layout_params: tuple[str, ...] = ("weight",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.own_layout()

    @staticmethod
    def to_kernel_layout(t: torch.Tensor) -> torch.Tensor:
        """``t`` in the kernel's layout (``t`` itself when it has it already)."""
        return to_kernel_layout(t)

    def own_layout(self, names: tuple[str, ...] | None = None) -> bool:
        """Re-lay every owned parameter (of ``names``, default all) that lost the kernel's layout, in place
        (``param.data``: the Parameter object is unchanged). Parameters whose data is not a plain tensor (FSDP2's
        sharded DTensors, fake tensors) are left alone: their owner lays them out. Returns whether a parameter was
        re-laid."""
        relaid = False
        for name in self.kernel_layout_params if names is None else names:
            param = self._parameters.get(name)
            if param is None or type(param.data) is not torch.Tensor:
                continue
            laid = self.to_kernel_layout(param.data)
            if laid is not param.data:
                param.data = laid
                relaid = True
        return relaid

    def _apply(self, fn, recurse=True):
        # torch's _apply converts each parameter with preserve_format, which keeps a dense tensor's strides; a
        # conversion that asks for another format (``.to(memory_format=torch.contiguous_format)``) is undone here.
        result = super()._apply(fn, recurse)
        self.own_layout()
        return result

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):  # fmt: skip
        # Loading copies into the parameter (strides kept), except with ``assign=True``, which installs the
        # checkpoint's tensor itself (torch's contiguous layout): that new Parameter is re-laid here. One loaded by
        # copy is left as it is (its data may be a view that a wrapper such as FSDP keeps pointing into).
        before = {name: self._parameters.get(name) for name in self.kernel_layout_params}
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)  # fmt: skip
        self.own_layout(tuple(name for name, p in before.items() if self._parameters.get(name) is not p))
