r"""The cluster-memory contrastive loss of Cluster-Contrast (Dai et al., ACCV 2022).

A memory :math:`\Phi \in \mathbb{R}^{K \times d}` holds one unit vector per
cluster, set at the start of every fit to the clusters' L2-normalised mean
embedding (images labelled ``-1``, the outliers, are in no cluster). For the
L2-normalised embedding :math:`q` of a sample of cluster :math:`y`, the loss
is the InfoNCE

.. math::

    \ell = -\log \frac{\exp(\Phi_y^\top q / \tau)}{\sum_{k=1}^{K} \exp(\Phi_k^\top q / \tau)},
    \qquad \tau = 0.05,

and after the batch's optimiser step each sample updates its cluster's entry,
one sample after another in batch order (as the authors' code does):
:math:`\Phi_y \leftarrow \mathrm{normalise}(m \Phi_y + (1 - m) q)` with
:math:`m = 0.1`.

It differs from the memory softmax of :mod:`._memory_loss` (paper Eq. 2) in
its constants (:math:`\tau` 0.05 instead of 0.1, :math:`m` 0.1 instead of 0.5)
and in normalising the embedding after the head's dropout, so that logits and
updates use unit vectors.
"""

from numbers import Integral

import torch
import torch.nn.functional as F

from ..utils._sklearn import Interval, validate_params
from ._memory_loss import (
    LOSS_CONSTRAINTS,
    UPDATE_CONSTRAINTS,
    init_memory,
    memory_loss,
    update_memory,
)

#: Cluster-Contrast's temperature and memory momentum.
TEMPERATURE = 0.05
MOMENTUM = 0.1


@validate_params(
    {
        "features": [torch.Tensor],
        "labels": [torch.Tensor],
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def init_cluster_memory(features, labels, n_clusters):
    """One entry per cluster: its L2-normalised mean feature; ``-1`` labels ignored.

    Parameters
    ----------
    features : torch.Tensor of shape (n_samples, d)
    labels : torch.Tensor of shape (n_samples,), dtype long
        Cluster ids in ``0..n_clusters-1``, or ``-1`` for outliers.
    n_clusters : int

    Returns
    -------
    memory : torch.Tensor of shape (n_clusters, d), float32

    Examples
    --------
    >>> import torch
    >>> from sklearn_ecluster.feature_extraction import init_cluster_memory
    >>> features = torch.tensor([[3.0, 0.0], [0.0, 1.0], [0.0, 2.0], [5.0, 5.0]])
    >>> init_cluster_memory(features, torch.tensor([0, 1, 1, -1]), 2)
    tensor([[1., 0.],
            [0., 1.]])
    """
    keep = labels >= 0
    return init_memory(features[keep], labels[keep], n_clusters, mode="mean")


@validate_params(LOSS_CONSTRAINTS, prefer_skip_nested_validation=True)
def cluster_contrast_loss(features, labels, memory, temperature=TEMPERATURE):
    """InfoNCE of the normalised ``features`` against the cluster memory.

    Parameters
    ----------
    features : torch.Tensor of shape (batch, d)
        Embeddings of the batch (train mode); normalised here.
    labels : torch.Tensor of shape (batch,), dtype long
        Cluster ids (rows of ``memory``); no outliers.
    memory : torch.Tensor of shape (K, d)
        Unit cluster centroids; a constant here (no gradient flows into it).
    temperature : float, default=0.05

    Returns
    -------
    loss : torch.Tensor
        The mean over the batch, a scalar.

    Examples
    --------
    >>> import math, torch
    >>> from sklearn_ecluster.feature_extraction import cluster_contrast_loss
    >>> loss = cluster_contrast_loss(torch.tensor([[2.0, 0.0]]), torch.tensor([0]),
    ...                              torch.eye(2))
    >>> round(float(loss), 6) == round(math.log(1 + math.exp(-20)), 6)
    True
    """
    return memory_loss(F.normalize(features, dim=1), labels, memory, temperature)


@torch.no_grad()
@validate_params(UPDATE_CONSTRAINTS, prefer_skip_nested_validation=True)
def update_cluster_memory(memory, features, labels, momentum=MOMENTUM):
    """``memory[y] <- normalise(m memory[y] + (1 - m) normalise(q))``, in batch order.

    Parameters
    ----------
    memory : torch.Tensor of shape (K, d)
        Updated in place.
    features : torch.Tensor of shape (batch, d)
        The batch's embeddings (detached); normalised here.
    labels : torch.Tensor of shape (batch,), dtype long
    momentum : float in [0, 1], default=0.1

    Returns
    -------
    memory : torch.Tensor
        The same tensor.

    Examples
    --------
    >>> import torch
    >>> from sklearn_ecluster.feature_extraction import update_cluster_memory
    >>> memory = torch.tensor([[1.0, 0.0]])
    >>> update_cluster_memory(memory, torch.tensor([[0.0, 5.0]]), torch.tensor([0]),
    ...                       momentum=0.5)
    tensor([[0.7071, 0.7071]])
    """
    return update_memory(memory, F.normalize(features, dim=1), labels, momentum)


#: loss name -> (loss, memory update) used by the training loop
LOSSES = {
    "memory_softmax": (memory_loss, update_memory),
    "cluster_contrast": (cluster_contrast_loss, update_cluster_memory),
}
