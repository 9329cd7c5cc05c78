"""BatchNorm whose statistics span every process of a data-parallel job, on the CPU too.

With DistributedDataParallel each process sees its shard of the global batch; a plain
BatchNorm would normalise each shard with its own mean and variance, so N processes would
compute another function than one process with the whole batch (and noisier statistics
for small shards). Synchronised BatchNorm (Ioffe and Szegedy 2015 statistics, taken over
the global batch; Peng et al. 2018, MegDet, for the cross-GPU version) all-reduces the
per-channel sums instead. torch ships it for GPUs only (`torch.nn.SyncBatchNorm`, which
DistributedDataParallel refuses on the CPU), so the CPU path (gloo) is written here.

Tested in tests/test_syncbn.py: across 2 gloo processes with unequal shards (one of them
empty), outputs, input and parameter gradients and running statistics equal one
`torch.nn.BatchNorm2d` over the whole batch, in float64.
"""

import torch
import torch.distributed as dist


def _world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


class _AllReduce(torch.autograd.Function):
    """Sum over ranks whose backward is the sum over ranks of the gradients: each rank's
    loss depends on every rank's input through the sum (torch.distributed.nn's all_reduce,
    whose public name is deprecated)."""

    @staticmethod
    def forward(ctx, x):
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        return _AllReduce.apply(grad)


class SyncBatchNorm(torch.nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of every rank's batch together, for
    the CPU (torch.nn.SyncBatchNorm runs on GPUs only, and DDP refuses it on the CPU): the
    per-channel mean and biased variance come from two all-reduces of sums whose backward
    all-reduces the gradients, as torch's CUDA kernels do. Eval mode and one process
    use BatchNorm2d's own forward."""

    def forward(self, x):
        if not self.training or _world_size() == 1:
            return super().forward(x)
        c = x.shape[1]  # x (B, C, H, W); B may differ between ranks, and may be 0.
        count = x.new_full((1,), x.numel() / c)
        total = _AllReduce.apply(torch.cat([x.sum((0, 2, 3)), count]))  # (C + 1,)
        n = total[c]  # Every rank's B * H * W.
        xm = x - (total[:c] / n)[None, :, None, None]
        var = _AllReduce.apply((xm * xm).sum((0, 2, 3))) / n  # (C,) two-pass, as torch's
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            m = self.momentum if self.momentum is not None else 1 / int(self.num_batches_tracked)
            self.running_mean.lerp_(total[:c] / n, m)
            self.running_var.lerp_(var * n / (n - 1), m)  # Unbiased, as torch keeps it.
        y = xm * torch.rsqrt(var + self.eps)[None, :, None, None]
        return y * self.weight[None, :, None, None] + self.bias[None, :, None, None]


def convert_sync_batchnorm(model, device):
    """Every BatchNorm of `model` synchronised over the ranks: on CUDA by torch's
    `torch.nn.SyncBatchNorm.convert_sync_batchnorm`; on the CPU each BatchNorm2d becomes a
    `SyncBatchNorm` (a subclass with no state of its own: state_dict keys stay BatchNorm2d's
    and checkpoints load into a plain model)."""
    if torch.device(device).type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for module in model.modules():
        if type(module) is torch.nn.BatchNorm2d:
            module.__class__ = SyncBatchNorm
    return model
