"""The batched engine on a candidate graph: the paper's schedule, edges only.

The same step as :mod:`._engine_batched` (SPEC 6): the criterion of every
candidate pair is evaluated once, the pairs are walked in ascending order
(ties: lower ``(u, v)``) and merged with a union-find until the step's quota;
here the candidate pairs are the graph's edges between current clusters, so a
step costs O(E log E) and the cross sums of the new edges, never O(K^2).
"""

import torch

from ._union_find import group_roots, walk_pairs


def smallest_edges(values, n_candidates):
    """Indices of the ``n_candidates`` smallest values in walking order.

    Walking order is ascending value, ties by edge index (the edges are
    sorted by ``(u, v)``). Returns ``(order, complete)``: ``complete`` when
    every edge is in ``order``.
    """
    e = values.numel()
    if n_candidates >= e:
        return torch.sort(values, stable=True).indices, True
    tau = torch.kthvalue(values, n_candidates).values
    sel = torch.nonzero(values <= tau).squeeze(1)  # ascending edge index
    order = sel[torch.sort(values[sel], stable=True).indices]
    return order, sel.numel() == e


def graph_batched_step(state, quota, threshold):
    """The merges of one step: ``(merges, root, stopped_by_threshold)``."""
    values = state.values()
    n_candidates = 4 * quota + 64
    u, v = state.u, state.v
    while True:
        order, complete = smallest_edges(values, n_candidates)
        merges, parent, stopped = walk_pairs(
            values[order].double().cpu().numpy(), u[order].cpu().numpy(),
            v[order].cpu().numpy(), state.k, quota, threshold,
        )
        if len(merges) >= quota or stopped or complete:
            return merges, group_roots(parent), stopped
        n_candidates *= 4


def build_graph_batched(state, recorder, stop, *, merge_percent, merge_schedule,
                        n_samples):
    """Batched steps on the graph until the stopping rule (or no edge is left).

    ``state`` is a :class:`~._graph_state.GraphState`; the step sizes follow
    :func:`~._engine_batched.build_batched`.
    """
    while state.k > stop.target and state.n_edges and (
            stop.max_steps is None or recorder.n_steps < stop.max_steps):
        base = n_samples if merge_schedule == "constant" else state.k
        quota = min(max(1, int(merge_percent * base)), state.k - stop.target)
        merges, root, stopped = graph_batched_step(state, quota, stop.distance_threshold)
        if not merges:
            break
        for a, b, val in merges:
            recorder.merge(a, b, val)
        keep = state.merge_groups(root)
        recorder.compact(keep)
        recorder.end_step(state.k, len(merges), max(val for _, _, val in merges))
        if stopped:
            break
