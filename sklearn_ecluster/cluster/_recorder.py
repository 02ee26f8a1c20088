"""The merge recorder every engine writes to: merges, heights, steps, progress.

Engines work on *slots* (rows of the pair matrix); the recorder keeps the tree
node currently held by each slot, so that merges come out in scikit-learn's
``children_`` numbering (leaves ``< n_leaves``, node ``n_leaves + t`` made by
merge t) whatever compaction the engine does.
"""

import logging
import time

import numpy as np

logger = logging.getLogger("sklearn_ecluster")


class MergeRecorder:
    """Collects the merge sequence and the per-step history of one fit.

    Parameters
    ----------
    n_leaves : int
    verbose : int
        1: one line per step (a batched step, a round of reciprocal
        nearest neighbours, or a twentieth of the merges of the cached exact
        engine); 2: a tqdm progress bar over the merges.
    total : int
        Merges expected (for the progress bar).
    """

    def __init__(self, n_leaves, verbose=0, total=0):
        self.n_leaves = n_leaves
        self.node = np.arange(n_leaves, dtype=np.int64)  # tree node of each slot
        self.children = []
        self.distances = []
        self.history = {"n_clusters": [], "n_merges": [], "max_distance": [], "seconds": []}
        self.verbose = verbose
        self._bar = _progress(verbose, total)
        self._t_start = self._t_step = time.perf_counter()

    @property
    def n_merges(self):
        return len(self.children)

    @property
    def n_steps(self):
        return len(self.history["n_clusters"])

    def merge(self, slot_a, slot_b, value):
        """Record that slot ``slot_b`` merged into slot ``slot_a``."""
        self.children.append((self.node[slot_a], self.node[slot_b]))
        self.distances.append(value)
        self.node[slot_a] = self.n_leaves + len(self.children) - 1

    def merge_many(self, slots_a, slots_b, values):
        """Record the disjoint merges ``slots_b[t]`` into ``slots_a[t]`` at once."""
        slots_a = np.asarray(slots_a, dtype=np.int64)
        first = self.n_leaves + len(self.children)
        self.children.extend(zip(self.node[slots_a].tolist(),
                                 self.node[np.asarray(slots_b)].tolist(), strict=True))
        self.distances.extend(np.asarray(values, dtype=np.float64).tolist())
        self.node[slots_a] = first + np.arange(slots_a.size)

    def extend_sequence(self, children, distances):
        """Record merges already in tree node ids, the engine having kept
        :attr:`node` up to date itself (the compiled nearest-neighbour chain)."""
        self.children.extend(map(tuple, np.asarray(children, dtype=np.int64).tolist()))
        self.distances.extend(np.asarray(distances, dtype=np.float64).tolist())

    def compact(self, keep):
        """The engine kept only the slots ``keep`` (ascending, a LongTensor or array)."""
        keep = keep.cpu().numpy() if hasattr(keep, "cpu") else np.asarray(keep)
        self.node = self.node[keep]

    def end_step(self, n_clusters, n_merges, max_distance, *, echo=True):
        """Close one step: record its line of ``history`` and report it.

        ``echo=False`` records the step without printing it (the cached exact
        engine records every merge as a step but prints every twentieth).
        """
        now = time.perf_counter()
        seconds, self._t_step = now - self._t_step, now
        h = self.history
        h["n_clusters"].append(int(n_clusters))
        h["n_merges"].append(int(n_merges))
        h["max_distance"].append(float(max_distance))
        h["seconds"].append(float(seconds))
        step = len(h["n_clusters"])
        logger.debug("step %d: %d merges, %d clusters, max D %.4g", step, n_merges,
                     n_clusters, max_distance)
        if self.verbose == 1 and echo:
            print(f"[EnergyAgglomerative] step {step}: {n_merges} merges -> "
                  f"{n_clusters} clusters, max D {max_distance:.4g}, {seconds:.2f} s")
        if self._bar is not None:
            self._bar.update(n_merges)

    def say(self, text):
        """One line at ``verbose=1`` (an engine's round)."""
        if self.verbose == 1:
            print(f"[EnergyAgglomerative] {text}")

    def advance(self, n_merges):
        """Move the progress bar by ``n_merges``."""
        if self._bar is not None:
            self._bar.update(n_merges)

    def replace_sequence(self, children, distances):
        """Set the merge sequence found out of order (one history step per merge).

        The reducible engine finds merges in rounds, then puts them in the
        greedy order; its history then reads as the cached exact engine's,
        one step per merge, the time shared evenly among the merges.
        """
        seconds = time.perf_counter() - self._t_start
        n = len(children)
        self.children = [tuple(c) for c in np.asarray(children).tolist()]
        self.distances = [float(v) for v in distances]
        k = self.n_leaves - np.arange(1, n + 1)
        self.history = {
            "n_clusters": k.tolist(),
            "n_merges": [1] * n,
            "max_distance": list(self.distances),
            "seconds": [seconds / max(n, 1)] * n,
        }

    def close(self):
        """The merge sequence as arrays: ``children`` (n_merges, 2), ``distances``."""
        if self._bar is not None:
            self._bar.close()
        children = np.asarray(self.children, dtype=np.int64).reshape(-1, 2)
        return children, np.asarray(self.distances, dtype=np.float64)


def _progress(verbose, total):
    if verbose < 2:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is an optional extra
        return None
    return tqdm(total=total, desc="merges", unit="merge")
