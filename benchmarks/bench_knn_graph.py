"""Speed, recall and memory of ``knn_graph``: torch exact and faiss IVF vs scikit-learn brute.

Data: ``--n`` samples in ``--dim`` dimensions (float32), synthetic groups:
``n / 100`` Gaussian centres (``rng.normal``), each sample a centre plus
noise (scale 0.5), L2-normalised; seeded. ``k = --k`` neighbours.

Methods (each timed in the same process and run, seconds = median of
``--repeats`` runs):

- ``sklearn``: ``NearestNeighbors(algorithm="brute").fit(X).kneighbors()``
  (the sample itself excluded), the reference the ratios are taken against;
- ``torch``: ``knn_graph(X, k, backend="torch", device="cpu")`` (exact);
- ``faiss_ivf``: ``knn_graph(X, k, backend="faiss", n_lists=L, n_probe=p)``
  with ``L = --n-lists`` (default ``4 sqrt(n)``, faiss's lower advice) and
  ``p = --n-probe`` (default the function's ``L // 16``);
- ``faiss_flat``: ``knn_graph(X, k, backend="faiss")`` (exact).

``x sklearn`` is the speed-up: sklearn seconds / method seconds.

Recall of an approximate graph: the mean fraction of the exact k nearest
others found, over ``--n-queries`` random samples (exact neighbours by a
float64 torch search of those queries against all samples). Peak RSS is
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` after each method: the peak of
the process so far (run one method per process for its own peak).

Usage::

    python benchmarks/bench_knn_graph.py --n 10000 100000
    python benchmarks/bench_knn_graph.py --n 1000000 --methods faiss_ivf \\
        --n-lists 1024 --n-probe 8 --repeats 1
"""

import argparse
import math
import resource
import statistics
import time

import numpy as np
import torch

from sklearn_ecluster.cluster import knn_graph

METHODS = ("sklearn", "torch", "faiss_ivf", "faiss_flat")


def grouped_features(n, dim, seed=0, per_group=100, noise=0.5):
    """``n`` L2-normalised float32 samples around ``n / per_group`` centres (in chunks)."""
    rng = np.random.default_rng(seed)
    n_groups = max(1, n // per_group)
    centres = rng.standard_normal((n_groups, dim), dtype=np.float32)
    X = np.empty((n, dim), dtype=np.float32)
    for r0 in range(0, n, 100_000):
        r1 = min(n, r0 + 100_000)
        X[r0:r1] = rng.standard_normal((r1 - r0, dim), dtype=np.float32)
        X[r0:r1] *= noise
        X[r0:r1] += centres[rng.integers(n_groups, size=r1 - r0)]
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X


def exact_neighbours(X, queries, k):
    """The exact k nearest others of ``X[queries]`` (float64, self excluded by index)."""
    Xt = torch.from_numpy(X)
    out = []
    for q0 in range(0, len(queries), 200):
        q = torch.from_numpy(queries[q0:q0 + 200])
        d = torch.zeros(len(q), X.shape[0], dtype=torch.float64)
        for c0 in range(0, X.shape[0], 100_000):
            C = Xt[c0:c0 + 100_000].double()
            d[:, c0:c0 + len(C)] = torch.cdist(Xt[q].double(), C).square_()
        d[torch.arange(len(q)), q] = math.inf
        out.append(torch.topk(d, k, largest=False).indices.numpy())
    return np.concatenate(out)


def recall(found, exact):
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, exact)]))


def peak_rss_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def run(method, X, k, n_lists, n_probe):
    """Neighbour indices (n, k) of every sample by ``method``."""
    n = X.shape[0]
    if method == "sklearn":
        from sklearn.neighbors import NearestNeighbors

        return NearestNeighbors(n_neighbors=k, algorithm="brute").fit(X).kneighbors(
            return_distance=False)
    kw = {"device": "cpu"} if method == "torch" else {"backend": "faiss"}
    if method == "faiss_ivf":
        kw.update(n_lists=n_lists, n_probe=n_probe, random_state=0)
    return knn_graph(X, k, **kw).indices.reshape(n, k)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--methods", nargs="+", choices=METHODS,
                   default=["sklearn", "torch", "faiss_ivf"])
    p.add_argument("--n-lists", type=int, default=None)
    p.add_argument("--n-probe", type=int, default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--n-queries", type=int, default=2000)
    args = p.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"dim={args.dim} k={args.k} float32")
    print(f"{'n':>9} {'method':>10} {'seconds':>9} {'x sklearn':>9} {'recall':>7} "
          f"{'peak RSS GiB':>12}  params")
    for n in args.n:
        X = grouped_features(n, args.dim)
        rng = np.random.default_rng(1)
        queries = np.sort(rng.choice(n, min(n, args.n_queries), replace=False))
        exact = exact_neighbours(X, queries, args.k)
        L = args.n_lists or int(round(4 * math.sqrt(n)))
        P = args.n_probe or max(1, L // 16)
        base = None
        for method in args.methods:
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                ind = run(method, X, args.k, L, P)
                times.append(time.perf_counter() - t)
            sec = statistics.median(times)
            if method == "sklearn":
                base = sec
            ratio = f"{base / sec:9.2f}" if base else f"{'-':>9}"
            params = f"n_lists={L} n_probe={P}" if method == "faiss_ivf" else ""
            print(f"{n:>9} {method:>10} {sec:9.2f} {ratio} "
                  f"{recall(ind[queries], exact):7.4f} {peak_rss_gib():12.2f}  {params}",
                  flush=True)


if __name__ == "__main__":
    main()
