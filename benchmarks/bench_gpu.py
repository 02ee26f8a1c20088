"""Timings of the GPU paths (issue 9, section 5), one part per call.

Run by ``benchmarks/gpu_check.sh``, which calls this script once per part
under its own hard ``timeout`` and then ``--report`` to print the table.
Each call appends one JSON line per measurement to ``--results``.

Parts (``--parts``, any of them):

cluster
    ``EnergyAgglomerative`` (E-cluster defaults, ``merge_percent=0.05``,
    ``n_clusters`` = the number of identities) on L2-normalised synthetic
    re-ID features from ``make_reid_features`` (d = 2048), at each
    ``--cluster-n`` (default 12,936 = Market-1501's training set); beside
    it one ``torch.cdist(X, X)`` on the same device, as a yardstick.
metrics
    ``evaluate_features`` at Market-1501's test size: 3,368 queries x
    15,913 gallery images, 2048-d (distances, ranking, CMC, mAP, mINP).
extractor
    ``ReIDFeatureExtractor`` (ResNet-50, random initialisation, 256 x 128)
    with its ``amp`` option off and on: ``transform`` images/s from a float
    tensor already on the device and from uint8 arrays (the CPU pipeline,
    DataLoader workers); ``fit`` (one epoch, training only) images/s; and a
    bare torchvision ResNet-50 forward loop under ``torch.autocast`` beside
    it, to show the extractor's own overhead.
loop
    One round of ``SelfTrainingReID`` (round 0: train one epoch, extract
    the training set, evaluate, cluster one step) on a Market-1501-sized
    set held in memory (random uint8 images: 12,936 training, 3,368 query,
    15,913 gallery), then round 1 without training (extract and evaluate
    only), so that the clustering step of round 0 runs.

``--small`` shrinks every size (and the images to 64 x 32) so that the
script can be checked on a CPU in a minute: ``--device cpu --small``.

Usage::

    python benchmarks/bench_gpu.py --parts cluster metrics --results r.jsonl
    python benchmarks/bench_gpu.py --report r.jsonl --markdown table.md
    python benchmarks/bench_gpu.py --device cpu --small --parts extractor --results r.jsonl
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

MARKET = {"train": 12936, "ids": 751, "query": 3368, "gallery": 15913, "d": 2048}
PARTS = ("cluster", "graph", "metrics", "extractor", "loop")


# ------------------------------------------------------------------ helpers
def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device):
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device):
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return None


def _timed(fn, device):
    """(seconds, result) of ``fn()``, the device synchronised on both sides."""
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t0, out


class Recorder:
    """Appends one JSON line per measurement (so a part killed later keeps its rows)."""

    def __init__(self, path, device, small):
        self.path, self.device, self.small = path, device, small

    def __call__(self, part, what, seconds, *, rate=None, note="", peak=None):
        row = {"part": part, "what": what, "device": str(self.device),
               "small": self.small, "seconds": seconds, "rate": rate,
               "peak_gib": peak, "note": note}
        line = json.dumps(row)
        print(line, flush=True)
        if self.path:
            with open(self.path, "a") as fh:
                fh.write(line + "\n")


def _n_ids(n):
    # Market-1501's average of 17.2 images per identity at every N
    return MARKET["ids"] if n == MARKET["train"] else max(2, round(n * MARKET["ids"]
                                                                   / MARKET["train"]))


# ------------------------------------------------------------------- parts
def bench_cluster(args, device, record):
    import torch
    from sklearn.metrics import adjusted_rand_score

    from sklearn_ecluster.cluster import EnergyAgglomerative
    from sklearn_ecluster.datasets import make_reid_features

    d = 64 if args.small else MARKET["d"]
    sizes = args.cluster_n or [MARKET["train"]]
    if args.small:  # the same calls at 1/40 of the size
        sizes = [max(200, n // 40) for n in sizes]
    # warm-up: CUDA context, cuBLAS handles, the kernels of every step
    Xw, yw, _ = make_reid_features(500, 30, d, random_state=1)
    EnergyAgglomerative(n_clusters=30, merge_percent=0.05, device=device).fit(
        torch.from_numpy(Xw).to(device))
    for n in sizes:
        X, y, _ = make_reid_features(n, _n_ids(n), d, random_state=0)
        Xt = torch.from_numpy(X).to(device)
        model = EnergyAgglomerative(n_clusters=_n_ids(n), merge_percent=0.05,
                                    device=device)
        _reset_peak(device)
        seconds, model = _timed(lambda m=model, X=Xt: m.fit(X), device)
        peak = _peak_gib(device)
        ari = adjusted_rand_score(y, model.labels_)
        record("cluster", f"EnergyAgglomerative fit, N={n:,}, d={d}", seconds,
               peak=peak, note=f"{model.n_steps_} steps to {model.n_clusters_} clusters "
                               f"(merge_percent=0.05), ARI {ari:.2f}")
        cd, _ = _timed(lambda X=Xt: torch.cdist(X, X), device)
        record("cluster", f"torch.cdist(X, X), N={n:,} (yardstick)", cd,
               note=f"fit / cdist = {seconds / cd:.1f}")
        del Xt, model
        if device.type == "cuda":
            torch.cuda.empty_cache()


def bench_graph(args, device, record):
    """The graph mode on the GPU: exact kNN graph (torch) and the merges."""
    import torch
    from sklearn.metrics import adjusted_rand_score

    from sklearn_ecluster.cluster import EnergyAgglomerative, knn_graph
    from sklearn_ecluster.datasets import make_reid_features

    d = 64 if args.small else 256
    sizes = [2000] if args.small else (args.graph_n or [100_000])
    for n in sizes:
        X, y, _ = make_reid_features(n, _n_ids(n), d, random_state=0)
        Xt = torch.from_numpy(X).to(device)
        _reset_peak(device)
        seconds, G = _timed(lambda X=Xt: knn_graph(X, 10, device=device), device)
        record("graph", f"knn_graph torch exact, N={n:,}, d={d}, k=10", seconds,
               peak=_peak_gib(device))
        model = EnergyAgglomerative(n_clusters=_n_ids(n), merge_percent=None,
                                    weighted=True, regularizer=None, connectivity=G,
                                    device=device)
        _reset_peak(device)
        seconds, model = _timed(lambda m=model, X=Xt: m.fit(X), device)
        ari = adjusted_rand_score(y, model.labels_)
        record("graph", f"graph-mode fit (weighted energy, exact), N={n:,}", seconds,
               peak=_peak_gib(device), note=f"{model.engine_}, ARI {ari:.2f}")
        del Xt, model


def bench_metrics(args, device, record):
    import torch

    from sklearn_ecluster.datasets import make_reid_features
    from sklearn_ecluster.metrics import evaluate_features

    nq, ng, d = ((100, 400, 64) if args.small
                 else (MARKET["query"], MARKET["gallery"], MARKET["d"]))
    X, pids, cams = make_reid_features(nq + ng, _n_ids(nq + ng), d, random_state=0)
    rng = np.random.default_rng(0)
    order = rng.permutation(nq + ng)
    q, g = order[:nq], order[nq:]
    Xt = torch.from_numpy(X).to(device)
    args_ = (Xt[q], Xt[g], pids[q], pids[g], cams[q], cams[g])
    evaluate_features(Xt[q[:50]], Xt[g[:200]], pids[q[:50]], pids[g[:200]],
                      cams[q[:50]], cams[g[:200]], device=device)  # warm-up
    for rep in range(2):
        _reset_peak(device)
        seconds, res = _timed(lambda: evaluate_features(*args_, device=device), device)
        record("metrics", f"evaluate_features {nq:,} x {ng:,}, d={d} (run {rep + 1})",
               seconds, peak=_peak_gib(device),
               note=f"mAP {100 * float(res['mAP']):.1f} on synthetic features")


def bench_extractor(args, device, record):
    import torch
    import torchvision

    from sklearn_ecluster.feature_extraction import ReIDFeatureExtractor

    size = (64, 32) if args.small else (256, 128)
    n_inf = 64 if args.small else args.extractor_n
    n_train = 32 if args.small else args.extractor_train_n
    batch = 16 if args.small else 256
    workers = 0 if args.small else args.num_workers
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    tensor = torch.randn(n_inf, 3, *size, generator=gen).to(device)
    arrays = rng.integers(0, 256, size=(n_inf, *size, 3), dtype=np.uint8)
    labels = np.arange(n_train) % max(2, n_train // 16)
    amp_note = "AMP is a no-op off CUDA" if device.type != "cuda" else ""
    for amp in (False, True):
        tag = "AMP on" if amp else "AMP off"
        ext = ReIDFeatureExtractor("resnet50", image_size=size, batch_size=batch,
                                   amp=amp, num_workers=workers, memory_init="zeros",
                                   epochs=1, device=device, random_state=0)
        ext.fit(arrays[:2])  # builds the network only (no labels, no training)
        ext.transform(tensor[:batch])  # warm-up (cuDNN algorithm choice)
        _reset_peak(device)
        s, _ = _timed(lambda e=ext: e.transform(tensor), device)
        record("extractor", f"transform, float tensor on {device.type}, {tag}", s,
               rate=n_inf / s, peak=_peak_gib(device),
               note=f"ResNet-50 {size[0]}x{size[1]}, batch {batch}; {amp_note}")
        s, _ = _timed(lambda e=ext: e.transform(arrays), device)
        record("extractor", f"transform, uint8 arrays (CPU pipeline), {tag}", s,
               rate=n_inf / s, note=f"num_workers={workers}")
        ext.set_params(warm_start=True)
        _reset_peak(device)
        s, _ = _timed(lambda e=ext: e.fit(arrays[:n_train], labels), device)
        record("extractor", f"fit 1 epoch (training only), {tag}", s,
               rate=n_train / s, peak=_peak_gib(device),
               note=f"train_batch_size={ext.train_batch_size} (SPEC 7), "
                    f"num_workers={workers}, memory_init='zeros'")
        del ext
    # the bare network, for the extractor's overhead (slicing, copies, .cpu())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = torchvision.models.resnet50().to(device).eval()
    for amp in (False, True):
        def forward(amp=amp):
            with torch.inference_mode(), torch.autocast(
                    device.type, dtype=torch.float16 if device.type == "cuda"
                    else torch.bfloat16, enabled=amp):
                for start in range(0, n_inf, batch):
                    net(tensor[start:start + batch])
        forward()  # warm-up
        s, _ = _timed(forward, device)
        record("extractor", f"bare torchvision resnet50 forward, autocast "
               f"{'on' if amp else 'off'}", s, rate=n_inf / s,
               note="same tensor and batch; no feature copy to the host"
                    + ("" if device.type == "cuda" else "; autocast bfloat16 on the CPU"))


def bench_loop(args, device, record):
    from sklearn_ecluster.cluster import make_clusterer
    from sklearn_ecluster.feature_extraction import ReIDFeatureExtractor
    from sklearn_ecluster.self_training import SelfTrainingReID

    if args.small:
        size, n_train, n_ids, nq, ng = (64, 32), 48, 12, 16, 40
    else:
        s = args.loop_scale
        size = (256, 128)
        n_train, nq, ng = (max(32, round(s * MARKET[k])) for k in ("train", "query",
                                                                   "gallery"))
        n_ids = _n_ids(n_train)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()

    def images(n):
        return rng.integers(0, 256, size=(n, *size, 3), dtype=np.uint8)

    X, Q, G = images(n_train), images(nq), images(ng)
    y = rng.integers(0, n_ids, n_train)
    eval_set = (Q, rng.integers(0, n_ids, nq), rng.integers(0, 6, nq),
                G, rng.integers(0, n_ids, ng), rng.integers(0, 6, ng))
    data_s = time.perf_counter() - t0
    workers = 0 if args.small else args.num_workers
    extractor = ReIDFeatureExtractor(
        "resnet50", image_size=size, epochs=1, amp=device.type == "cuda",
        batch_size=16 if args.small else 256, num_workers=workers, device=device,
        random_state=0)
    loop = SelfTrainingReID(extractor, make_clusterer("ecluster", device=device),
                            merge_percent=0.05, n_rounds=2, later_epochs=0,
                            selection="last", random_state=0, verbose=1)
    _reset_peak(device)
    seconds, loop = _timed(lambda: loop.fit(X, y, eval_set=eval_set), device)
    h0, h1 = loop.history_
    eval0 = h0["seconds"] - h0["train_seconds"] - h0["extract_seconds"] - h0["cluster_seconds"]
    what = f"SelfTrainingReID round 0, {n_train:,} train / {nq:,} query / {ng:,} gallery"
    record("loop", what, h0["seconds"], peak=_peak_gib(device), note=(
        f"train 1 epoch (with the memory's first extraction pass) "
        f"{h0['train_seconds']:.1f} s, extract {h0['extract_seconds']:.1f} s, "
        f"evaluate {eval0:.1f} s, cluster 1 step {h0['cluster_seconds']:.1f} s "
        f"({h0['n_clusters']:,} -> {h1['n_clusters']:,} clusters); ResNet-50 "
        f"{size[0]}x{size[1]}, amp={extractor.amp}, num_workers={workers}; "
        f"random images drawn in {data_s:.1f} s"))
    record("loop", "SelfTrainingReID round 1 without training (extract + evaluate)",
           h1["seconds"], note=f"whole fit of 2 rounds {seconds:.1f} s")


BENCHES = {"cluster": bench_cluster, "graph": bench_graph, "metrics": bench_metrics,
           "extractor": bench_extractor, "loop": bench_loop}


# ------------------------------------------------------------------ report
def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def _seconds(value):
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def report(path, markdown=None, failures=()):
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line]
    lines = ["| part | measurement | device | seconds | images/s | peak GPU GiB | notes |",
             "|---|---|---|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['part']} | {r['what']} | {r['device']}"
                     f"{' (small)' if r.get('small') else ''} | {_seconds(r['seconds'])} | "
                     f"{_fmt(r['rate'], ',.0f')} | {_fmt(r['peak_gib'], '.2f')} | "
                     f"{r['note']} |")
    text = "\n".join(lines)
    print(text)
    if markdown:
        Path(markdown).write_text(text + "\n")
    return text


def _environment(device):
    import torch

    import sklearn_ecluster

    gpu = (torch.cuda.get_device_name(device) if device.type == "cuda"
           else platform.processor() or platform.machine())
    return (f"torch {torch.__version__}, sklearn_ecluster {sklearn_ecluster.__version__} "
            f"({Path(sklearn_ecluster.__file__).parent}), {gpu}, "
            f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", nargs="+", choices=PARTS, default=[])
    p.add_argument("--device", default="cuda")
    p.add_argument("--small", action="store_true", help="tiny sizes, for a CPU check")
    p.add_argument("--cluster-n", type=int, nargs="+", default=None,
                   help="N of the cluster part (default 12936; gpu_check.sh also 40000)")
    p.add_argument("--graph-n", type=int, nargs="+", default=None,
                   help="sizes of the graph-mode part (default 100,000)")
    p.add_argument("--extractor-n", type=int, default=4096,
                   help="images per transform timing")
    p.add_argument("--extractor-train-n", type=int, default=2048,
                   help="images of the one-epoch fit timing")
    p.add_argument("--loop-scale", type=float, default=1.0,
                   help="fraction of Market-1501's sizes for the loop part")
    p.add_argument("--num-workers", type=int, default=min(8, os.cpu_count() or 1))
    p.add_argument("--results", default=None, help="append JSON lines here")
    p.add_argument("--report", default=None, metavar="RESULTS",
                   help="print the markdown table of a results file")
    p.add_argument("--markdown", default=None, help="with --report: write the table here")
    p.add_argument("--note", nargs=3, metavar=("PART", "WHAT", "NOTE"),
                   help="append a row without a timing (gpu_check.sh: the pytest result, "
                        "a part that failed or ran out of time)")
    args = p.parse_args(argv)
    if args.report:
        report(args.report, args.markdown)
        return 0
    if args.note:
        part, what, note = args.note
        Recorder(args.results, args.device, args.small)(part, what, None, note=note)
        return 0
    import torch

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_gpu.py: --device cuda, but torch sees no CUDA device "
              "(use --device cpu --small for a CPU check)", file=sys.stderr)
        return 2
    print("#", _environment(device), flush=True)
    record = Recorder(args.results, device, args.small)
    for part in args.parts:
        t0 = time.perf_counter()
        BENCHES[part](args, device, record)
        print(f"# part {part}: {time.perf_counter() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
