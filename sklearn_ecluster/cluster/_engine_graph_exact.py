"""The exact mode on a candidate graph: one merge at a time, or RNN rounds.

- :func:`build_graph_rounds` (reducible criteria: single or average linkage,
  the weighted energy distance, without regulariser; SPEC 6c): every round
  merges all pairs of reciprocal nearest neighbours among the graph's edges at
  once (RAC, Sumengen et al. 2021), then the merges are put in the greedy
  order. With a complete graph this is the dense exact dendrogram. On a
  sparse graph it is RAC's hierarchy of the graph-restricted criterion: the
  same as the greedy one whenever a merge never brings a cluster closer to a
  neighbour than both its parts were (true when every neighbour of the union
  is a neighbour of both parts; a sparse graph can break it, and then the
  heights need not be monotone).
- :func:`build_graph_greedy` (any criterion): the exact greedy order, the edge
  of least ``(D, u, v)`` merged first and the criterion refreshed after every
  merge, O(E) per merge: meant for N up to about 10^4 (non-reducible criteria
  have no round structure to exploit).
"""

import numpy as np
import torch

from ._engine_reducible import _renumber, greedy_order


def nearest_neighbours(values, u, v, k):
    """Each slot's least edge value, its neighbour there, and whether it ties.

    Returns ``(best, nn, tied)``: ``best[i]`` the least value over the edges
    of slot i (inf without edges), ``nn[i]`` the lowest neighbour attaining
    it (``k`` without edges), ``tied[i]`` whether two edges attain it.
    """
    node = torch.cat([u, v])
    other = torch.cat([v, u])
    val = torch.cat([values, values])
    best = torch.full((k,), float("inf"), dtype=values.dtype, device=values.device)
    best.scatter_reduce_(0, node, val, reduce="amin")
    at = val == best[node]
    nn = torch.full((k,), k, dtype=torch.long, device=values.device)
    nn.scatter_reduce_(0, node[at], other[at], reduce="amin")
    tied = torch.bincount(node[at], minlength=k) > 1
    return best, nn, tied


def build_graph_rounds(state, recorder, stop):
    """Exact dendrogram of a reducible criterion on the graph, by RNN rounds."""
    n_leaves = state.k
    q_max = stop.max_merges(n_leaves)
    threshold = stop.distance_threshold
    heights = []
    n_round = 0
    while state.k > 1 and state.n_edges:
        k = state.k
        values = state.values()
        best, nn, tied = nearest_neighbours(values, state.u, state.v, k)
        vmin = float(best.min())
        if len(heights) >= q_max and np.count_nonzero(np.asarray(heights) < vmin) >= q_max:
            # every later merge is at least vmin when merges never lower a
            # criterion value (a complete graph): the first q_max are known.
            # On a sparse graph a later merge can come lower; the cut is then
            # the q_max lowest merges of the rounds run so far (RAC's tree).
            break
        slots = torch.arange(k, device=values.device)
        has = nn < k
        nn_safe = torch.where(has, nn, slots)
        ok = has & ~tied
        ok &= (nn_safe[nn_safe] == slots) & (slots < nn_safe) & ok[nn_safe]
        if threshold is not None:
            ok &= best < threshold
        lo = torch.nonzero(ok).squeeze(1)
        if lo.numel():
            hi, d = nn[lo], best[lo]
        else:
            # no clean reciprocal pair (ties): the edge the greedy order takes
            if threshold is not None and vmin >= threshold:
                break
            e = torch.argmin(values).reshape(1)  # first minimum: lowest (u, v)
            lo, hi, d = state.u[e], state.v[e], values[e]
        d = d.double().cpu().numpy()
        recorder.merge_many(lo.cpu().numpy(), hi.cpu().numpy(), d)
        heights.extend(d.tolist())
        root = slots.clone()
        root[hi] = lo
        recorder.compact(state.merge_groups(root.cpu().numpy()))
        n_round += 1
        recorder.say(f"round {n_round}: {d.size} merges -> {state.k} clusters, "
                     f"max D {d.max():.4g}, {state.n_edges} edges")
        recorder.advance(d.size)
    children, distances = recorder.children, recorder.distances
    order = greedy_order(np.asarray(children, dtype=np.int64).reshape(-1, 2),
                         np.asarray(distances, dtype=np.float64), n_leaves)
    recorder.replace_sequence(*_renumber(children, distances, order, n_leaves, q_max))


def build_graph_greedy(state, recorder, stop):
    """Exact greedy tree of any criterion on the graph, one merge at a time."""
    q_max = stop.max_merges(state.k)
    threshold = stop.distance_threshold
    echo_every = max(1, q_max // 20)
    while recorder.n_merges < q_max and state.n_edges:
        values = state.values()
        e = int(torch.argmin(values))  # first minimum: lowest (u, v)
        d = float(values[e])
        if threshold is not None and d >= threshold:
            break
        a, b = int(state.u[e]), int(state.v[e])
        recorder.merge(a, b, d)
        root = np.arange(state.k)
        root[b] = a
        recorder.compact(state.merge_groups(root))
        recorder.end_step(state.k, 1, d, echo=recorder.n_merges % echo_every == 0)
