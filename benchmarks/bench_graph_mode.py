"""The graph mode (``EnergyAgglomerative(connectivity=...)``): agreement with the
dense path, speed against scikit-learn's connectivity-restricted Ward, and growth
to a million points.

Data: synthetic re-ID features (:func:`make_reid_features`, d = 256, about 17
images per identity, L2-normalised, float32) and scikit-learn's digits
(standardised, L2-normalised). The criterion is the package's standalone one,
the weighted energy distance without regulariser in the exact mode (Ward on
sqrt(d); engine ``graph_reducible``), stopped at the true number of groups;
``--also-batched`` adds the paper's batched schedule with the weighted form and
the geometric schedule (``graph_batched``).

Parts (``--parts``):

- ``agreement``: N in ``--agree-sizes``; the dense exact tree vs the graph mode
  on the exact kNN graph (:func:`knn_graph`) with k = 10, 30, 100 (and the
  complete graph at N <= 2,000: identical labels expected): ARI between the two
  label vectors, ARI of each to the truth, seconds.
- ``sklearn``: N in ``--sk-sizes``; one exact kNN graph (k = ``--k``) shared by
  both; scikit-learn ``AgglomerativeClustering(linkage="ward",
  connectivity=G)`` vs the graph mode, same process, one run each per data
  seed (``--seeds``): seconds are medians over the seeds, ARI mean +- std;
  ratio = scikit-learn seconds / ours (graph building not included in either).
- ``scale``: N in ``--scale-sizes``, each in its own subprocess (its own peak
  RSS): faiss IVF graph (``n_lists = 4 sqrt(N)``, ``n_probe = 8``), then the
  merges; seconds per phase and peak RSS (``ru_maxrss``).

Usage::

    python benchmarks/bench_graph_mode.py --parts agreement sklearn
    python benchmarks/bench_graph_mode.py --parts scale --scale-sizes 10000 100000 1000000
"""

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
from sklearn.cluster import AgglomerativeClustering
from sklearn.datasets import load_digits
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler, normalize

from sklearn_ecluster.cluster import EnergyAgglomerative, knn_graph
from sklearn_ecluster.datasets import make_reid_features

EXACT = dict(merge_percent=None, weighted=True, regularizer=None)
BATCHED = dict(merge_percent=0.05, weighted=True, regularizer=None,
               merge_schedule="geometric")


