"""The nearest-neighbour chain on the CPU: the compiled kernel of the reducible engine.

The chain (Murtagh 1983; fastcluster's and scipy's ``ward`` and ``average``)
follows nearest neighbours until two clusters are each other's nearest
neighbour and merges them: one row search per chain step and one row update
per merge, scalar loops over the pair matrix's own memory, which NumPy's
vectorised rounds (:mod:`._reducible_numpy`) cannot match at small N.

The kernel (``_exact_kernels.c``) merges only pairs whose nearest neighbours are
unique on both sides, each of which the greedy algorithm merges as well
(SPEC 6c); at the first merge where an exact tie could matter it stops, and
the rounds go on from the clusters it reached, following the greedy tie
rule. Without a C compiler at install time the module is absent and the
rounds do all the work.
"""

import numpy as np
import torch

from . import _compiled

#: the kernel's codes of the linkages it updates
METHODS = {"single": 0, "average": 1, "energy": 2}
#: the kernel's end states
DONE, TIED, STUCK = 0, 1, 2


def chain_available(rs):
    """Whether the kernel can run on the reducible state ``rs``."""
    M = rs.pm.matrix
    return (_compiled.kernels is not None and M.device.type == "cpu"
            and M.dtype in (torch.float32, torch.float64)
            and rs.criterion.linkage in METHODS)


def run_chain(rs, recorder):
    """Merge by the chain on ``rs`` (in place); returns ``(heights, finished)``.

    When the kernel stopped early (a tie, or no finite pair left), the state
    is compacted to the clusters it reached, ready for the rounds.
    """
    M = rs.pm.matrix.numpy()
    w = M.shape[0]
    sizes = rs.sizes.numpy()  # shares memory: the kernel updates the sizes
    alive = np.ones(w, dtype=bool)
    children = np.empty((max(w - 1, 0), 2), dtype=np.int64)
    heights = np.empty(max(w - 1, 0), dtype=np.float64)
    n, status = _compiled.kernels.nn_chain(
        M, sizes, METHODS[rs.criterion.linkage], recorder.node,
        recorder.n_leaves + recorder.n_merges, alive, children, heights)
    recorder.extend_sequence(children[:n], heights[:n])
    recorder.say(f"nearest-neighbour chain: {n} merges"
                 + ("" if status == DONE else ", then rounds of reciprocal nearest "
                    "neighbours (an exact tie)" if status == TIED else
                    ", then rounds (no finite pair left)"))
    recorder.advance(n)
    if status != DONE:
        rs.keep_only(torch.from_numpy(np.flatnonzero(alive)))
        recorder.compact(np.flatnonzero(alive))
    return heights[:n].copy(), status == DONE
