"""Speed of ReIDFeatureExtractor against a bare torch loop doing the same work.

For each backbone and input size, on the same images (JPEG files shaped like
Market-1501's crops, 128 x 64, written to a temporary folder), in one process:

- extraction: ``transform(paths)`` vs a loop that opens each file with PIL,
  applies the same transform, batches, and runs the same network (pool5 +
  L2-normalisation) under ``torch.inference_mode``;
- one training epoch: ``fit(paths, y)`` with ``epochs=1``, ``warm_start=True``
  (the network is built once, before timing) and ``memory_init="zeros"`` vs a
  loop with the same model, optimiser, batch size, augmentation, loss
  (cross-entropy of ``v @ V.T / 0.1``) and memory update (BUC's per-sample
  Python loop).

Repeats alternate between the two so that drifting machine load hits both
(fast configurations are repeated more, up to 15 times). The table gives
medians of wall-clock time (time.perf_counter) as images per second, and the
overhead ``estimator / bare - 1`` (target <= 10 %; negative: the estimator was
faster) in wall-clock time and in CPU time of the process
(time.process_time), which other jobs on a shared machine do not inflate.
The mean-initialised memory (the default) costs one extra extraction pass per
fit, reported on its own line.

Torch runs on ONE thread by default (``--threads 0``: torch's own choice, one
per core). On a machine shared with other jobs, OpenMP threads that wait for
each other make multi-threaded timings swing by several times between two
repeats of the same work (measured on a 2-core machine at load 7: 2.7 to 12 s
for one resnet18 epoch, 1.2 s on one thread), which hides any overhead.

Usage::

    python benchmarks/bench_feature_extraction.py            # 32 images, >= 3 repeats
    python benchmarks/bench_feature_extraction.py --quick    # 16 images, resnet18 only
    python benchmarks/bench_feature_extraction.py --threads 0  # torch's thread count
"""

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from sklearn_ecluster.datasets import build_transforms
from sklearn_ecluster.feature_extraction import ReIDFeatureExtractor

RESULTS = Path(__file__).resolve().parent / "results"


def write_images(folder, n, seed=0):
    """Market-like crops: 128 x 64 JPEG files of blurred random blobs."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        small = rng.integers(0, 256, size=(16, 8, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((64, 128), Image.BILINEAR)
        path = Path(folder) / f"{i // 4:04d}_c1s1_{i:06d}_00.jpg"
        image.save(path, quality=90)
        paths.append(str(path))
    return paths


# ----------------------------------------------------------- bare loops
def bare_extract(model, paths, image_size, batch_size):
    transform = build_transforms(image_size)
    out = []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(paths), batch_size):
            batch = []
            for p in paths[start:start + batch_size]:
                with Image.open(p) as im:
                    batch.append(transform(im.convert("RGB")))
            f = model(torch.stack(batch), output="pool5")
            out.append(F.normalize(f, dim=1).numpy())
    return np.concatenate(out)


def bare_epoch(model, paths, y, image_size, batch_size, lr, generator):
    transform = build_transforms(image_size, train=True)
    memory = torch.zeros(int(y.max()) + 1, model.out_features("embedding"))
    optimizer = torch.optim.SGD(
        [{"params": model.backbone.parameters(), "lr": lr * 0.1},
         {"params": model.head.parameters(), "lr": lr}],
        lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    labels = torch.as_tensor(y)
    order = torch.randperm(len(paths), generator=generator)
    model.train()
    for start in range(0, len(paths), batch_size):
        index = order[start:start + batch_size]
        if len(index) < 2:
            continue
        batch = []
        for i in index.tolist():
            with Image.open(paths[i]) as im:
                batch.append(transform(im.convert("RGB")))
        v = model(torch.stack(batch), output="embedding")
        target = labels[index]
        loss = F.cross_entropy(v @ memory.t() / 0.1, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for x, t in zip(v.detach(), target.tolist()):
                memory[t] = F.normalize(0.5 * memory[t] + 0.5 * x, dim=0)
    model.eval()


# ------------------------------------------------------------ measuring
def timed(fn):
    """(wall seconds, process CPU seconds) of ``fn()``."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def medians(times):
    return tuple(statistics.median(t[i] for t in times) for i in range(2))


