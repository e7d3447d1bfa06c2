"""Launch planning: from a validated call to kernel launches.

Shape and phase arithmetic (:mod:`.shapes`, plain Python), weight handling (:mod:`.weights`), config choice from
``autotune_configs/`` (:mod:`.configs`), and per op family the plans of its kernels (grid, arguments, warps,
stages) and their launch: :mod:`.conv_transpose_fwd` and :mod:`.conv_transpose_bwd`. :mod:`.kernel_plan` holds what
every launch shares. Nothing here validates user input: the functional API (:mod:`triton_convt.functional`) has done
that.
"""

from .kernel_plan import KernelPlan, interpreter_active, launch_count

__all__ = ["KernelPlan", "interpreter_active", "launch_count"]
