"""How hard is the synthetic re-ID data? Hand-made baselines on query/gallery.

Generates a dataset with ``make_synthetic_reid`` (timed), reads the
``query/`` and ``bounding_box_test/`` folders (junk, person id -1, dropped;
distractors, person id 0, kept), and evaluates cross-camera retrieval
(Market-1501 protocol, ``sklearn_ecluster.metrics.evaluate_features``) with:

- ``raw pixels``: RGB resized to 64 x 32, flattened, L2-normalised;
- ``colour histogram``: a joint HSV histogram (8 x 3 x 3 bins) of each of 6
  horizontal stripes, concatenated, square-rooted (Hellinger) and
  L2-normalised;
- ``colour histogram, grey-world``: the same after dividing each colour
  channel by its mean over the image (removes most of a camera's colour cast
  and gain);
- ``colour histogram + LDA``: the histogram projected by linear discriminant
  analysis fitted on the training split with its identity labels (a
  supervised reference: what a *learned* metric gains over the hand-made
  one on the same data).

Usage::

    python benchmarks/bench_synthetic_baselines.py                 # 200 ids
    python benchmarks/bench_synthetic_baselines.py --n-identities 300 --seed 1
    python benchmarks/bench_synthetic_baselines.py --grid grid.png  # and a picture

The markdown table is printed and written to
``benchmarks/results/bench_synthetic_baselines.md``.
"""

import argparse
import re
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.preprocessing import normalize

from sklearn_ecluster.datasets import make_synthetic_reid
from sklearn_ecluster.metrics import evaluate_features

RESULTS = Path(__file__).resolve().parent / "results"
PATTERN = re.compile(r"([-\d]+)_c(\d)")


def read_split(folder):
    """Images (uint8 arrays), person ids and 0-based cameras of one folder."""
    images, pids, camids = [], [], []
    for path in sorted(Path(folder).glob("*.jpg")):
        pid, cam = map(int, PATTERN.match(path.name).groups())
        if pid == -1:  # junk: ignored, as for Market-1501
            continue
        with Image.open(path) as im:
            images.append(np.asarray(im.convert("RGB")))
        pids.append(pid)
        camids.append(cam - 1)
    return images, np.array(pids), np.array(camids)


def raw_pixels(images, size=(32, 64)):
    """Resized (``size`` is PIL's (width, height)), flattened, L2-normalised."""
    X = np.stack(
        [
            np.asarray(Image.fromarray(im).resize(size, Image.BILINEAR), np.float32)
            for im in images
        ]
    )
    return normalize(X.reshape(len(X), -1))


