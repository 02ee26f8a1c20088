"""How robust is "energy clustering vs Ward" on small data sets? ARI over subsamples.

The table of ``docs/user_guide/clustering.rst`` compares the standalone energy
clustering (``make_clusterer("standalone")``: Ward's method on
:math:`\\sqrt{d}`) with scikit-learn's linkages on one copy of each data set,
so it has no spread. This benchmark draws ``--n-subsamples`` random subsets
of ``--fraction`` of the samples (without replacement, stratified by class,
seeded), clusters each with every method at the true number of classes and
reports the ARI's mean and sample standard deviation, and the *paired*
difference standalone - Ward (mean, std, and the share of subsets where the
standalone clustering is at least as good). A mean difference smaller than
its own spread is no difference.

Usage::

    python benchmarks/bench_cluster_subsamples.py            # 30 subsets of 90 %
    python benchmarks/bench_cluster_subsamples.py --n-subsamples 10

Prints a markdown table and writes it to
``benchmarks/results/bench_cluster_subsamples.md``.
"""

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.cluster import AgglomerativeClustering
from sklearn.datasets import load_digits, load_iris, load_wine
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import StratifiedShuffleSplit
from sklearn.preprocessing import StandardScaler, normalize

from sklearn_ecluster.cluster import make_clusterer

RESULTS = Path(__file__).resolve().parent / "results"


def datasets():
    for name, loader in (("iris", load_iris), ("wine", load_wine), ("digits", load_digits)):
        data = loader()
        X = StandardScaler().fit_transform(data.data)
        yield f"{name} (standardised)", X, data.target
        yield f"{name} (std + L2)", normalize(X), data.target


def methods(k):
    return {
        "standalone": make_clusterer("standalone", n_clusters=k, device="cpu"),
        "Ward": AgglomerativeClustering(k, linkage="ward"),
        "average": AgglomerativeClustering(k, linkage="average"),
        "single": AgglomerativeClustering(k, linkage="single"),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-subsamples", type=int, default=30)
    parser.add_argument("--fraction", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    names = list(methods(2))
    header = ("| data | " + " | ".join(names)
              + " | standalone - Ward | standalone >= Ward |")
    lines = [header, "|" + "---|" * (len(names) + 3)]
    print(header)
    start = time.perf_counter()
    for data_name, X, y in datasets():
        k = len(np.unique(y))
        split = StratifiedShuffleSplit(args.n_subsamples, train_size=args.fraction,
                                       random_state=args.seed)
        scores = {name: [] for name in names}
        for idx, _ in split.split(X, y):
            for name, est in methods(k).items():
                scores[name].append(adjusted_rand_score(y[idx], est.fit_predict(X[idx])))
        diff = np.asarray(scores["standalone"]) - np.asarray(scores["Ward"])
        cells = [f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f}" for v in scores.values()]
        line = (f"| {data_name} | " + " | ".join(cells)
                + f" | {diff.mean():+.3f} ± {diff.std(ddof=1):.3f} | "
                f"{np.mean(diff >= 0):.0%} |")
        lines.append(line)
        print(line, flush=True)
    print(f"({args.n_subsamples} stratified subsets of {args.fraction:.0%}, seed "
          f"{args.seed}; {time.perf_counter() - start:.0f} s)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_cluster_subsamples.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
