"""Speed and memory of EnergyAgglomerative at Market-1501 scale.

Data: L2-normalised synthetic re-ID features shaped like Market-1501's
training set (N = 12,936, d = 2048, 751 identities of uneven size, float32),
from ``make_reid_features``. Every configuration runs in a fresh subprocess
(this script calling itself with ``--worker``), so that its peak memory can be
read from ``/proc/self/status`` against the interpreter's own baseline.

Tables printed (and written to ``benchmarks/results/bench_cluster_speed.md``):

(a) fit time (median of repeats) vs one ``torch.cdist(X, X)`` timed in the
    same process, interleaved with the fits (target: ratio <= 1.5);
(b) vs ``sklearn.cluster.AgglomerativeClustering(linkage="average")``
    (target: >= 10x faster);
(c) peak memory above the baseline (interpreter + torch, before X) vs
    N*N*4 + X bytes (target: <= 1.5x);
(d) scaling in N (2k, 5k, 12,936, 20k; 40k with ``--full``);
(e) one vs two torch threads per phase (distance matrix, batched steps,
    exact mode);
plus the other presets (BUC, DBC, weighted, geometric schedule) at N = 12,936.

Usage::

    python benchmarks/bench_cluster_speed.py            # default, N <= 20k
    python benchmarks/bench_cluster_speed.py --quick    # < 1 minute
    python benchmarks/bench_cluster_speed.py --full     # adds N = 40k
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
MARKET_N, MARKET_IDS, MARKET_D = 12936, 751, 2048

# name -> (preset or None, EnergyAgglomerative parameters)
CONFIGS = {
    "ecluster": (None, {}),
    "buc": ("buc", {}),
    "dbc": ("dbc", {}),
    "weighted": (None, {"weighted": True}),
    "geometric": (None, {"merge_schedule": "geometric"}),
    "weighted+geometric": (None, {"weighted": True, "merge_schedule": "geometric"}),
}


# ----------------------------------------------------------------- memory
def _status_kib(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def _reset_peak():
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_kib():
    hwm = _status_kib("VmHWM")
    if hwm is None:  # not Linux: ru_maxrss (KiB on Linux, bytes on macOS)
        import resource

        hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if sys.platform == "darwin":
            hwm //= 1024
    return hwm


# ----------------------------------------------------------------- worker
def _n_ids(n):
    return MARKET_IDS if n == MARKET_N else max(2, round(n / (MARKET_N / MARKET_IDS)))


def _data_path(cache, n, d):
    return Path(cache) / f"reid_{n}_{d}.npz"


def _make_data(cache, n, d):
    """Generate once per (n, d); workers load the arrays (no generation peak)."""
    path = _data_path(cache, n, d)
    if not path.exists():
        import numpy as np

        from sklearn_ecluster.datasets import make_reid_features

        X, y, _ = make_reid_features(n, _n_ids(n), d, random_state=0)
        np.savez(path, X=X, y=y)
    return path


def _estimator(config, n_clusters, **extra):
    from sklearn_ecluster.cluster import EnergyAgglomerative, make_clusterer

    preset, params = CONFIGS[config]
    params = {"n_clusters": n_clusters, "merge_percent": 0.05, "device": "cpu",
              **params, **extra}
    if preset is None:
        return EnergyAgglomerative(**params)
    return make_clusterer(preset, **params)


def worker(spec):
    """Run one measurement in this (fresh) process; return a dict."""
    import numpy as np
    import torch

    torch.set_num_threads(spec.get("threads", torch.get_num_threads()))
    # import everything a fit may import lazily, so that the baseline holds it
    import sklearn.cluster  # noqa: F401
    import sklearn.metrics  # noqa: F401

    import sklearn_ecluster.cluster  # noqa: F401
    import sklearn_ecluster.utils._distances  # noqa: F401

    rss_base = _status_kib("VmRSS")  # interpreter + libraries, no data yet
    data = np.load(spec["data"])
    X, y = data["X"], data["y"]
    n_clusters = int(y.max()) + 1
    out = {"n": X.shape[0], "d": X.shape[1], "threads": torch.get_num_threads(),
           "x_bytes": X.nbytes}
    kind = spec["kind"]
    reset = _reset_peak()
    rss_data = _status_kib("VmRSS")
    out.update(rss_base_kib=rss_base, rss_data_kib=rss_data, peak_reset=reset)

    def peak():
        hwm = _peak_kib()
        return {"peak_above_base_bytes": (hwm - rss_base) * 1024,
                "peak_above_data_bytes": (hwm - rss_data) * 1024}

    if kind == "fit":
        from sklearn.metrics import adjusted_rand_score

        Xt = torch.from_numpy(X)
        fits, cdists, steps, ari = [], [], [], None
        for r in range(spec["repeats"]):
            model = _estimator(spec["config"], n_clusters)
            t0 = time.perf_counter()
            try:
                model.fit(X)
            except MemoryError as exc:
                out.update(error=f"MemoryError: {exc}",
                           seconds_to_error=time.perf_counter() - t0, **peak())
                return out
            fits.append(time.perf_counter() - t0)
            steps.append(sum(model.history_["seconds"]))
            if r == 0:
                out.update(peak())  # the fit alone: no cdist has run yet
                ari = adjusted_rand_score(y, model.labels_)
                out["n_steps"] = model.n_steps_
            del model
            if spec.get("cdist", True):
                t0 = time.perf_counter()
                D = torch.cdist(Xt, Xt)
                cdists.append(time.perf_counter() - t0)
                del D
        out.update(fit_s=fits, steps_s=steps, cdist_s=cdists, ari=ari)
    elif kind == "sklearn":
        from sklearn.cluster import AgglomerativeClustering

        t0 = time.perf_counter()
        AgglomerativeClustering(n_clusters=n_clusters, linkage="average").fit(X)
        out.update(fit_s=[time.perf_counter() - t0], **peak())
    elif kind == "distances":
        from sklearn_ecluster.utils._distances import self_distances

        Xt = torch.from_numpy(X)
        n = X.shape[0]
        buf = torch.empty((n, n), dtype=Xt.dtype)
        tiles_mib = n * n * Xt.element_size() / 4 / 2**20  # as PairMatrix does
        times = []
        for _ in range(spec["repeats"]):
            t0 = time.perf_counter()
            self_distances(Xt, "euclidean", out=buf, working_memory=tiles_mib)
            times.append(time.perf_counter() - t0)
        out.update(fit_s=times)
    elif kind == "exact":
        model = _estimator("ecluster", n_clusters, merge_percent=None)
        t0 = time.perf_counter()
        model.fit(X)
        total = time.perf_counter() - t0
        merge_s = sum(model.history_["seconds"])
        out.update(fit_s=[total], merges=len(model.children_), merge_s=merge_s)
    else:
        raise ValueError(kind)
    return out


def run_worker(spec, timeout=None):
    """Run ``worker(spec)`` in a fresh interpreter."""
    cmd = [sys.executable, __file__, "--worker", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}


# ----------------------------------------------------------------- report
def _git_state():
    """Commit of the working tree and whether it has local changes."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "sklearn_ecluster"],
                               cwd=root, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head}{' + uncommitted changes in sklearn_ecluster/' if dirty else ''}"