def alternate(a, b, repeats, budget=10.0):
    """Median (wall, CPU) seconds of ``a`` and ``b``, run alternately after a warm-up.

    At least ``repeats`` pairs; fast pairs are repeated more (up to 15 pairs, or
    about ``budget`` seconds) so that bursts of load from other processes do
    not move the medians.
    """
    pair = timed(a)[0] + timed(b)[0]
    repeats = max(repeats, min(15, int(budget / max(pair, 1e-3))))
    ta, tb = [], []
    for r in range(repeats):
        if r % 2 == 0:
            ta.append(timed(a))
            tb.append(timed(b))
        else:
            tb.append(timed(b))
            ta.append(timed(a))
    return medians(ta), medians(tb)


def bench(backbone, image_size, paths, repeats, batch_size=64, train_batch_size=16):
    n = len(paths)
    y = np.arange(n) // 4  # four images per identity
    extractor = ReIDFeatureExtractor(
        backbone, image_size=image_size, batch_size=batch_size,
        train_batch_size=train_batch_size, epochs=1, lr_step=None,
        memory_init="zeros", warm_start=True, device="cpu", random_state=0,
    ).fit(paths)
    model = extractor.model_
    generator = torch.Generator().manual_seed(0)
    np.testing.assert_allclose(  # same work: the same features
        extractor.transform(paths), bare_extract(model, paths, image_size, batch_size),
        atol=1e-5)
    rows = []
    ours, bare = alternate(
        lambda: extractor.transform(paths),
        lambda: bare_extract(model, paths, image_size, batch_size), repeats)
    rows.append(("extract", ours, bare))
    ours, bare = alternate(
        lambda: extractor.fit(paths, y),
        lambda: bare_epoch(model, paths, y, image_size, train_batch_size, 0.1, generator),
        repeats)
    rows.append(("train epoch", ours, bare))
    # the default memory initialisation: one extraction pass of the embedding
    extractor.set_params(memory_init="mean")
    mean_init = medians([timed(lambda: extractor.fit(paths, y)) for _ in range(repeats)])
    rows.append(("train epoch, memory_init='mean'", mean_init, None))
    return [(backbone, f"{image_size[0]}x{image_size[1]}", what, n / o[0],
             None if b is None else n / b[0],
             None if b is None else o[0] / b[0] - 1,
             None if b is None else o[1] / b[1] - 1)
            for what, o, b in rows]


def _percent(x):
    return "-" if x is None else f"{100 * x:+.1f} %"


def format_table(results):
    lines = ["| backbone | input | task | estimator img/s | bare loop img/s "
             "| overhead (wall) | overhead (CPU time) |",
             "|---|---|---|---|---|---|---|"]
    for backbone, size, what, ours, bare, over, over_cpu in results:
        lines.append(f"| {backbone} | {size} | {what} | {ours:.1f} | "
                     + ("-" if bare is None else f"{bare:.1f}")
                     + f" | {_percent(over)} | {_percent(over_cpu)} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="16 images, resnet18 only, 2 repeats")
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads (default 1; 0: torch's own choice)")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n = args.images or (16 if args.quick else 32)
    repeats = args.repeats or (2 if args.quick else 3)
    backbones = ["resnet18"] if args.quick else ["resnet18", "resnet50"]
    sizes = [(128, 64)] if args.quick else [(128, 64), (256, 128)]
    header = (f"{n} images, {repeats} repeats (medians), torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads, {platform.processor() or 'cpu'}, "
              f"{os.cpu_count()} cores")
    print(header)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_images(tmp, n)
        for backbone in backbones:
            for size in sizes:
                start = time.perf_counter()
                rows = bench(backbone, size, paths, repeats)
                results += rows
                print("\n".join(format_table(rows).splitlines()[2:]),
                      f"\n({time.perf_counter() - start:.0f} s)", flush=True)
    table = format_table(results)
    print()
    print(table)
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        name = "bench_feature_extraction" + ("_quick" if args.quick else "") + ".md"
        # results/ is git-ignored: a record of the last run on this machine
        command = " ".join(["python benchmarks/bench_feature_extraction.py",
                            *sys.argv[1:]])
        (RESULTS / name).write_text(
            "# ReIDFeatureExtractor vs a bare torch loop (CPU)\n\n"
            f"`{command}`: {header}.\n\n{table}\n")


if __name__ == "__main__":
    main()
