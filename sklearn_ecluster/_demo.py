"""The demos: the re-ID self-training loop on synthetic people, and clustering.

``reid_demo`` is the README's main job: E-cluster against the BUC and DBC
criteria in the self-training loop, on a synthetic person dataset drawn on
the fly (nothing downloaded), with a small network that suits a CPU.
``clustering_demo_rows`` compares the criteria on data that ships with
scikit-learn.
"""

import tempfile
import time

import numpy as np

from ._jobs import format_table

DEMO_DATASETS = ("digits", "wine", "iris")


def load_demo_data(name):
    from sklearn import datasets
    from sklearn.preprocessing import StandardScaler, normalize

    loader = {"digits": datasets.load_digits, "wine": datasets.load_wine,
              "iris": datasets.load_iris}[name]
    X, y = loader(return_X_y=True)
    # standardised, then L2-normalised: lam = 0.9 is meant for unit-norm features
    return normalize(StandardScaler().fit_transform(X)), y


def clustering_demo_rows(X, y, *, device="cpu", merge_percent=0.05):
    """Fit every demo method on ``(X, y)``; one result dict per method."""
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from .cluster import make_clusterer

    k = len(np.unique(y))
    methods = [
        ("E-cluster (paper defaults)",
         lambda: make_clusterer("ecluster", n_clusters=k, merge_percent=merge_percent,
                                device=device)),
        ("E-cluster weighted, geometric",
         lambda: make_clusterer("ecluster", n_clusters=k, merge_percent=merge_percent,
                                weighted=True, merge_schedule="geometric", device=device)),
        ("E-cluster without regulariser",
         lambda: make_clusterer("ecluster_noreg", n_clusters=k,
                                merge_percent=merge_percent, device=device)),
        ("BUC criterion",
         lambda: make_clusterer("buc", n_clusters=k, merge_percent=merge_percent,
                                device=device)),
        ("DBC criterion",
         lambda: make_clusterer("dbc", n_clusters=k, merge_percent=merge_percent,
                                device=device)),
        ("scikit-learn Ward", lambda: AgglomerativeClustering(k, linkage="ward")),
        ("scikit-learn average", lambda: AgglomerativeClustering(k, linkage="average")),
    ]
    rows = []
    for name, make in methods:
        model = make()
        t0 = time.perf_counter()
        labels = model.fit_predict(X)
        seconds = time.perf_counter() - t0
        rows.append({
            "method": name,
            "n_clusters": int(len(np.unique(labels))),
            "ARI": float(adjusted_rand_score(y, labels)),
            "NMI": float(normalized_mutual_info_score(y, labels)),
            "seconds": seconds,
        })
    return rows


# ------------------------------------------------------------------ re-ID
DEMO_METHODS = {
    "E-cluster": {"method": "ecluster"},
    "BUC": {"method": "buc"},
    "DBC": {"method": "dbc"},
}


def demo_backbone(width=32, random_state=0):
    """A small ConvNet for CPU demos: four 3x3 conv blocks, 8 x ``width`` channels out.

    ResNet-50 at 256 x 128 needs a GPU and pretrained weights; this network
    learns from scratch on 64 x 32 images in seconds per epoch on a CPU.
    """
    import torch
    from torch import nn

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True)]

    with torch.random.fork_rng():  # seeded weights, global RNG untouched
        torch.manual_seed(random_state)
        return nn.Sequential(
            *block(3, width), nn.MaxPool2d(2),
            *block(width, 2 * width), nn.MaxPool2d(2),
            *block(2 * width, 4 * width), nn.MaxPool2d(2),
            *block(4 * width, 8 * width),
        )


def make_demo_dataset(root, *, n_identities=80, image_size=(64, 32), random_state=0):
    """Draw (or reuse) the demo's synthetic dataset under ``root``; return its Bunch."""
    from .datasets import load_market1501, make_synthetic_reid

    path = make_synthetic_reid(
        root, n_identities=n_identities, images_per_identity=(4, 16),
        image_size=image_size, camera_shift=0.3, occlusion=0.05,
        random_state=random_state, overwrite=True,
    )
    return load_market1501(path)


def demo_loop(method, *, epochs=10, later_epochs=5, lr=0.1, merge_percent=0.15,
              n_rounds=5, image_size=(64, 32), device="cpu", random_state=0,
              verbose=0):
    """The self-training loop the demo runs for one clustering ``method`` preset."""
    from .cluster import make_clusterer
    from .feature_extraction import ReIDFeatureExtractor
    from .self_training import SelfTrainingReID

    extractor = ReIDFeatureExtractor(
        demo_backbone(), image_size=image_size, embedding_dim=256, epochs=epochs,
        lr=lr, lr_step=None, backbone_lr_mult=1.0, batch_size=128, train_batch_size=32,
        device=device, random_state=random_state,
    )
    return SelfTrainingReID(
        extractor, make_clusterer(method, device=device), merge_percent=merge_percent,
        n_rounds=n_rounds, later_epochs=later_epochs, later_lr=lr,
        selection="last", random_state=random_state, verbose=verbose,
    )


def reid_demo(*, out_dir=None, data_dir=None, methods=tuple(DEMO_METHODS),
              n_identities=80, print_fn=print, **loop_params):
    """Run the loop for each method on the synthetic dataset; print and return results.

    Returns ``{method name: history}``; with ``out_dir`` also writes the
    histories (JSON, CSV) and a plot of mAP and rank-1 per round.
    """
    from ._jobs import history_table, train, write_history

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        dataset = make_demo_dataset(data_dir or tmp, n_identities=n_identities,
                                    image_size=loop_params.get("image_size", (64, 32)))
        print_fn(f"synthetic dataset: {len(dataset.train.paths)} training images of "
                 f"{len(np.unique(dataset.train.pids))} people (labels not used for "
                 f"training), {len(dataset.query.paths)} queries, "
                 f"{len(dataset.gallery.paths)} gallery images "
                 f"({time.perf_counter() - t0:.1f} s)\n")
        runs = {}
        for name in methods:
            loop = demo_loop(DEMO_METHODS[name]["method"], **loop_params)
            t0 = time.perf_counter()
            train(loop, dataset)
            runs[name] = loop.history_
            print_fn(f"{name} ({time.perf_counter() - t0:.0f} s):")
            print_fn(history_table(loop.history_) + "\n")
    def pct(value):
        return "-" if value is None else f"{100 * value:.1f}"

    summary = [{"method": name,
                "rank-1 round 0": pct(h[0]["rank1"]), "rank-1 last": pct(h[-1]["rank1"]),
                "mAP round 0": pct(h[0]["mAP"]), "mAP last": pct(h[-1]["mAP"]),
                "label P last": pct(h[-1].get("label_precision")),
                "label R last": pct(h[-1].get("label_recall"))}
               for name, h in runs.items()]
    print_fn(f"summary (%, round 0 = after training on singletons; last = round "
             f"{len(next(iter(runs.values()))) - 1}):")
    print_fn(format_table(summary, list(summary[0])))
    if out_dir is not None:
        paths = write_history(None, out_dir, title="synthetic re-ID demo", runs=runs)
        print_fn("\nwrote " + ", ".join(str(p) for p in paths.values() if p))
    return runs
