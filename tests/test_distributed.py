"""Data-parallel training of a converted decoder: two processes of DDP (gloo, CPU, the kernels under the Triton
interpreter) train for two SGD steps, and their gradients and weights equal one process's on the joined batches;
each forward is one launch per transposed convolution. The same for FSDP2 (``fully_shard``), which hands each
forward the unsharded weights in torch's layout (two launches per layer) and must shard before ``convert``
(it refuses parameters that are not contiguous).

Both runs share one pair of processes (:mod:`distributed_worker`), started once for this module with a bounded
wall time.
"""

import os
import subprocess
import sys
from pathlib import Path

import distributed_worker as worker
import pytest
import torch
from helpers import assert_close_to_reference, forward_launches

pytestmark = pytest.mark.interpreter_only  # the ranks run the interpreter on CPU tensors

WORLD = 2
#: Wall-time bound of the two ranks together (they take well under a minute on an idle 2-core machine).
TIMEOUT_S = 300


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    """What each rank saved (:func:`distributed_worker.main`)."""
    folder = tmp_path_factory.mktemp("distributed")
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    procs = [
        subprocess.Popen([sys.executable, worker.__file__, str(rank), str(WORLD), str(folder / "store"),
                          str(folder / f"rank{rank}.pt")], env=env, cwd=Path(worker.__file__).parent,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for rank in range(WORLD)
    ]  # fmt: skip
    try:
        logs = [proc.communicate(timeout=TIMEOUT_S)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for rank, (proc, log) in enumerate(zip(procs, logs)):
        assert proc.returncode == 0, f"rank {rank} failed:\n{log[-4000:]}"
    return [torch.load(folder / f"rank{rank}.pt", weights_only=False) for rank in range(WORLD)]


@pytest.fixture(scope="module")
def single_process() -> dict:
    """torch's own modules trained on the joined batches in one process: what the ranks' averaged gradients give."""
    model = worker.decoder()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for x in worker.batches(WORLD):
        optimizer.zero_grad()
        model(x).square().mean().backward()
        optimizer.step()
    return {"grads": [p.grad.detach() for p in model.parameters()], "weights": [p.detach() for p in model.parameters()]}


def assert_matches(result: dict, single_process: dict) -> None:
    for key in ("grads", "weights"):
        assert len(result[key]) == len(single_process[key])
        for ours, theirs in zip(result[key], single_process[key]):
            assert ours.shape == theirs.shape
            assert_close_to_reference(ours, theirs)


def test_ddp_matches_one_process_in_one_launch_per_layer(ranks, single_process):
    for rank in ranks:
        ddp = rank["ddp"]
        assert_matches(ddp, single_process)
        assert ddp["launches"] == [2] * worker.STEPS  # two transposed convolutions, one launch each
        assert ddp["grad_strides_match"]  # the weight gradient in the weight's strides: DDP's buckets take it as is
        assert not [w for w in rank["warnings"] if "stride" in w], rank["warnings"]


def test_fsdp2_matches_one_process(ranks, single_process):
    for rank in ranks:
        fsdp2 = rank["fsdp2"]
        if "unavailable" in fsdp2:
            pytest.skip(f"the installed torch has no FSDP2: {fsdp2['unavailable']}")
        assert_matches(fsdp2, single_process)
        for launches, strides in zip(fsdp2["launches"], fsdp2["strides"]):
            assert len(strides) == 2
            # FSDP2's unsharded weights are contiguous views of its all-gather buffer: a copy launch per layer.
            assert launches == sum(forward_launches(torch.empty_strided(shape, stride)) for shape, stride in strides)