def reid(n, seed=0):
    X, y = make_reid_features(n_samples=n, n_identities=max(2, n // 17), n_features=256,
                              random_state=seed)[:2]
    return np.asarray(X, dtype=np.float32), np.asarray(y)


def digits():
    X, y = load_digits(return_X_y=True)
    return normalize(StandardScaler().fit_transform(X)).astype(np.float32), y


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def fit(X, k_true, graph, params):
    model = EnergyAgglomerative(n_clusters=k_true, device="cpu", connectivity=graph,
                                **params)
    return timed(lambda: model.fit(X).labels_)


def part_agreement(args):
    print("\n## agreement with the dense exact tree (weighted energy, exact)")
    print("| data | N | graph | s dense | s graph | ARI(graph, dense) | ARI dense-truth "
          "| ARI graph-truth |")
    print("|---|---|---|---|---|---|---|---|")
    sets = [("digits", *digits())] + [(f"reid {n}", *reid(n)) for n in args.agree_sizes]
    for name, X, y in sets:
        k_true = len(np.unique(y))
        dense, t_dense = fit(X, k_true, None, EXACT)
        graphs = [("complete", np.ones((len(X), len(X)), dtype=np.float32))] \
            if len(X) <= 2000 else []
        graphs += [(f"k={k}", knn_graph(X, k, device="cpu")) for k in (10, 30, 100)]
        for gname, G in graphs:
            labels, t = fit(X, k_true, G, EXACT)
            print(f"| {name} | {len(X)} | {gname} | {t_dense:.2f} | {t:.2f} | "
                  f"{adjusted_rand_score(dense, labels):.4f} | "
                  f"{adjusted_rand_score(y, dense):.3f} | "
                  f"{adjusted_rand_score(y, labels):.3f} |", flush=True)


def part_sklearn(args):
    print(f"\n## against scikit-learn's connectivity Ward (k = {args.k}; seconds: "
          f"median over the data seeds {args.seeds}, ARI: mean +- std over them)")
    print("| N | method | s | ratio sklearn/ours | ARI to truth |")
    print("|---|---|---|---|---|")
    for n in args.sk_sizes:
        runs, aris = {}, {}
        for seed in args.seeds:
            X, y = reid(n, seed)
            k_true = len(np.unique(y))
            G = knn_graph(X, args.k, device="cpu")
            sk = AgglomerativeClustering(n_clusters=k_true, linkage="ward", connectivity=G)
            todo = {"sklearn ward": lambda sk=sk, X=X: timed(lambda: sk.fit(X).labels_),
                    "ours exact": lambda X=X, G=G, k=k_true: fit(X, k, G, EXACT)}
            if args.also_batched:
                todo["ours batched"] = lambda X=X, G=G, k=k_true: fit(X, k, G, BATCHED)
            for name, run in todo.items():
                labels, t = run()
                runs.setdefault(name, []).append(t)
                aris.setdefault(name, []).append(adjusted_rand_score(y, labels))
        base = statistics.median(runs["sklearn ward"])
        for name, ts in runs.items():
            t = statistics.median(ts)
            a = np.asarray(aris[name])
            spread = f" +- {a.std(ddof=1):.3f}" if a.size > 1 else ""
            print(f"| {n} | {name} | {t:.2f} | {base / t:.2f} | {a.mean():.3f}{spread} |",
                  flush=True)


def scale_one(n, n_probe, params):
    """One N in this process: graph, merges, peak RSS (printed as JSON)."""
    X, y = reid(n)
    k_true = len(np.unique(y))
    n_lists = int(4 * math.sqrt(n))
    G, t_graph = timed(lambda: knn_graph(X, 10, backend="faiss", n_lists=n_lists,
                                         n_probe=n_probe, random_state=0))
    model = EnergyAgglomerative(n_clusters=k_true, device="cpu", connectivity=G, **params)
    _, t_merge = timed(lambda: model.fit(X))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(json.dumps(dict(n=n, graph_s=t_graph, merge_s=t_merge, peak_rss_gib=rss,
                          n_edges=int(G.nnz), ari=adjusted_rand_score(y, model.labels_),
                          engine=model.engine_, n_clusters=int(model.n_clusters_))))


def part_scale(args):
    name = "batched" if args.scale_batched else "exact"
    print(f"\n## growth (d = 256, k = 10, faiss IVF graph, {name} weighted energy)")
    print("| N | graph s | merges s | peak RSS GiB | edges | ARI to truth |")
    print("|---|---|---|---|---|---|")
    for n in args.scale_sizes:
        cmd = [sys.executable, __file__, "--scale-one", str(n), "--n-probe",
               str(args.n_probe)] + (["--scale-batched"] if args.scale_batched else [])
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"| {n} | failed: {out.stderr.strip().splitlines()[-1]} |")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {n} | {r['graph_s']:.1f} | {r['merge_s']:.1f} | "
              f"{r['peak_rss_gib']:.2f} | {r['n_edges']} | {r['ari']:.3f} |", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--parts", nargs="+", default=["agreement", "sklearn"],
                   choices=["agreement", "sklearn", "scale"])
    p.add_argument("--agree-sizes", nargs="+", type=int, default=[2000, 10000])
    p.add_argument("--sk-sizes", nargs="+", type=int, default=[20000, 100000])
    p.add_argument("--scale-sizes", nargs="+", type=int, default=[10000, 100000, 1000000])
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                   help="data seeds of the scikit-learn comparison")
    p.add_argument("--n-probe", type=int, default=8)
    p.add_argument("--also-batched", action="store_true")
    p.add_argument("--scale-batched", action="store_true",
                   help="the batched schedule in the scale part (default: exact)")
    p.add_argument("--scale-one", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.scale_one:
        scale_one(args.scale_one, args.n_probe, BATCHED if args.scale_batched else EXACT)
        return
    for part in args.parts:
        globals()[f"part_{part}"](args)


if __name__ == "__main__":
    main()
