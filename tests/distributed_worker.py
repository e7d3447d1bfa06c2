"""One rank of ``test_distributed.py``: a two-process gloo group on the CPU, the kernels under the Triton interpreter.

``python distributed_worker.py RANK WORLD STORE_FILE OUT_FILE``: trains :func:`decoder` (converted) for
:data:`STEPS` SGD steps on this rank's share of each joined batch (:func:`batches`), under DDP and then, when the
installed torch has it, FSDP2 (``fully_shard``), and saves to ``OUT_FILE`` what the test compares: the last step's
gradients and the final weights (whole tensors), the launches of each forward and the weight strides each layer saw,
and the warnings raised.
"""

import os
import sys
import warnings

os.environ["TRITON_INTERPRET"] = "1"  # before triton_convt is imported: it defines the kernels
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch import nn  # noqa: E402

STEPS = 2
#: Samples per rank in each step's joined batch.
PER_RANK = 2


class Decoder(nn.Module):
    """A vocoder-like 1-D upsampler feeding a 2-D one, each followed by a foldable activation."""

    def __init__(self):
        super().__init__()
        self.up1 = nn.Sequential(nn.ConvTranspose1d(4, 3, 4, 2, 1), nn.LeakyReLU(0.1))
        self.up2 = nn.Sequential(nn.ConvTranspose2d(3, 2, 3, 2, 1, 1), nn.Tanh())

    def forward(self, x):
        return self.up2(self.up1(x).unsqueeze(2))


def decoder() -> Decoder:
    """The same float64 parameters in every process."""
    torch.manual_seed(0)
    return Decoder().double()


def batches(world: int) -> list[torch.Tensor]:
    """The joined batch of each step (the same in every process); rank r trains on rows [r*PER_RANK, ...)."""
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(world * PER_RANK, 4, 3, dtype=torch.float64, generator=generator) for _ in range(STEPS)]


def train(model: nn.Module, wrapped: nn.Module, rank: int, world: int) -> dict:
    """STEPS SGD steps of ``wrapped`` (the model under its data-parallel wrapper) on this rank's rows; the
    launches of each forward and the weight strides each transposed convolution saw in it."""
    from triton_convt import launch
    from triton_convt.modules import TritonConvTranspose

    seen = []
    for layer in model.modules():
        if isinstance(layer, TritonConvTranspose):
            layer.register_forward_pre_hook(lambda m, args: seen.append((m.weight.shape, m.weight.stride())))
    optimizer = torch.optim.SGD(wrapped.parameters(), lr=0.1)
    launches, strides = [], []
    for x in batches(world):
        optimizer.zero_grad()
        start = launch.launch_count()
        seen.clear()
        y = wrapped(x[rank * PER_RANK : (rank + 1) * PER_RANK])
        launches.append(launch.launch_count() - start)
        strides.append(list(seen))
        y.square().mean().backward()
        optimizer.step()
    return {"launches": launches, "strides": strides}


def whole(t: torch.Tensor) -> torch.Tensor:
    """A parameter or gradient as one plain tensor (FSDP2's are sharded DTensors)."""
    return (t.full_tensor() if hasattr(t, "full_tensor") else t).detach().clone()


def run_ddp(rank: int, world: int) -> dict:
    from torch.nn.parallel import DistributedDataParallel

    import triton_convt

    model = triton_convt.convert(decoder())  # re-lays the weights before DDP builds its buckets
    result = train(model, DistributedDataParallel(model), rank, world)
    result["grads"] = [whole(p.grad) for p in model.parameters()]
    result["weights"] = [whole(p) for p in model.parameters()]
    result["grad_strides_match"] = all(p.grad.stride() == p.stride() for p in model.parameters())
    return result


def run_fsdp2(rank: int, world: int) -> dict:
    """FSDP2 refuses parameters that are not contiguous, so it shards torch's model first; ``convert`` then adopts
    the layers in place, so the references FSDP2 keeps to them stay valid. Each forward gets the unsharded weights
    in torch's layout (two launches per layer)."""
    try:
        from torch.distributed.fsdp import fully_shard
    except ImportError as error:
        return {"unavailable": f"torch.distributed.fsdp.fully_shard: {error}"}
    import triton_convt

    model = decoder()
    fully_shard(model)
    triton_convt.convert(model)
    result = train(model, model, rank, world)
    result["grads"] = [whole(p.grad) for p in model.parameters()]
    result["weights"] = [whole(p) for p in model.parameters()]
    return result


def main(rank: int, world: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results = {"ddp": run_ddp(rank, world), "fsdp2": run_fsdp2(rank, world)}
        results["warnings"] = [str(w.message) for w in caught]
        torch.save(results, out)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
