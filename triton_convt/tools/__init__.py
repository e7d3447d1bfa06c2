"""The tools on top of the package; ``import triton_convt`` loads none of them.

Console scripts: ``triton-convt-report`` (:mod:`.report`, the perf report), ``triton-convt-profile`` (:mod:`.profile`,
the static profile: :mod:`.samples` builds each kernel's launch on a sample problem, :mod:`.aot` compiles it for a
GPU target and reads the compiled code), ``triton-convt-tune`` (:mod:`.tune`), ``triton-convt-workmodel``
(:mod:`.workmodel`, issued MACs and bytes per layer), ``triton-convt-demo`` (:mod:`.demo`) and
``triton-convt-gpu-check`` (:mod:`.gpu_check`, the one command for a freshly lent GPU). The layer set is data
(``layers.json``, read by :mod:`.layers`); :mod:`.checking` holds the reference and tolerances they check against
and :mod:`.cli` what their command lines share.
"""
