"""Grader for tensor_parallel: Megatron's column- then row-parallel MLP equals the unsharded
block, on one process (summing the shards) and on 2 gloo ranks, against PyTorch's own
ColwiseParallel / RowwiseParallel."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scale_testing import group_fixture, impl_ref, load_impl

from airoad.transformer.char_gpt import MLP

REFERENCE = "airoad.scale.tensor_parallel"

group = group_fixture(2)
WORKER_FIXTURES = ("group",)  # tests using it run code in workers (for tools/mutate.py)


def _mlp(width: int, seed: int) -> MLP:
    torch.manual_seed(seed)
    mlp = MLP(width).double()
    with torch.no_grad():  # non-zero biases, so a bias added twice (or never) shows
        mlp.c_fc.bias.normal_()
        mlp.c_proj.bias.normal_()
    return mlp


def test_shard_bounds_cut_evenly(impl):
    """shard_bounds gives rank r the r-th of N equal contiguous slices; a remainder is a ValueError."""
    assert [impl.shard_bounds(12, r, 3) for r in range(3)] == [(0, 4), (4, 8), (8, 12)]
    assert impl.shard_bounds(8, 0, 1) == (0, 8)
    with pytest.raises(ValueError):
        impl.shard_bounds(10, 0, 3)


def test_shards_hold_column_and_row_slices(impl):
    """Rank r keeps rows r of c_fc (weight and bias), columns r of c_proj, the whole c_proj bias."""
    mlp = _mlp(6, 0)
    shard = impl.ParallelMLP(mlp, 1, 3)  # hidden 24 -> rows 8..16
    torch.testing.assert_close(shard.c_fc.weight, mlp.c_fc.weight[8:16], rtol=0, atol=0)
    torch.testing.assert_close(shard.c_fc.bias, mlp.c_fc.bias[8:16], rtol=0, atol=0)
    torch.testing.assert_close(shard.c_proj_weight, mlp.c_proj.weight[:, 8:16], rtol=0, atol=0)
    torch.testing.assert_close(shard.c_proj_bias, mlp.c_proj.bias, rtol=0, atol=0)
    with torch.no_grad():
        shard.c_proj_weight.add_(1.0)
    assert not torch.equal(mlp.c_proj.weight[:, 8:16], shard.c_proj_weight), "shards must be copies"


@settings(max_examples=12, deadline=None)
@given(world=st.sampled_from([1, 2, 4]), width=st.sampled_from([4, 8]), seed=st.integers(0, 99))
def test_sum_of_shards_equals_unsharded_mlp(impl, world, width, seed):
    """Summing every shard's partial output (+ b2 once) gives the unsharded MLP, values and grads."""
    mlp = _mlp(width, seed)
    shards = [impl.ParallelMLP(mlp, r, world) for r in range(world)]
    x = torch.randn(2, 3, width, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    ours, full = impl.sum_of_shards(x, shards), mlp(x_ref)
    torch.testing.assert_close(ours, full, rtol=1e-12, atol=1e-12, msg="sum of shards != MLP")
    ours.square().sum().backward()
    full.square().sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-12, atol=1e-12, msg="dL/dx differs")
    for r, shard in enumerate(shards):
        lo, hi = r * 4 * width // world, (r + 1) * 4 * width // world
        torch.testing.assert_close(shard.c_fc.weight.grad, mlp.c_fc.weight.grad[lo:hi])
        torch.testing.assert_close(shard.c_proj_weight.grad, mlp.c_proj.weight.grad[:, lo:hi])


def _conjugate_worker(rank, world, ref):
    impl = load_impl(ref)
    x = torch.full((3,), float(rank + 1), dtype=torch.float64, requires_grad=True)
    y = impl.copy_to_parallel(x)
    (y * (rank + 2)).sum().backward()  # each rank's own upstream gradient: rank + 2
    z_in = torch.full((3,), float(rank + 1), dtype=torch.float64, requires_grad=True)
    z = impl.reduce_from_parallel(z_in)
    (z * (rank + 2)).sum().backward()
    return y.detach(), x.grad, z.detach(), z_in.grad


def test_f_and_g_are_conjugate(impl, group):
    """f = copy_to_parallel: identity forward, summed gradient; g = reduce_from_parallel: the reverse."""
    for rank, (y, x_grad, z, z_grad) in enumerate(group.run(_conjugate_worker, impl_ref(impl))):
        torch.testing.assert_close(y, torch.full((3,), rank + 1.0, dtype=torch.float64))
        torch.testing.assert_close(x_grad, torch.full((3,), 5.0, dtype=torch.float64))  # 2 + 3
        torch.testing.assert_close(z, torch.full((3,), 3.0, dtype=torch.float64))  # 1 + 2
        torch.testing.assert_close(z_grad, torch.full((3,), rank + 2.0, dtype=torch.float64))


def _tp_worker(rank, world, ref):
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.parallel import (
        ColwiseParallel,
        RowwiseParallel,
        parallelize_module,
    )

    impl = load_impl(ref)
    mlp = _mlp(8, 3)
    x = torch.randn(2, 5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    shard = impl.ParallelMLP(mlp, rank, world)
    x_ours = x.clone().requires_grad_(True)
    ours = shard(x_ours)
    (ours * torch.arange(8.0, dtype=torch.float64)).sum().backward()
    x_full = x.clone().requires_grad_(True)
    full = mlp(x_full)
    (full * torch.arange(8.0, dtype=torch.float64)).sum().backward()
    lo, hi = rank * 16, (rank + 1) * 16
    plan = {"c_fc": ColwiseParallel(), "c_proj": RowwiseParallel()}
    torch_tp = parallelize_module(_mlp(8, 3), init_device_mesh("cpu", (world,)), plan)
    return {
        "ours": ours.detach(),
        "full": full.detach(),
        "torch_tp": torch.tensor(torch_tp(x).tolist(), dtype=torch.float64),  # a plain tensor
        "x_grad": (x_ours.grad, x_full.grad),
        "fc_grad": (shard.c_fc.weight.grad, mlp.c_fc.weight.grad[lo:hi]),
        "proj_grad": (shard.c_proj_weight.grad, mlp.c_proj.weight.grad[:, lo:hi]),
        "bias_grad": (shard.c_proj_bias.grad, mlp.c_proj.bias.grad),
    }


def test_two_ranks_match_unsharded_and_torch_tp(impl, group):
    """On 2 ranks forward() equals the unsharded MLP and torch's Colwise/RowwiseParallel, grads too."""
    for rank, out in enumerate(group.run(_tp_worker, impl_ref(impl))):
        tol = {"rtol": 1e-12, "atol": 1e-12}
        torch.testing.assert_close(out["ours"], out["full"], **tol, msg=f"rank {rank}: output")
        torch.testing.assert_close(out["ours"], out["torch_tp"].detach(), **tol)
        for key in ("x_grad", "fc_grad", "proj_grad", "bias_grad"):
            ours, expected = out[key]
            torch.testing.assert_close(ours, expected, **tol, msg=f"rank {rank}: {key} differs")
