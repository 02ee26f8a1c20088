"""Exact mode against fastcluster, and the cached engine against a plain rescan.

Three tables, each figure a median over ``--repeats`` runs in this process
(after one untimed warm-up run of each):

1. Reducible criteria on the same distance matrix: fastcluster's ``linkage``
   (nearest-neighbour chain, C++) against ``energy_linkage_tree(D,
   metric="precomputed", merge_percent=None)`` (the reducible engine) on the
   same N x N matrix (ours in float64, as fastcluster, and in float32):
   weighted energy = Ward on sqrt(d), average and single linkage on squared
   Euclidean distances. Goal: ratio <= 1.5.
2. End to end from the features (distances + linkage): fastcluster
   ``linkage(sqrt(pdist(X)), "ward")`` against
   ``make_clusterer("standalone", n_clusters=1).fit(X)``. Goal: faster from
   N = 5,000 at d >= 256.
3. Non-reducible criteria (unweighted energy, E-cluster's SSD regulariser):
   the cached exact engine against a plain reference that re-evaluates the
   criterion of all K^2 pairs after every merge (same torch criterion).

Usage::

    python benchmarks/bench_cluster_exact.py                      # N = 2,000 ... 20,000
    python benchmarks/bench_cluster_exact.py --sizes 2000 5000 --repeats 3 --threads 1

fastcluster is a benchmark-only dependency (``pip install fastcluster``).
Both libraries run on the CPU; ``--threads`` sets torch's thread count
(fastcluster is single-threaded; scipy's ``pdist`` too).
"""

import argparse
import statistics
import sys
import time

import numpy as np
import torch
from scipy.spatial.distance import pdist, squareform

from sklearn_ecluster.cluster import energy_linkage_tree, make_clusterer
from sklearn_ecluster.cluster._criterion import ClusterStats, Criterion


def features(n, d, seed=0):
    """Synthetic groups: n points around n / 20 centres, float32."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(10, n // 20), d))
    X = centres[rng.integers(0, len(centres), n)] + 0.7 * rng.normal(size=(n, d))
    return X.astype(np.float32)


def median_time(fn, repeats):
    """Median of ``repeats`` timed calls after one untimed call (warm caches,
    lazy initialisation, first-touch of the allocator's memory: for both
    libraries alike)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


REDUCIBLE = {
    # name: (fastcluster method, transform of the squared distances, our params)
    "weighted energy (Ward on sqrt d)": (
        "ward", lambda sq: sq ** 0.25, dict(linkage="energy", weighted=True)),
    "average (sq. Euclidean)": ("average", None, dict(linkage="average")),
    "single (sq. Euclidean)": ("single", None, dict(linkage="single")),
}


def table_reducible(sizes, d, repeats, fastcluster):
    print("\n## 1. Reducible criteria, same distance matrix (linkage only)\n")
    print("| N | criterion | fastcluster s (float64) | ours s (float64) | ratio "
          "| ours s (float32) | ratio |")
    print("|---|---|---|---|---|---|---|")
    for n in sizes:
        X = features(n, d)
        sq = pdist(X.astype(np.float64), "sqeuclidean")
        for name, (method, transform, params) in REDUCIBLE.items():
            condensed = transform(sq) if transform is not None else sq
            # ours reads the same values as a square float64 matrix; the energy
            # criterion takes the distances d and needs sqrt(sq) as its input
            square = torch.from_numpy(squareform(np.sqrt(sq) if method == "ward" else sq))
            t_fc = median_time(lambda c=condensed, m=method: fastcluster.linkage(c, m),
                               repeats)
            times = []
            for mat in (square, square.float()):
                times.append(median_time(lambda s=mat, p=params: energy_linkage_tree(
                    s, n_clusters=1, merge_percent=None, regularizer=None, lam=0.0,
                    metric="precomputed", device="cpu", **p), repeats))
            t64, t32 = times
            print(f"| {n:,} | {name} | {t_fc:.3f} | {t64:.3f} | {t64 / t_fc:.2f} | "
                  f"{t32:.3f} | {t32 / t_fc:.2f} |", flush=True)
            del square