def colour_histograms(images, stripes=6, bins=(8, 3, 3)):
    """Joint HSV histograms of horizontal stripes, Hellinger + L2-normalised."""
    feats = []
    for im in images:
        hsv = np.asarray(Image.fromarray(im).convert("HSV"), np.int64)
        q = [hsv[..., c] * b // 256 for c, b in enumerate(bins)]
        code = (q[0] * bins[1] + q[1]) * bins[2] + q[2]
        n_bins = int(np.prod(bins))
        rows = np.array_split(np.arange(im.shape[0]), stripes)
        hist = [np.bincount(code[r].ravel(), minlength=n_bins) for r in rows]
        feats.append(np.concatenate(hist) / code.size)
    return normalize(np.sqrt(np.array(feats)))


def grey_world(images):
    """Each channel scaled to the same mean: a simple colour constancy."""
    out = []
    for im in images:
        f = im.astype(np.float32)
        f *= f.mean() / np.maximum(f.reshape(-1, 3).mean(0), 1.0)
        out.append(np.clip(f + 0.5, 0, 255).astype(np.uint8))
    return out


def save_grid(path, gallery, query, n_rows=4, n_cols=6):
    """Test identities (rows) as seen by their cameras (columns), as a small PNG."""
    images = gallery[0] + query[0]
    pids = np.concatenate([gallery[1], query[1]])
    cams = np.concatenate([gallery[2], query[2]])
    # the identities seen by the most cameras
    ids = np.unique(query[1])
    n_cams = [np.unique(cams[pids == p]).size for p in ids]
    rows = []
    for pid in ids[np.argsort(n_cams, kind="stable")[::-1][:n_rows]]:
        seen = {}
        for i in np.flatnonzero(pids == pid):
            seen.setdefault(cams[i], images[i])
        tiles = [seen[c] for c in sorted(seen)][:n_cols]
        blank = np.full_like(images[0], 255)
        rows.append(np.concatenate(tiles + [blank] * (n_cols - len(tiles)), axis=1))
    grid = Image.fromarray(np.concatenate(rows, axis=0))
    grid.quantize(colors=96, dither=Image.Dither.NONE).save(path, optimize=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-identities", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, nargs=2, default=(128, 64))
    parser.add_argument("--camera-shift", type=float, default=1.0)
    parser.add_argument("--occlusion", type=float, default=0.3)
    parser.add_argument("--grid", type=Path, default=None,
                        help="also save a PNG of test identities across cameras")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = make_synthetic_reid(
            tmp,
            n_identities=args.n_identities,
            image_size=tuple(args.image_size),
            camera_shift=args.camera_shift,
            occlusion=args.occlusion,
            random_state=args.seed,
        )
        gen_time = time.perf_counter() - t0
        n_files = {s: len(list((path / s).iterdir())) for s in
                   ("bounding_box_train", "query", "bounding_box_test")}
        train = read_split(path / "bounding_box_train")
        query = read_split(path / "query")
        gallery = read_split(path / "bounding_box_test")

    if args.grid is not None:
        save_grid(args.grid, gallery, query)
    n_query_ids = np.unique(query[1]).size
    # chance: rank-1 of a random ranking, averaged over the queries
    match = query[1][:, None] == gallery[1][None, :]
    ignored = match & (query[2][:, None] == gallery[2][None, :])
    chance = np.mean((match & ~ignored).sum(1) / (~ignored).sum(1))

    def hist_lda(tr, q, g):
        lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=0.1)
        lda.fit(tr, train[1])
        return normalize(lda.transform(q)), normalize(lda.transform(g))

    methods = {
        "raw pixels": (raw_pixels, None),
        "colour histogram": (colour_histograms, None),
        "colour histogram, grey-world": (
            lambda ims: colour_histograms(grey_world(ims)), None),
        "colour histogram + LDA (train split)": (colour_histograms, hist_lda),
    }
    rows = []
    for label, (feature, learn) in methods.items():
        t0 = time.perf_counter()
        qf, gf = feature(query[0]), feature(gallery[0])
        if learn is not None:
            qf, gf = learn(feature(train[0]), qf, gf)
        res = evaluate_features(qf, gf, query[1], gallery[1], query[2], gallery[2],
                                metric="euclidean")
        rows.append((label, res["rank1"], res["mAP"], time.perf_counter() - t0))

    def pct(v):  # evaluate_features returns fractions in [0, 1]
        return 100.0 * v

    lines = [
        f"Synthetic data: {args.n_identities} identities, seed {args.seed}, "
        f"images {args.image_size[0]}x{args.image_size[1]}, camera_shift "
        f"{args.camera_shift}, occlusion {args.occlusion}: "
        f"{n_files['bounding_box_train']} train / {n_files['query']} query / "
        f"{n_files['bounding_box_test']} gallery images, {n_query_ids} query ids; "
        f"generated in {gen_time:.1f} s.",
        "",
        "| features | rank-1 (%) | mAP (%) | time (s) |",
        "|---|---|---|---|",
        f"| chance (random ranking) | {100 * chance:.1f} | | |",
    ]
    lines += [f"| {m} | {pct(r1):.1f} | {pct(ap):.1f} | {t:.1f} |"
              for m, r1, ap, t in rows]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_synthetic_baselines.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
