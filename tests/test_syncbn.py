"""model.syncbn: BatchNorm over the global batch of 2 gloo processes equals one BatchNorm2d
over the whole batch (the definition it implements), in float64: outputs, gradients of the
input, weight and bias, and running statistics, with unequal shards and an empty one."""

import pytest
import torch
import torch.distributed as dist
from conftest import run_ranks

from pathmnist.model import syncbn

CASES = [(5, 3), (4, 0), (1, 6)]  # Rows of the global batch on rank 0 and rank 1.
C, H, W = 4, 3, 2


def _batch(case):
    g = torch.Generator().manual_seed(sum(case))
    n = sum(case)
    x = torch.randn(n, C, H, W, generator=g, dtype=torch.float64) * 3 + 1
    upstream = torch.randn(n, C, H, W, generator=g, dtype=torch.float64)
    return x, upstream


def _layer():
    bn = torch.nn.BatchNorm2d(C).double()
    with torch.no_grad():
        bn.weight.copy_(torch.linspace(0.5, 2, C))
        bn.bias.copy_(torch.linspace(-1, 1, C))
    return bn


def _reference(case):
    x, upstream = _batch(case)
    x.requires_grad_(True)
    bn = _layer()
    for _ in range(2):  # Two steps: the running statistics move twice.
        y = bn(x)
    (y * upstream).sum().backward()
    return y.detach(), x.grad, bn


def _worker(rank, world, out):
    results = []
    for case in CASES:
        x, upstream = _batch(case)
        start = sum(case[:rank])
        mine = x[start : start + case[rank]].clone().requires_grad_(True)
        bn = syncbn.convert_sync_batchnorm(torch.nn.Sequential(_layer()), "cpu")[0]
        assert type(bn) is syncbn.SyncBatchNorm
        for _ in range(2):
            y = bn(mine)
        (y * upstream[start : start + case[rank]]).sum().backward()
        grads = torch.stack([bn.weight.grad, bn.bias.grad])
        dist.all_reduce(grads)  # What DDP does with parameter gradients (it then averages).
        results.append((y.detach(), mine.grad, grads, bn.running_mean, bn.running_var))
    torch.save(results, out / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("syncbn")
    run_ranks(_worker, 2, out)
    return [torch.load(out / f"rank{r}.pt") for r in range(2)]


@pytest.mark.parametrize("i", range(len(CASES)))
def test_two_ranks_equal_one_batchnorm_over_the_whole_batch(ranks, i):
    y, x_grad, bn = _reference(CASES[i])
    got = [r[i] for r in ranks]
    torch.testing.assert_close(torch.cat([g[0] for g in got]), y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.cat([g[1] for g in got]), x_grad, rtol=1e-10, atol=1e-12)
    expected = torch.stack([bn.weight.grad, bn.bias.grad])
    for g in got:
        torch.testing.assert_close(g[2], expected, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(g[3], bn.running_mean, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(g[4], bn.running_var, rtol=1e-12, atol=1e-12)


def test_one_process_and_eval_mode_are_batchnorm2d():
    """Without a process group, and in eval mode, the layer is BatchNorm2d itself."""
    x, _ = _batch((5, 3))
    plain = _layer()
    synced = syncbn.convert_sync_batchnorm(torch.nn.Sequential(_layer()), "cpu")[0]
    assert torch.equal(synced(x), plain(x))
    assert torch.equal(synced.eval()(x), plain.eval()(x))
    assert synced.state_dict().keys() == plain.state_dict().keys()