def table_end_to_end(sizes, d, repeats, fastcluster):
    print("\n## 2. End to end from the features (distances + linkage), Ward on sqrt(d)\n")
    print("| N | d | fastcluster pdist + linkage s | ours fit s | ours / fastcluster |")
    print("|---|---|---|---|---|")
    for n in sizes:
        X = features(n, d)
        t_fc = median_time(lambda X=X: fastcluster.linkage(np.sqrt(pdist(X)), "ward"),
                           repeats)
        model = make_clusterer("standalone", n_clusters=1, device="cpu")
        t_us = median_time(lambda X=X, model=model: model.fit(X), repeats)
        print(f"| {n:,} | {d} | {t_fc:.3f} | {t_us:.3f} | {t_us / t_fc:.2f} |", flush=True)


def plain_rescan(X, criterion, n_clusters=1):
    """Greedy merges, all K^2 pairs re-evaluated after every merge (the baseline)."""
    Xt = torch.as_tensor(X, dtype=torch.float64)
    n = len(Xt)
    S = torch.cdist(Xt, Xt)
    sizes = torch.ones(n, dtype=torch.float64)
    means = Xt.clone()
    ssd = torch.zeros(n, dtype=torch.float64)
    alive = torch.ones(n, dtype=torch.bool)
    while int(alive.sum()) > n_clusters:
        stats = ClusterStats(sizes=sizes, within=torch.diagonal(S).clone(), ssd=ssd,
                             means=means)
        D = criterion.block(S, slice(None), slice(None), stats, symmetric=True)
        D[~alive] = float("inf")
        D[:, ~alive] = float("inf")
        D.fill_diagonal_(float("inf"))
        flat = int(torch.argmin(D))
        a, b = sorted(divmod(flat, n))
        S[a] += S[b]
        S[:, a] += S[:, b]
        tot = sizes[a] + sizes[b]
        mu = (sizes[a] * means[a] + sizes[b] * means[b]) / tot
        ssd[a] = (ssd[a] + ssd[b] + sizes[a] * ((means[a] - mu) ** 2).sum()
                  + sizes[b] * ((means[b] - mu) ** 2).sum())
        means[a], sizes[a] = mu, tot
        alive[b] = False


def table_cached(sizes, d, repeats):
    print("\n## 3. Non-reducible criteria: cached exact engine vs plain rescan\n")
    print("| N | criterion | plain rescan s | cached engine s | speed-up |")
    print("|---|---|---|---|---|")
    configs = {
        "energy, no regulariser": dict(regularizer=None, lam=0.0),
        "E-cluster (SSD, lam 0.9)": dict(regularizer="ssd", lam=0.9),
    }
    for n in sizes:
        X = features(n, d)
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
        for name, params in configs.items():
            crit = Criterion(linkage="energy", weighted=False, **params)
            t_plain = median_time(lambda X=X, c=crit: plain_rescan(X, c), repeats)
            t_us = median_time(lambda X=X, p=params: energy_linkage_tree(
                X.astype(np.float64), n_clusters=1, merge_percent=None, device="cpu",
                **p), repeats)
            print(f"| {n:,} | {name} | {t_plain:.2f} | {t_us:.2f} | "
                  f"{t_plain / t_us:.1f}x |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000, 10000, 20000])
    parser.add_argument("--cached-sizes", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's own setting)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["reducible", "end", "cached"])
    args = parser.parse_args(argv)
    try:
        import fastcluster
    except ImportError:
        sys.exit("fastcluster is needed for this benchmark: pip install fastcluster")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
          f"medians of {args.repeats}")
    if "reducible" not in args.skip:
        table_reducible(args.sizes, args.dim, args.repeats, fastcluster)
    if "end" not in args.skip:
        table_end_to_end(args.sizes, args.dim, args.repeats, fastcluster)
    if "cached" not in args.skip:
        table_cached(args.cached_sizes, args.dim, args.repeats)


if __name__ == "__main__":
    main()
