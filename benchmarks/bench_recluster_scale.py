"""Scale of one round of the contrastive recipe: its clustering phase at Market size.

Every round of ``make_recipe("contrastive_dbscan" | "contrastive_energy")``
re-clusters all the training features (Market-1501: 12,936 images). This
benchmark times that phase on the CPU and measures its peak memory, on
synthetic features shaped like ResNet-50 pool5 features (``--dim`` 2048,
float32): ``--n`` samples of 751 identities (about 17 images each), each a
Gaussian around an L2-normalised centre, the samples L2-normalised, seeded.

Phases (each through ``SelfTrainingReID._cluster`` of the recipe's own loop
object, i.e. the code a round runs, except ``jaccard`` which calls
``jaccard_distance(features, k1=30, k2=6)`` as ``_cluster`` does):

- ``jaccard``: the k-reciprocal Jaccard distance alone (the dense matrix);
- ``jaccard_sparse``: the same as a sparse matrix of the pairs sharing a
  neighbour (``sparse=True``, what the loop gives DBSCAN);
- ``jaccard_dbscan``: ``contrastive_dbscan`` (the sparse Jaccard +
  ``AutoEpsDBSCAN``);
- ``jaccard_energy``: ``contrastive_energy`` with ``cluster_distance="jaccard"``
  (the sparse Jaccard + the standalone energy clustering on it, graph mode on
  each sample's 30 nearest Jaccard pairs);
- ``euclidean_energy``: ``contrastive_energy`` as it is (Euclidean, the graph
  mode on the exact 30-nearest-neighbour graph of the round's features);
- ``euclidean_energy_dense``: the same recipe with the dense standalone
  clusterer (``make_clusterer("standalone")``: the N x N pair matrix), its
  clusterer before the graph mode.

Each phase runs in a fresh subprocess. Peak memory is the growth of the
process's peak resident set over the baseline after the features and the
recipe's loop object are made (building the loop imports the network code):
the kernel's peak (``VmHWM``) is reset through ``/proc/self/clear_refs``
when allowed, else the baseline is the peak so far (``ru_maxrss``). It is
reported in bytes and in units of one N x N float32 buffer (N^2 * 4 bytes:
0.67 GB at N = 12,936). Seconds are the median of ``--repeats`` runs (each
repeat a fresh subprocess too).

Usage::

    python benchmarks/bench_recluster_scale.py                       # N = 12,936
    python benchmarks/bench_recluster_scale.py --n 2000 --repeats 3
    python benchmarks/bench_recluster_scale.py --phases jaccard jaccard_dbscan

Results go to ``--output-dir`` (default ``benchmarks/results/``) as
``recluster_scale_<n>.json`` and ``.csv``; the table is printed.
"""

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
PHASES = ("jaccard", "jaccard_sparse", "jaccard_dbscan", "jaccard_energy", "euclidean_energy",
          "euclidean_energy_dense")


def market_features(n, dim, n_ids=751, spread=0.6, seed=0):
    """``n`` L2-normalised float32 features of ``n_ids`` identities (made in chunks)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_ids, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    ids = np.sort(np.arange(n) % n_ids)  # about n / n_ids images of each identity
    X = np.empty((n, dim), dtype=np.float32)
    for r0 in range(0, n, 1024):
        r1 = min(n, r0 + 1024)
        noise = rng.standard_normal((r1 - r0, dim), dtype=np.float32)
        X[r0:r1] = centres[ids[r0:r1]] + (spread / np.sqrt(dim)) * noise
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, ids


def _status_kib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def _reset_peak():
    """Reset VmHWM to the current RSS; True when the kernel allowed it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def make_loop(phase):
    """The recipe's loop object of a phase (None for the Jaccard-only phases).

    Built before the memory baseline: the recipe's extractor imports the
    network code (torchvision), which is not the clustering's memory.
    """
    from sklearn_ecluster.self_training import make_recipe

    if phase in ("jaccard", "jaccard_sparse"):
        return None
    if phase == "jaccard_dbscan":
        return make_recipe("contrastive_dbscan")
    if phase == "jaccard_energy":
        return make_recipe("contrastive_energy", cluster_distance="jaccard")
    if phase == "euclidean_energy":
        return make_recipe("contrastive_energy")
    if phase == "euclidean_energy_dense":
        from sklearn_ecluster.cluster import make_clusterer

        return make_recipe("contrastive_energy", clusterer=make_clusterer("standalone"))
    raise ValueError(phase)