def _med(xs):
    return statistics.median(xs) if xs else float("nan")


def _gib(nbytes):
    return f"{nbytes / 2**30:.2f}"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _fit_row(label, res):
    if "error" in res:
        extra = ""
        if "seconds_to_error" in res:
            extra = f" (after {res['seconds_to_error']:.2f} s)"
        return [label, res.get("n", ""), res["error"][:160] + extra] + [""] * 7
    fit, cd = _med(res["fit_s"]), _med(res["cdist_s"])
    pairs = [f / c for f, c in zip(res["fit_s"], res["cdist_s"], strict=False)]
    ref = res["n"] ** 2 * 4 + res["x_bytes"]
    peak = res["peak_above_base_bytes"]
    return [
        label, res["n"], f"{fit:.2f}", f"{_med(res['steps_s']):.2f}", f"{cd:.2f}",
        f"{fit / cd:.2f}" + (f" ({_med(pairs):.2f})" if pairs else ""),
        _gib(peak), _gib(ref), f"{peak / ref:.2f}", f"{res['ari']:.3f}",
    ]


FIT_HEADER = ["config", "N", "fit s (median)", "of which steps s", "cdist s (median)",
              "fit / cdist (median of paired)", "peak GiB above base",
              "N*N*4 + X GiB", "peak ratio", "ARI"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small version (< 1 min)")
    parser.add_argument("--full", action="store_true", help="add N = 40,000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-sklearn", action="store_true",
                        help="skip scikit-learn's AgglomerativeClustering (~90 s)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=int, nargs="*",
                        help="override the N of the scaling table (d)")
    parser.add_argument("--skip-presets", action="store_true",
                        help="skip the other presets at N = 12,936")
    parser.add_argument("--skip-threads", action="store_true",
                        help="skip (e), the 1 vs 2 threads comparison")
    args = parser.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return

    import torch

    if args.quick:
        sizes, main_n, d, reps = [1000, 2000], 2000, 256, 2
        presets, exact_sizes, passes = ["buc", "dbc", "weighted", "geometric"], [1000], 1
    else:
        sizes = [2000, 5000, MARKET_N, 20000] + ([40000] if args.full else [])
        main_n, d, reps = MARKET_N, MARKET_D, args.repeats
        presets = ["buc", "dbc", "weighted", "geometric", "weighted+geometric"]
        exact_sizes, passes = [2000, 5000], 2
    if args.sizes:
        sizes = args.sizes
    if args.skip_presets:
        presets = []
    out = []

    def emit(text=""):
        print(text, flush=True)
        out.append(text)

    emit(f"# EnergyAgglomerative speed ({'quick' if args.quick else 'full' if args.full else 'default'} mode)")
    emit(f"code: {_git_state()}")
    emit(f"torch {torch.__version__}, {os.cpu_count()} CPUs, default torch threads "
         f"{torch.get_num_threads()}, X float32 d={d}, n_clusters = number of ids, "
         "merge_percent=0.05, device='cpu'")
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_ecluster_") as cache:
        def data(n):
            return str(_make_data(cache, n, d))

        # (a), (c), (d): the default E-cluster over N
        emit("\n## (a, c, d) E-cluster default, fit vs torch.cdist(X, X) in the same process")
        scale_rows, main = [], None
        for n in sizes:
            r = 1 if n >= 20000 else reps
            res = run_worker({"kind": "fit", "config": "ecluster", "data": data(n),
                              "repeats": r})
            if n == main_n:
                main = res
            scale_rows.append(_fit_row("ecluster", res))
            print("  ", scale_rows[-1], flush=True)
        emit(_table(FIT_HEADER, scale_rows))

        # (b) scikit-learn average linkage, once, at the main size
        if not args.no_sklearn:
            emit(f"\n## (b) vs sklearn AgglomerativeClustering(linkage='average') at N={main_n}")
            sk = run_worker({"kind": "sklearn", "data": data(main_n)})
            if "error" in sk or main is None or "error" in main:
                emit(f"failed: {sk.get('error')} / {None if main is None else main.get('error')}")
            else:
                e = _med(main["fit_s"])
                emit(_table(
                    ["estimator", "fit s", "peak GiB above base", "speed-up"],
                    [["sklearn average", f"{sk['fit_s'][0]:.1f}",
                      _gib(sk["peak_above_base_bytes"]), "1"],
                     ["EnergyAgglomerative (median)", f"{e:.2f}",
                      _gib(main["peak_above_base_bytes"]), f"{sk['fit_s'][0] / e:.1f}x"]]))

        # presets at the main size
        if presets:
            emit(f"\n## Other presets at N={main_n}")
        rows = [_fit_row("ecluster", main)] if main else []
        for name in presets:
            res = run_worker({"kind": "fit", "config": name, "data": data(main_n),
                              "repeats": min(reps, 2)})
            rows.append(_fit_row(name, res))
            print("  ", rows[-1], flush=True)
        if presets:
            emit(_table(FIT_HEADER, rows))

        # (e) threads: 1 vs 2, interleaved, each in a fresh process
        if not args.skip_threads:
            emit("\n## (e) torch threads 1 vs 2 per phase (fresh process each, interleaved)")
        phases = [] if args.skip_threads else [
            ("distance matrix (self_distances)", {"kind": "distances",
                                                  "data": data(main_n), "repeats": reps}),
            ("batched steps (fit minus distances)", {"kind": "fit", "config": "ecluster",
                                                     "data": data(main_n), "repeats": 1,
                                                     "cdist": False}),
            ("whole fit", None),
        ]
        phases += [(f"exact mode (merge_percent=None) whole fit, N={n}",
                    {"kind": "exact", "data": data(n)})
                   for n in ([] if args.skip_threads else exact_sizes)]
        rows, fit_results = [], {1: [], 2: []}
        for label, spec in phases:
            if spec is None:  # whole fit: from the batched-steps runs
                t1 = [x for r in fit_results[1] for x in r["fit_s"]]
                t2 = [x for r in fit_results[2] for x in r["fit_s"]]
            else:
                t1, t2 = [], []
                for _ in range(passes):  # 1, 2, 1, 2
                    for threads, acc in ((1, t1), (2, t2)):
                        res = run_worker({**spec, "threads": threads})
                        if "error" in res:
                            acc.append(float("nan"))
                            print("  ", label, threads, res["error"], flush=True)
                            continue
                        if spec["kind"] == "fit":
                            fit_results[threads].append(res)
                            acc.extend(res["steps_s"])
                        else:
                            acc.extend(res["fit_s"])
            m1, m2 = _med(t1), _med(t2)
            rows.append([label, f"{m1:.3f}", f"{m2:.3f}", f"{m1 / m2:.2f}",
                         "1 thread" if m1 < m2 else "2 threads"])
            print("  ", rows[-1], flush=True)
        if rows:
            emit(_table(["phase", "1 thread (median)", "2 threads (median)",
                     "t1 / t2", "faster"], rows))
    emit(f"\ntotal benchmark time {time.perf_counter() - t_all:.0f} s")
    RESULTS.mkdir(exist_ok=True)
    suffix = "quick" if args.quick else "full" if args.full else "default"
    if args.sizes:
        suffix += "_" + "_".join(map(str, args.sizes))
    path = RESULTS / f"bench_cluster_speed_{suffix}.md"
    path.write_text("\n".join(out) + "\n")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
