r"""The memory-based softmax loss (paper Eq. 2) and its memory update.

A memory :math:`V \in \mathbb{R}^{K \times d}` holds one unit vector per
cluster. For the embedding :math:`v` of a sample with pseudo label :math:`y`,

.. math::

    p(y \mid v) = \frac{\exp(V_y^\top v / \tau)}{\sum_{k=1}^{K} \exp(V_k^\top v / \tau)},
    \qquad \ell = -\log p(y \mid v), \qquad \tau = 0.1,

and after each sample :math:`V_y \leftarrow \mathrm{normalise}(m V_y + (1 - m) v)`
with :math:`m = 0.5`. As in BUC's code (an autograd function whose backward
pass updates the memory), the logits of a whole batch use the memory as it was
before the batch, and the updates are then applied one sample after another,
in batch order: two samples of the same label in one batch update its row
twice, the second on top of the first.
"""

from numbers import Integral, Real

import torch
import torch.nn.functional as F

from ..utils._sklearn import Interval, StrOptions, validate_params
from ..utils._validation import check_tensor

MEMORY_INITS = ("mean", "zeros")


def _check_batch(features, labels, memory=None):
    """Shapes of a batch: (n, d) features, (n,) integer labels, (K, d) memory.

    Reads no data (no device synchronisation): labels out of range are left to
    the indexing, which reports them.
    """
    check_tensor(features, "features", ndim=2, floating=True)
    check_tensor(labels, "labels", ndim=1, floating=False)
    if labels.shape[0] != features.shape[0]:
        raise ValueError(
            f"labels has {labels.shape[0]} entries but features has {features.shape[0]} "
            "rows."
        )
    if memory is not None:
        check_tensor(memory, "memory", ndim=2, floating=True)
        if memory.shape[1] != features.shape[1]:
            raise ValueError(
                f"memory has {memory.shape[1]} columns but features has "
                f"{features.shape[1]} (shapes {tuple(memory.shape)} and "
                f"{tuple(features.shape)})."
            )


#: the parameters of a memory loss and of a memory update (both losses' own)
LOSS_CONSTRAINTS = {
    "features": [torch.Tensor],
    "labels": [torch.Tensor],
    "memory": [torch.Tensor],
    "temperature": [Interval(Real, 0, None, closed="neither")],
}
UPDATE_CONSTRAINTS = {
    "memory": [torch.Tensor],
    "features": [torch.Tensor],
    "labels": [torch.Tensor],
    "momentum": [Interval(Real, 0, 1, closed="both")],
}


@validate_params(
    {
        "features": [torch.Tensor],
        "labels": [torch.Tensor],
        "n_classes": [Interval(Integral, 1, None, closed="left")],
        "mode": [StrOptions(set(MEMORY_INITS))],
    },
    prefer_skip_nested_validation=True,
)
def init_memory(features, labels, n_classes, mode="mean"):
    """The memory at the start of a fit: ``(n_classes, d)``.

    Parameters
    ----------
    features : torch.Tensor of shape (n_samples, d)
        Embeddings of the training images (eval mode).
    labels : torch.Tensor of shape (n_samples,), dtype long
        Pseudo labels in ``0..n_classes-1``.
    n_classes : int
    mode : {"mean", "zeros"}
        ``"mean"``: each row is its cluster's mean feature, L2-normalised;
        ``"zeros"``: all zeros (BUC's fixed code; the first update of a row
        then sets it to its first sample's normalised feature).

    Returns
    -------
    memory : torch.Tensor of shape (n_classes, d), float32, on the features' device

    Examples
    --------
    >>> import torch
    >>> from sklearn_ecluster.feature_extraction import init_memory
    >>> features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    >>> init_memory(features, torch.tensor([0, 0, 1]), 2)
    tensor([[0.7071, 0.7071],
            [0.0000, 1.0000]])
    """
    _check_batch(features, labels)
    memory = torch.zeros(n_classes, features.shape[1], dtype=torch.float32,
                         device=features.device)
    if mode == "mean":
        memory.index_add_(0, labels, features.float())
        memory = F.normalize(memory, dim=1)
    return memory


@validate_params(LOSS_CONSTRAINTS, prefer_skip_nested_validation=True)
def memory_loss(features, labels, memory, temperature=0.1):
    """Mean cross-entropy of ``softmax(features @ memory.T / temperature)`` (Eq. 2).

    The memory is a constant here (no gradient flows into it); it must not be
    updated before the backward pass of this loss (autograd keeps it).

    Parameters
    ----------
    features : torch.Tensor of shape (batch, d)
        Embeddings ``v`` of the batch (train mode).
    labels : torch.Tensor of shape (batch,), dtype long
        Pseudo labels, rows of ``memory``.
    memory : torch.Tensor of shape (K, d)
        The cluster memory ``V``.
    temperature : float, default=0.1
        ``tau``.

    Returns
    -------
    loss : torch.Tensor
        A scalar.

    Examples
    --------
    >>> import torch
    >>> from sklearn_ecluster.feature_extraction import memory_loss
    >>> memory = torch.eye(2)
    >>> loss = memory_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([0]), memory)
    >>> round(float(loss), 6)  # -log(e^10 / (e^10 + e^0))
    4.5e-05
    """
    _check_batch(features, labels, memory)
    logits = features @ memory.t() / temperature
    return F.cross_entropy(logits, labels)


def _occurrence_rank(labels):
    """For each sample, how many earlier samples of the batch have its label."""
    sorted_labels, order = torch.sort(labels, stable=True)
    _, counts = torch.unique_consecutive(sorted_labels, return_counts=True)
    starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    rank = torch.empty_like(labels)
    rank[order] = torch.arange(labels.numel(), device=labels.device) - starts
    return rank


@validate_params(UPDATE_CONSTRAINTS, prefer_skip_nested_validation=True)
@torch.no_grad()
def update_memory(memory, features, labels, momentum=0.5):
    """Update ``memory`` in place, sample after sample in batch order.

    ``V_y <- normalise(momentum * V_y + (1 - momentum) * v)`` for each ``(v, y)``
    of the batch, in order. Samples are processed in rounds by their rank among
    the earlier samples of the same label, so each round touches distinct rows
    (a vectorised update) and the result equals the sequential one.

    Parameters
    ----------
    memory : torch.Tensor of shape (K, d)
    features : torch.Tensor of shape (batch, d)
    labels : torch.Tensor of shape (batch,), dtype long
    momentum : float in [0, 1]

    Returns
    -------
    memory : torch.Tensor
        The same tensor, updated.

    Examples
    --------
    >>> import torch
    >>> from sklearn_ecluster.feature_extraction import update_memory
    >>> memory = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> update_memory(memory, torch.tensor([[0.0, 1.0]]), torch.tensor([0]))
    tensor([[0.7071, 0.7071],
            [0.0000, 1.0000]])
    """
    _check_batch(features, labels, memory)
    labels = labels.long()
    features = features.to(memory.dtype)
    rank = _occurrence_rank(labels)
    for r in range(int(rank.max()) + 1 if labels.numel() else 0):
        take = rank == r
        rows = labels[take]  # distinct within a round
        memory[rows] = F.normalize(
            momentum * memory[rows] + (1.0 - momentum) * features[take], dim=1
        )
    return memory
