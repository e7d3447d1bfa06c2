"""The perf report: triton_convt against cuDNN on real decoder layers (a GPU), or its CPU evidence (no GPU).

``triton-convt-report`` (:mod:`.cli`); the layers are :mod:`triton_convt.tools.layers`. The parts: :mod:`.rows` (the
row vocabulary every part shares), :mod:`.gpu` (implementations, checking and timing on a CUDA GPU), :mod:`.cpu`
(interpreter checks, the roofline model and the static profile, without a GPU) and :mod:`.render` (CSV, JSON, plots,
summary).
"""