def run_phase(phase, loop, X):
    """Run one phase; returns ``(labels or None, extra dict)``."""
    from sklearn_ecluster.metrics import jaccard_distance

    if loop is None:
        D = jaccard_distance(X, k1=30, k2=6, sparse=phase == "jaccard_sparse")
        extra = {"dtype": str(D.dtype)}
        if phase == "jaccard_sparse":
            extra["stored_pairs_per_row"] = D.nnz / D.shape[0]
        return None, extra
    labels, model = loop._cluster(loop.clusterer, X, None, 0)
    extra = {}
    if hasattr(model, "eps_"):
        extra["eps"] = float(model.eps_)
    return labels, extra


def worker(args):
    """One phase in this (fresh) process; prints one JSON line."""
    import torch

    X, ids = market_features(args.n, args.dim, seed=args.seed)
    torch.set_num_threads(args.threads) if args.threads else None
    (torch.ones(64, 64) @ torch.ones(64, 64)).sum()  # thread pools up before the baseline
    import sklearn_ecluster.metrics  # noqa: F401  (imports before the baseline)
    import sklearn_ecluster.self_training  # noqa: F401
    loop = make_loop(args.worker)
    reset = _reset_peak()
    base_kib = _status_kib("VmRSS") if reset else resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    labels, extra = run_phase(args.worker, loop, X)
    seconds = time.perf_counter() - t0
    peak_kib = _status_kib("VmHWM") if reset else resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss
    out = {"phase": args.worker, "seconds": seconds,
           "peak_growth_bytes": (peak_kib - base_kib) * 1024,
           "peak_method": "VmHWM after clear_refs" if reset else "ru_maxrss", **extra}
    if labels is not None:
        from sklearn.metrics import adjusted_rand_score

        out["n_clusters"] = int(labels.max()) + 1 if (labels >= 0).any() else 0
        out["n_outliers"] = int((labels < 0).sum())
        out["ari"] = float(adjusted_rand_score(ids, labels))
    print(json.dumps(out))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=12936)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--phases", nargs="+", choices=PHASES, default=list(PHASES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's own choice)")
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    parser.add_argument("--worker", choices=PHASES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)

    buffer = args.n * args.n * 4
    rows = []
    for phase in args.phases:
        runs = []
        for _ in range(args.repeats):
            cmd = [sys.executable, __file__, "--worker", phase, "--n", str(args.n),
                   "--dim", str(args.dim), "--seed", str(args.seed)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
            if done.returncode != 0:
                sys.stderr.write(done.stderr)
                raise SystemExit(f"phase {phase} failed (status {done.returncode})")
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        row = dict(runs[-1])
        row["seconds"] = statistics.median(r["seconds"] for r in runs)
        row["peak_growth_bytes"] = max(r["peak_growth_bytes"] for r in runs)
        row["peak_nxn_buffers"] = row["peak_growth_bytes"] / buffer
        row["repeats"] = args.repeats
        rows.append(row)
        print(f"{phase:17s} {row['seconds']:8.1f} s  peak {row['peak_growth_bytes'] / 2**30:6.2f}"
              f" GiB = {row['peak_nxn_buffers']:.2f} N x N  clusters "
              f"{row.get('n_clusters', '-')}  outliers {row.get('n_outliers', '-')}", flush=True)

    args.output_dir.mkdir(parents=True, exist_ok=True)
    stem = args.output_dir / f"recluster_scale_{args.n}"
    meta = {"n": args.n, "dim": args.dim, "seed": args.seed, "repeats": args.repeats,
            "nxn_float32_bytes": buffer, "torch_threads": args.threads,
            "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:])}
    stem.with_suffix(".json").write_text(json.dumps({**meta, "phases": rows}, indent=2))
    keys = ["phase", "seconds", "peak_growth_bytes", "peak_nxn_buffers", "n_clusters",
            "n_outliers", "ari", "eps"]
    with open(stem.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    print(f"\nN = {args.n}, d = {args.dim}: one N x N float32 buffer = {buffer / 1e9:.2f} GB")
    print(f"{'phase':17s} {'seconds':>8s} {'peak (N x N)':>13s} {'clusters':>9s} "
          f"{'outliers':>9s} {'ARI':>6s}")
    for r in rows:
        ari = f"{r['ari']:.3f}" if "ari" in r else "-"
        print(f"{r['phase']:17s} {r['seconds']:8.1f} {r['peak_nxn_buffers']:13.2f} "
              f"{r.get('n_clusters', '-'):>9} {r.get('n_outliers', '-'):>9} {ari:>6s}")
        if "stored_pairs_per_row" in r:
            print(f"{'':17s} stored pairs per row {r['stored_pairs_per_row']:.0f}")
    print(f"written: {stem}.json, {stem}.csv")


if __name__ == "__main__":
    main()
