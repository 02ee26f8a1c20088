"""Clustering quality (ARI, NMI) of every EnergyAgglomerative configuration.

Linkages and regularisers: energy x {ssd, ssd_merged, size, dispersion, None}
x weighted {False, True}; single linkage (BUC preset and unregularised) and
average linkage (DBC preset and unregularised); each with the constant and the
geometric merge schedule (``merge_percent=0.05``) and, for N <= 2,000, the
exact mode (``merge_percent=None``). Compared with scikit-learn's
AgglomerativeClustering (ward, average, single).

Data, always with ``n_clusters`` = the true number of classes:
``load_digits``, ``load_wine``, ``load_iris`` (StandardScaler, and
StandardScaler + L2 normalisation) and L2-normalised synthetic re-ID features
from ``make_reid_features`` (N = 2,000 and 6,000 at d = 256; N = 12,936 at
d = 2048 for the main presets). Also the automatic cut (``n_clusters=None``):
the number of clusters it picks vs the truth.

The markdown tables are printed and written to
``benchmarks/results/bench_cluster_quality.md``.

Usage::

    python benchmarks/bench_cluster_quality.py           # everything (~15 min)
    python benchmarks/bench_cluster_quality.py --quick   # wine, iris (~1 min)
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.cluster import AgglomerativeClustering
from sklearn.datasets import load_digits, load_iris, load_wine
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.preprocessing import StandardScaler, normalize

from sklearn_ecluster.cluster import make_clusterer
from sklearn_ecluster.datasets import make_reid_features

RESULTS = Path(__file__).resolve().parent / "results"
REGULARIZERS = ("ssd", "ssd_merged", "size", "dispersion", None)
SCHEDULES = {  # name -> EnergyAgglomerative parameters
    "constant": {"merge_percent": 0.05, "merge_schedule": "constant"},
    "geometric": {"merge_percent": 0.05, "merge_schedule": "geometric"},
    "exact": {"merge_percent": None},
}
EXACT_MAX_N = 2000  # 200 with --quick
# rows run on the Market-sized set (N = 12,936)
MAIN = {
    "energy ssd (E-cluster) constant", "energy ssd (E-cluster) geometric",
    "energy ssd weighted constant", "energy ssd weighted geometric",
    "energy None constant", "energy None weighted geometric",
    "single BUC constant", "average DBC constant",
    "sklearn ward", "sklearn average", "sklearn single",
}


def methods():
    """``[(row name, factory(n_clusters) -> estimator, schedule or None)]``."""
    rows = []
    for sched, sp in SCHEDULES.items():
        for weighted in (False, True):
            for reg in REGULARIZERS:
                name = "energy " + str(reg)
                if reg == "ssd" and not weighted:
                    name += " (E-cluster)"
                if weighted:
                    name += " weighted"
                params = {"regularizer": reg, "weighted": weighted, **sp}
                if reg is None:
                    params["lam"] = 0.0
                rows.append((f"{name} {sched}", ("ecluster", params), sched))
        for label, preset in (("single BUC", "buc"), ("single none", "buc_noreg"),
                              ("average DBC", "dbc"),
                              ("average none", ("dbc", {"regularizer": None,
                                                        "lam": 0.0}))):
            rows.append((f"{label} {sched}", (preset, dict(sp)), sched))
    for link in ("ward", "average", "single"):
        rows.append((f"sklearn {link}", ("sklearn", {"linkage": link}), None))
    return rows


def build(spec, n_clusters):
    preset, params = spec
    if preset == "sklearn":
        return AgglomerativeClustering(n_clusters=n_clusters, **params)
    if isinstance(preset, tuple):
        preset, extra = preset
        params = {**extra, **params}
    return make_clusterer(preset, n_clusters=n_clusters, device="cpu", **params)


def datasets(args):
    """``[(column name, X, y, main_only)]``."""
    out = []
    loaders = [("digits", load_digits), ("wine", load_wine), ("iris", load_iris)]
    for name, loader in loaders[1:] if args.quick else loaders:
        X, y = loader(return_X_y=True)
        Xs = StandardScaler().fit_transform(X)
        out.append((f"{name} std", Xs, y, False))
        out.append((f"{name} std+l2", normalize(Xs), y, False))
    for n in args.reid_sizes:
        ids = 751 if n == 12936 else max(2, round(n * 751 / 12936))
        d = 2048 if n == 12936 else args.d
        X, y, _ = make_reid_features(n, ids, d, random_state=0)
        out.append((f"reid {n} d={d}", X, y, n >= 10000))
    return out


def score(est, X, y):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = est.fit_predict(X)
    return (adjusted_rand_score(y, labels), normalized_mutual_info_score(y, labels),
            time.perf_counter() - t0, int(labels.max()) + 1)


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(cell, i):
    if cell is None:
        return "-"
    if isinstance(cell, Exception):
        return "error"
    return f"{cell[i]:.2f}"


def report(rows, cells, cols):
    """The ARI, NMI and seconds tables (markdown) for the columns ``cols``."""
    lines = ["# EnergyAgglomerative clustering quality",
             "n_clusters = true number of classes; merge_percent = 0.05 (constant / "
             "geometric) or None (exact, small N only); lam: preset defaults "
             "(energy 0.9, BUC 0.005, DBC 0.1), 0 for 'None'. '-' = not run."]
    for title, i in (("ARI", 0), ("NMI", 1),
                     ("Fit seconds (2 CPU cores, shared machine)", 2)):
        lines.append(f"\n## {title}")
        body = [[name] + [_fmt(cells.get((name, c)), i) for c in cols]
                for name, _, _ in rows]
        lines.append(table(["method"] + cols, body))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="wine and iris only, exact mode up to N=200 (~1 min)")
    parser.add_argument("--reid-sizes", type=int, nargs="*",
                        default=[2000, 6000, 12936])
    parser.add_argument("--exact-max-n", type=int, default=EXACT_MAX_N,
                        help="run the exact mode on data sets up to this size")
    parser.add_argument("--d", type=int, default=256,
                        help="feature dimension of the reid sets below 12,936")
    args = parser.parse_args(argv)
    exact_max_n = args.exact_max_n
    if args.quick:
        args.reid_sizes, exact_max_n = [], 200
    out = []

    def emit(text=""):
        print(text, flush=True)
        out.append(text)

    t_all = time.perf_counter()
    data = datasets(args)
    rows = methods()
    cells = {}  # (row, column) -> (ari, nmi, seconds, k)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / ("bench_cluster_quality_quick.md" if args.quick
                      else "bench_cluster_quality.md")
    done = []
    for col, X, y, main_only in data:
        k = int(np.unique(y).size)
        t_col = time.perf_counter()
        for name, spec, sched in rows:
            if main_only and name not in MAIN:
                continue
            if sched == "exact" and X.shape[0] > exact_max_n:
                continue
            try:
                cells[name, col] = score(build(spec, k), X, y)
            except Exception as exc:  # report, keep going
                cells[name, col] = exc
                print(f"  {col} / {name}: {type(exc).__name__}: {exc}", flush=True)
        print(f"  {col}: {time.perf_counter() - t_col:.0f} s", flush=True)
        done.append(col)
        path.write_text(report(rows, cells, done) + "\n(partial: auto-cut table pending)\n")

    out.append(report(rows, cells, [c for c, *_ in data]))
    print(out[-1], flush=True)


    # automatic cut: number of clusters picked vs the truth
    emit("\n## Automatic cut (n_clusters=None)")
    auto = [
        ("E-cluster constant", ("ecluster", {})),
        ("E-cluster weighted geometric", ("ecluster", {"weighted": True,
                                                       "merge_schedule": "geometric"})),
        ("energy None weighted exact", ("ecluster", {"weighted": True, "regularizer": None,
                                                     "lam": 0.0, "merge_percent": None})),
        ("BUC", ("buc", {})),
        ("DBC", ("dbc", {})),
    ]
    auto_data = [d for d in data if d[0] in ("iris std+l2", "wine std+l2",
                                             "digits std+l2", f"reid 2000 d={args.d}")]
    body = []
    for name, spec in auto:
        row = [name]
        for _, X, y, _ in auto_data:
            try:
                a, _, _, k = score(build(spec, None), X, y)
                row.append(f"{k} (ARI {a:.2f})")
            except Exception as exc:
                row.append(f"error: {type(exc).__name__}")
        body.append(row)
    emit(table(["method"] + [f"{c} (truth {np.unique(y).size})" for c, _, y, _ in auto_data],
               body))
    emit(f"\ntotal {time.perf_counter() - t_all:.0f} s")
    path.write_text("\n".join(out) + "\n")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
