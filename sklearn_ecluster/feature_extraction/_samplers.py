"""Batches of P identities x K images (the "PK" sampler of re-ID training).

Every batch holds ``P`` distinct labels and ``K`` images of each. Labels are
visited in a random order, a new permutation each time all have been used,
so over an epoch every cluster comes up about equally often whatever its size.
A label with fewer than ``K`` images repeats some of them (drawn with
replacement, as Cluster-Contrast's sampler does). With camera ids, the ``K``
images of a label are taken from its cameras in turn (camera-balanced). The
draws come from a local NumPy generator: the global RNGs are not touched.
"""

import numpy as np
from torch.utils.data import Sampler


class PKBatchSampler(Sampler):
    """Index batches of ``n_ids x n_instances`` for a ``DataLoader(batch_sampler=...)``.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
        Non-negative labels of the training images.
    n_instances : int
        ``K``, images per label in a batch.
    batch_size : int
        ``P * K``; ``P = batch_size // n_instances`` (at most the number of
        distinct labels).
    n_batches : int or None
        Batches per epoch; None: ``max(1, n_samples // batch_size)``.
    camids : array-like of shape (n_samples,) or None
        Camera ids: each label's ``K`` images are drawn from its cameras in
        turn.
    seed : int
        Seed of the local generator; each epoch continues its stream.

    Examples
    --------
    >>> from sklearn_ecluster.feature_extraction._samplers import PKBatchSampler
    >>> sampler = PKBatchSampler([0, 0, 1, 1, 2, 2], n_instances=2, batch_size=4,
    ...                          n_batches=3, seed=0)
    >>> [len(batch) for batch in sampler]
    [4, 4, 4]
    """

    def __init__(self, labels, n_instances, batch_size, n_batches=None, camids=None,
                 seed=0):
        labels = np.asarray(labels)
        self.ids, inverse = np.unique(labels, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        self.members = np.split(order, np.cumsum(np.bincount(inverse))[:-1])
        self.camids = None if camids is None else np.asarray(camids)
        self.n_instances = int(n_instances)
        self.n_ids = max(1, min(int(batch_size) // self.n_instances, len(self.ids)))
        self.n_batches = (max(1, len(labels) // int(batch_size)) if n_batches is None
                          else int(n_batches))
        self.rng = np.random.default_rng(seed)
        self._queue = np.empty(0, dtype=np.int64)

    def __len__(self):
        return self.n_batches

    def _next_ids(self):
        """``P`` distinct label positions, continuing a stream of permutations."""
        taken = self._queue[:self.n_ids]
        self._queue = self._queue[self.n_ids:]
        while len(taken) < self.n_ids:
            fresh = self.rng.permutation(len(self.ids))
            fresh = fresh[~np.isin(fresh, taken)]
            need = self.n_ids - len(taken)
            taken = np.concatenate([taken, fresh[:need]])
            self._queue = fresh[need:]
        return taken

    def _instances(self, members):
        k = self.n_instances
        if self.camids is None:
            return self.rng.choice(members, size=k, replace=len(members) < k)
        # cameras in a random order, each camera's images shuffled, then
        # interleaved: camera 1's first, camera 2's first, ..., camera 1's second
        cams = self.camids[members]
        unique = self.rng.permutation(np.unique(cams))
        per_cam = [self.rng.permutation(members[cams == c]) for c in unique]
        depth = max(len(p) for p in per_cam)
        interleaved = np.array([p[i] for i in range(depth) for p in per_cam if i < len(p)])
        if len(interleaved) >= k:
            return interleaved[:k]
        return np.resize(interleaved, k)  # cycles: a camera-balanced repetition

    def __iter__(self):
        for _ in range(self.n_batches):
            batch = [self._instances(self.members[i]) for i in self._next_ids()]
            yield np.concatenate(batch).tolist()
