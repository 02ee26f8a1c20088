"""The state an engine works on: the pair matrix, the per-cluster statistics
and the criterion, with the one update both multi-merge engines use.

The pair values live in :class:`~._pair_matrix.PairMatrix` (SPEC 5) and the
per-cluster statistics in :class:`~._criterion.ClusterStats`; a merge of many
groups at once (a batched step, a round of reciprocal nearest neighbours)
updates both in :meth:`ClusterState.merge_groups`.
"""

import torch

from ._criterion import ClusterStats, merged_moments
from ._pair_matrix import PairMatrix


class ClusterState:
    """Pair matrix + statistics + criterion of the current clusters.

    Attributes
    ----------
    pm : PairMatrix
    stats : ClusterStats
    criterion : Criterion
    """

    def __init__(self, pm, stats, criterion):
        self.pm = pm
        self.stats = stats
        self.criterion = criterion

    @classmethod
    def from_samples(cls, X, leaf_labels, n_leaves, criterion, *, metric, working_memory,
                     singletons, read_only=False):
        """Build the state of the initial clusters ``leaf_labels`` (0..K-1).

        ``read_only``: see :meth:`PairMatrix.from_samples`.
        """
        pm = PairMatrix.from_samples(
            X, None if singletons else leaf_labels, n_leaves, metric=metric,
            reduce=criterion.pair_reduce, working_memory=working_memory,
            read_only=read_only,
        )
        sizes = torch.bincount(leaf_labels, minlength=n_leaves).to(X.dtype)
        stats = ClusterStats(sizes=sizes)
        if criterion.linkage == "energy":
            stats.within = pm.diagonal().clone()
        if criterion.needs_moments:
            n = X.shape[0]
            zero = torch.zeros(n, dtype=torch.float64, device=X.device)
            if singletons:  # a copy: means are updated in place
                stats.means, stats.ssd = X.clone(), zero
            else:  # singletons merged into the initial groups
                ones = torch.ones(n, dtype=X.dtype, device=X.device)
                _, stats.means, stats.ssd = merged_moments(ones, X, zero, leaf_labels,
                                                           n_leaves)
        return cls(pm, stats, criterion)

    @property
    def k(self):
        """Number of live clusters."""
        return self.pm.k

    @property
    def width(self):
        """Number of slots (live or dead) of the pair matrix."""
        return self.pm.width

    def penalty(self):
        """+inf on dead slots (added to both sides of every pair), or None."""
        pm = self.pm
        return pm.penalty() if pm.k < pm.width else None

    def merge_groups(self, root_np):
        """Merge every slot into its group representative ``root_np[slot] <= slot``.

        Returns
        -------
        keep : LongTensor or None
            Slots kept when the pair matrix was compacted (old numbering).
        changed : LongTensor
            Representatives whose cluster changed (old numbering).
        dead : LongTensor
            Slots merged away (old numbering).
        """
        pm, stats = self.pm, self.stats
        dev = stats.sizes.device
        root = torch.as_tensor(root_np, device=dev)
        moved = torch.nonzero(root != torch.arange(pm.width, device=dev)).squeeze(1)
        targets = root[moved]
        keep = pm.merge(root)
        # dead slots keep their old (finite, non-zero) statistics: they are masked
        sizes = stats.sizes.clone().index_add_(0, targets, stats.sizes[moved])
        means, ssd = stats.means, stats.ssd
        if self.criterion.needs_moments and moved.numel():
            # only the groups that changed: O(m d), not O(K d)
            touched = torch.unique(targets)
            members = torch.cat([touched, moved])
            local = torch.searchsorted(touched, root[members])
            _, g_means, g_ssd = merged_moments(
                stats.sizes[members], means[members], ssd[members], local, touched.numel()
            )
            means[touched] = g_means  # in place: the stats own these tensors
            ssd[touched] = g_ssd
        new = ClusterStats(sizes=sizes, ssd=ssd, means=means)
        if keep is not None:
            new = new.select(keep)
        if self.criterion.linkage == "energy":
            new.within = pm.diagonal().clone()
        self.stats = new
        return keep, torch.unique(targets), moved
