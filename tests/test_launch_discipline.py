"""Launch discipline a GPU user relies on, checked on the CPU with the CUDA calls stood in for: every launch runs
under its tensors' device (Triton launches on the *current* device and its current stream), and nothing on the
launch path reads a tensor's value back to the host."""

import contextlib

import pytest
import torch

import triton_convt
from triton_convt.launch import configs, kernel_plan


class FakeCuda:
    """Stands in for ``torch.cuda.device`` (the current device, as Triton reads it when it launches)."""

    def __init__(self):
        self.current = 0
        self.entered = []

    @contextlib.contextmanager
    def device(self, device):
        self.entered.append(torch.device(device))
        before, self.current = self.current, torch.device(device).index
        try:
            yield
        finally:
            self.current = before


@pytest.fixture
def fake_cuda(monkeypatch):
    fake = FakeCuda()
    monkeypatch.setattr(torch.cuda, "device", fake.device)
    return fake


class RecordingKernel:
    """A kernel stand-in: ``kernel[grid](**args)`` records the device that is current when it is launched."""

    def __init__(self, cuda: FakeCuda):
        self.cuda, self.launched_on = cuda, []

    def __getitem__(self, grid):
        return lambda **args: self.launched_on.append(self.cuda.current)


def test_the_guard_makes_the_tensors_device_current_and_restores_it(fake_cuda):
    with kernel_plan.device_guard(torch.device("cuda", 1)):
        assert fake_cuda.current == 1
    assert fake_cuda.current == 0 and fake_cuda.entered == [torch.device("cuda", 1)]
    with kernel_plan.device_guard(torch.device("cpu")), kernel_plan.device_guard(torch.device("meta")):
        pass
    assert fake_cuda.entered == [torch.device("cuda", 1)]  # nothing to guard off CUDA


def test_a_plan_launches_under_its_tensors_device(fake_cuda, monkeypatch):
    # A plan whose tensors live on cuda:1 while cuda:0 is current: the kernel must see cuda:1 as current.
    kernel = RecordingKernel(fake_cuda)
    plan = kernel_plan.KernelPlan(kernel, (1,), {"x_ptr": torch.empty(1, device="meta"), "N": 1}, 4, 1)
    monkeypatch.setattr(kernel_plan.KernelPlan, "device", property(lambda self: torch.device("cuda", 1)))
    plan.launch()
    assert kernel.launched_on == [1] and fake_cuda.current == 0


def test_every_launch_of_a_call_goes_through_the_guard(monkeypatch, count_launches):
    # The whole path, forward and backward, on CPU tensors: every launch enters the guard with the tensors' device.
    seen = []
    real = kernel_plan.device_guard
    monkeypatch.setattr(kernel_plan, "device_guard", lambda device: seen.append(device) or real(device))
    x = torch.randn(1, 4, 3, 3, requires_grad=True)
    w = torch.randn(4, 2, 3, 3, requires_grad=True)
    b = torch.randn(2, requires_grad=True)
    triton_convt.conv_transpose2d(x, w, b, stride=2, activation="gelu").sum().backward()
    assert len(seen) == count_launches() >= 4 and set(seen) == {x.device}


def test_tuning_benchmarks_under_the_tensors_device(fake_cuda, monkeypatch):
    kernel = RecordingKernel(fake_cuda)
    plans = [kernel_plan.KernelPlan(kernel, (1,), {"x_ptr": torch.empty(1, device="meta"), "BLOCK_M": m}, 4, 1)
             for m in (16, 32)]  # fmt: skip
    monkeypatch.setattr(kernel_plan.KernelPlan, "device", property(lambda self: torch.device("cuda", 1)))

    def autotune(configs, key):
        def wrap(fn):
            class Tuner:
                best_config = configs[1]

                def __getitem__(self, grid):
                    return lambda **args: fn[grid](**args)

            return Tuner()

        return wrap

    assert configs.autotune_plans(plans, autotune) == 1
    assert kernel.launched_on == [1]


def test_no_call_reads_a_value_back_on_a_non_cpu_device(monkeypatch):
    """``Tensor.item``/``bool``/``tolist`` on a device tensor synchronise; the planning of a CUDA call must make
    none. Meta tensors stand in for CUDA ones: reading one raises, so any read fails the plan."""
    from triton_convt.functional.conv_transpose import check_call
    from triton_convt.launch import conv_transpose_bwd, conv_transpose_fwd

    x = torch.empty(2, 8, 5, 5, device="meta")
    w = torch.empty(8, 4, 3, 3, device="meta")
    b = torch.empty(4, device="meta")
    params = check_call(x, w, b, 2, 1, 1, 1, 1)
    y = conv_transpose_fwd.allocate_output(x, w, params)
    assert conv_transpose_fwd.plan(x, w, b, y, params).args["MASK_PRODUCTS"] is False
    conv_transpose_bwd.input_grad_plan(y, w, torch.empty_like(x), params)
    conv_transpose_bwd.weight_grad_plan(x, y, w, params)
    conv_transpose_bwd.bias_grad_plan(y)
