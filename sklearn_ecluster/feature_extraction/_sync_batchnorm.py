r"""BatchNorm over the global batch of a data-parallel run (synchronised BatchNorm).

Under DistributedDataParallel each rank's BatchNorm would normalise with the
statistics of its own slice of the batch (``B / G`` images): with BUC's batch
of 16 on 4 GPUs, 4 images. Synchronised, every BatchNorm in train mode uses
the mean and variance of the whole global batch, and its backward pass the
sums of the gradients over all ranks, so that the step equals the
single-process step on the same global batch (SPEC 7 and 11 define the
recipes by that batch).

On CUDA this is :class:`torch.nn.SyncBatchNorm`; it accepts only accelerator
tensors, so on the CPU (gloo) :class:`SyncBatchNorm` below does the same with
one all-reduce of the per-channel sums in the forward pass and one in the
backward pass:

.. math::

    \mu = \frac{1}{N} \sum_{\text{ranks}} \sum_i x_i, \qquad
    \sigma^2 = \frac{1}{N} \sum_{\text{ranks}} \sum_i x_i^2 - \mu^2, \qquad
    \frac{\partial \ell}{\partial x_i} = \frac{1}{\sigma}\Big(g_i - \bar g
    - \hat x_i\, \overline{g \hat x}\Big),

with :math:`N` the global batch (times the spatial size), :math:`g` the
gradient at the normalised :math:`\hat x` and the bars means over the global
batch; the sums are accumulated in float64. :func:`synchronized_batchnorm`
swaps the BatchNorm layers of a network for synchronised ones that share
their parameters and running statistics, for the time of a fit, and puts the
originals back afterwards: the fitted network holds plain BatchNorm layers,
and pickles and runs in a single process.
"""

import contextlib

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class _GlobalNormalize(torch.autograd.Function):
    """``x -> (x - mu) / sigma`` with the statistics of every rank's ``x``."""

    @staticmethod
    def forward(ctx, x, eps, world):
        channels = x.shape[1]
        dims = [0, *range(2, x.ndim)]
        x64 = x.double()
        local = torch.cat([x64.sum(dims), (x64 * x64).sum(dims),
                           x64.new_tensor([x.numel() // channels])])
        total = world.all_sum(local)
        count = total[-1]
        if float(count) < 2:
            raise ValueError("BatchNorm in train mode needs more than one value per "
                             "channel in the global batch.")
        mean = total[:channels] / count
        var = (total[channels:2 * channels] / count - mean * mean).clamp_min(0)
        invstd = torch.rsqrt(var + eps)
        shape = [1, channels] + [1] * (x.ndim - 2)
        xhat = (x - mean.to(x.dtype).view(shape)) * invstd.to(x.dtype).view(shape)
        ctx.save_for_backward(xhat, invstd.to(x.dtype))
        ctx.world, ctx.count = world, count
        unbiased = var * count / (count - 1)
        ctx.mark_non_differentiable(mean, unbiased)
        return xhat, mean.to(x.dtype), unbiased.to(x.dtype)

    @staticmethod
    def backward(ctx, grad, _grad_mean, _grad_var):
        xhat, invstd = ctx.saved_tensors
        channels = xhat.shape[1]
        dims = [0, *range(2, xhat.ndim)]
        g64 = grad.double()
        total = ctx.world.all_sum(torch.cat([g64.sum(dims),
                                             (g64 * xhat.double()).sum(dims)]))
        shape = [1, channels] + [1] * (xhat.ndim - 2)
        mean_g = (total[:channels] / ctx.count).to(grad.dtype).view(shape)
        mean_gx = (total[channels:] / ctx.count).to(grad.dtype).view(shape)
        grad_x = (grad - mean_g - xhat * mean_gx) * invstd.view(shape)
        return grad_x, None, None


class SyncBatchNorm(_BatchNorm):
    """BatchNorm of any dimension whose train-mode statistics span all ranks.

    Same parameters, buffers and running-statistics update as
    :class:`torch.nn.BatchNorm2d` (unbiased variance in the running
    estimate, ``momentum=None`` for a cumulative average); in eval mode it is
    a plain BatchNorm. Works on any device and backend (used on the CPU, where
    :class:`torch.nn.SyncBatchNorm` does not run).

    Parameters
    ----------
    num_features, eps, momentum, affine, track_running_stats
        As :class:`torch.nn.BatchNorm2d`.
    world : World
        The ranks to synchronise (:func:`~sklearn_ecluster.utils.get_world`).
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, *, world):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.world = world

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (got {input.dim()}-D input)")

    def forward(self, input):
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        batch_stats = self.training or (self.running_mean is None
                                        and self.running_var is None)
        if not batch_stats:
            return F.batch_norm(input, self.running_mean, self.running_var, self.weight,
                                self.bias, False, 0.0, self.eps)
        out, mean, var = _GlobalNormalize.apply(input, self.eps, self.world)
        if self.training and self.running_mean is not None:
            with torch.no_grad():
                self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
                self.running_var.mul_(1 - factor).add_(var, alpha=factor)
        if self.affine:
            shape = [1, input.shape[1]] + [1] * (input.ndim - 2)
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def _synchronised_copy(module, world, device):
    """A synchronised BatchNorm that shares ``module``'s parameters and buffers."""
    args = (module.num_features, module.eps, module.momentum, module.affine,
            module.track_running_stats)
    if device.type == "cuda":
        sync = nn.SyncBatchNorm(*args)
    else:
        sync = SyncBatchNorm(*args, world=world)
    if module.affine:
        sync.weight, sync.bias = module.weight, module.bias
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        setattr(sync, name, getattr(module, name))
    sync.train(module.training)
    return sync.to(device)


@contextlib.contextmanager
def synchronized_batchnorm(network, world, device):
    """For the duration of the block, ``network``'s BatchNorm layers span all ranks.

    Every BatchNorm layer is replaced by a synchronised one sharing its
    weight, bias and running statistics (the same tensors, so an optimiser
    built before keeps working and the originals hold the trained values);
    the originals are put back on exit. Nothing changes with one rank.
    """
    swapped = []
    if world.size > 1:
        for path, module in list(network.named_modules()):
            if not path or not isinstance(module, _BatchNorm) or isinstance(
                    module, nn.SyncBatchNorm | SyncBatchNorm):
                continue
            parent_path, _, attr = path.rpartition(".")
            parent = network.get_submodule(parent_path) if parent_path else network
            setattr(parent, attr, _synchronised_copy(module, world, device))
            swapped.append((parent, attr, module))
    try:
        yield network
    finally:
        for parent, attr, module in reversed(swapped):
            module.train(getattr(parent, attr).training)
            setattr(parent, attr, module)
