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
        # the configuration for clustering a data set on its own
        ("standalone energy (exact)",
         lambda: make_clusterer("standalone", n_clusters=k, device=device)),
        ("standalone, automatic cut",
         lambda: make_clusterer("standalone", device=device)),
        # the paper's criteria, made for one step per round of the loop
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
    # the contrastive cluster-memory recipe (SPEC 11), camera-aware; not run by
    # default (``--methods``), so the README's demo keeps the paper's three
    "contrastive-DBSCAN": {"method": "contrastive_dbscan"},
    "contrastive-energy": {"method": "contrastive_energy"},
}
#: The methods the demo runs when none are named.
DEFAULT_DEMO_METHODS = ("E-cluster", "BUC", "DBC")


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
    """The self-training loop the demo runs for one ``method`` (preset or recipe).

    The paper's loops (``"ecluster"``, ``"buc"``, ``"dbc"``) with the demo's
    schedule; the contrastive recipes (``"contrastive_dbscan"``,
    ``"contrastive_energy"``) as :func:`~sklearn_ecluster.self_training.make_recipe`
    makes them, camera-aware, with batches of 8 identities x 4 images, one
    pass over the kept images a round and ``later_epochs`` epochs a round,
    except that round 0 trains on singletons for ``epochs`` epochs as the
    paper's loop does (``init="singletons"``): the demo's network starts from
    random weights, whose features have no clusters to start from (clustered
    directly they give 2-4 clusters of 300 images).
    """
    from .cluster import make_clusterer
    from .feature_extraction import ReIDFeatureExtractor
    from .self_training import SelfTrainingReID, make_recipe
    from .self_training._recipes import CONTRASTIVE_RECIPES

    extractor = ReIDFeatureExtractor(
        demo_backbone(), image_size=image_size, embedding_dim=256, epochs=epochs,
        lr=lr, lr_step=None, backbone_lr_mult=1.0, batch_size=128, train_batch_size=32,
        device=device, random_state=random_state,
    )
    if method in CONTRASTIVE_RECIPES:
        loop = make_recipe(method, extractor, n_rounds=n_rounds, camera_aware=True,
                           init="singletons", selection="last",
                           random_state=random_state, verbose=verbose)
        if "device" in loop.clusterer.get_params(deep=False):
            loop.set_params(clusterer__device=device)
        return loop.set_params(
            feature_extractor__train_batch_size=32,
            feature_extractor__num_instances=4, feature_extractor__iters_per_epoch=None,
            feature_extractor__epochs=epochs, later_epochs=later_epochs)
    return SelfTrainingReID(
        extractor, make_clusterer(method, device=device), merge_percent=merge_percent,
        n_rounds=n_rounds, later_epochs=later_epochs, later_lr=lr,
        selection="last", random_state=random_state, verbose=verbose,
    )


DEMO_SEEDS = (0, 1, 2)

# (history key, column title); scores are reported in percent
SPREAD_KEYS = (("rank1", "rank-1"), ("mAP", "mAP"), ("label_precision", "label P"),
               ("label_recall", "label R"))

SPREAD_NOTE = "mean ± std over the seeds (std: sample standard deviation, ddof=1)"

ROBUST_RULE = ("a difference between two methods exceeds the spread when "
               "|mean A - mean B| > std A + std B")


def seed_spread(histories, keys=tuple(k for k, _ in SPREAD_KEYS)):
    """Per round mean, std (``ddof=1``), min and max over runs of each key.

    Parameters
    ----------
    histories : list of list of dict
        ``SelfTrainingReID.history_`` of the same configuration run with
        different seeds (at least two).
    keys : tuple of str
        History entries to summarise; a round where any run lacks a key (or
        has None, as the pseudo-label precision of singletons) gets None.

    Returns
    -------
    spread : list of dict
        One dict per round that every run has: ``round``, ``n_clusters`` and,
        per key, ``{"mean", "std", "min", "max"}`` or None.

    Examples
    --------
    >>> from sklearn_ecluster._demo import seed_spread
    >>> runs = [[{"round": 0, "n_clusters": 9, "mAP": 0.2}],
    ...         [{"round": 0, "n_clusters": 9, "mAP": 0.4}]]
    >>> s = seed_spread(runs, keys=("mAP",))[0]["mAP"]
    >>> round(s["mean"], 6), round(s["std"], 6), s["min"], s["max"]
    (0.3, 0.141421, 0.2, 0.4)
    """
    if len(histories) < 2:
        raise ValueError(f"the spread needs at least 2 runs, got {len(histories)}.")
    out = []
    for r in range(min(len(h) for h in histories)):
        rows = [h[r] for h in histories]
        entry = {"round": rows[0]["round"],
                 "n_clusters": int(np.mean([row["n_clusters"] for row in rows]))}
        for key in keys:
            values = [row.get(key) for row in rows]
            if any(v is None for v in values):
                entry[key] = None
                continue
            v = np.asarray(values, dtype=float)
            entry[key] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)),
                          "min": float(v.min()), "max": float(v.max())}
        out.append(entry)
    return out


def robust_differences(spreads, keys=tuple(k for k, _ in SPREAD_KEYS), round_index=-1):
    """Differences between methods at one round, against their seed spread.

    A difference *exceeds the spread* when the difference of the two means
    is larger than the sum of the two standard deviations (see
    :data:`ROBUST_RULE`): the two mean ± std intervals do not overlap.

    Parameters
    ----------
    spreads : dict
        Method name -> :func:`seed_spread` of its runs.
    keys : tuple of str
        Scores to compare.
    round_index : int, default=-1
        Index of the round in every spread (-1: the last one).

    Returns
    -------
    rows : list of dict
        Per key and pair of methods (in the order of ``spreads``): ``key``,
        ``a``, ``b``, ``difference`` (mean of a minus mean of b), ``margin``
        (std of a plus std of b) and ``exceeds``.
    """
    from itertools import combinations

    rows = []
    for key in keys:
        for a, b in combinations(spreads, 2):
            sa, sb = spreads[a][round_index].get(key), spreads[b][round_index].get(key)
            if sa is None or sb is None:
                continue
            diff, margin = sa["mean"] - sb["mean"], sa["std"] + sb["std"]
            rows.append({"key": key, "a": a, "b": b, "difference": diff,
                         "margin": margin, "exceeds": bool(abs(diff) > margin)})
    return rows


def _pm(stat):
    return "-" if stat is None else f"{100 * stat['mean']:.1f} ± {100 * stat['std']:.1f}"


def spread_table(spread):
    """One method's per-round mean ± std (in %) as a plain-text table."""
    rows = [{"round": str(s["round"]), "clusters": str(s["n_clusters"]),
             **{title: _pm(s[key]) for key, title in SPREAD_KEYS}} for s in spread]
    return format_table(rows, ["round", "clusters", *(t for _, t in SPREAD_KEYS)])


def _differences_text(rows):
    titles = dict(SPREAD_KEYS)
    table = [{"score": titles[r["key"]], "methods": f"{r['a']} - {r['b']}",
              "difference": f"{100 * r['difference']:+.1f}",
              "std sum": f"{100 * r['margin']:.1f}",
              "exceeds the spread": "yes" if r["exceeds"] else "no"} for r in rows]
    lines = [format_table(table, list(table[0]))] if table else []
    robust = [r for r in rows if r["exceeds"]]
    if robust:
        lines.append("differences larger than the spread: " + "; ".join(
            f"{titles[r['key']]}: {r['a'] if r['difference'] > 0 else r['b']} above "
            f"{r['b'] if r['difference'] > 0 else r['a']} by {100 * abs(r['difference']):.1f}"
            for r in robust))
    else:
        lines.append("no difference between the methods is larger than the spread.")
    return "\n".join(lines)


def write_demo_results(out_dir, runs, spreads, differences, *, seconds=None):
    """``history.json`` / ``.csv``, ``summary.csv`` and ``history.png`` (with bands)."""
    import csv
    import json
    from pathlib import Path

    from ._jobs import HISTORY_COLUMNS

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(next(iter(runs.values())))
    paths = {"json": out / "history.json", "csv": out / "history.csv",
             "summary": out / "summary.csv", "png": None}
    paths["json"].write_text(json.dumps({
        "seeds": seeds, "spread": SPREAD_NOTE, "rule": ROBUST_RULE,
        "runs": {m: {str(s): h for s, h in by_seed.items()} for m, by_seed in runs.items()},
        "summary": spreads, "differences_last_round": differences, "seconds": seconds,
    }, indent=2))
    rows = [{"method": m, "seed": s, **h} for m, by_seed in runs.items()
            for s, hist in by_seed.items() for h in hist]
    keys = [k for k in ("method", "seed", *HISTORY_COLUMNS) if any(k in r for r in rows)]
    with open(paths["csv"], "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    stats = ("mean", "std", "min", "max")
    with open(paths["summary"], "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["method", "round", "n_clusters",
                         *(f"{k}_{s}" for k, _ in SPREAD_KEYS for s in stats)])
        for m, spread in spreads.items():
            for e in spread:
                writer.writerow([m, e["round"], e["n_clusters"], *(
                    "" if e[k] is None else e[k][s] for k, _ in SPREAD_KEYS for s in stats)])
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return paths
    from .plotting import plot_history

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, (m, by_seed) in enumerate(runs.items()):
        hists = list(by_seed.values())
        plot_history(hists, keys=("mAP", "rank1"), ax=axes[0], label=m, color=f"C{i}")
        plot_history(hists, keys=("label_precision", "label_recall"), ax=axes[1], label=m,
                     color=f"C{i}")
    axes[0].set_title("retrieval on the query / gallery split")
    axes[1].set_title("pseudo labels against the true ids")
    fig.suptitle(f"synthetic re-ID demo: mean and ± 1 std band over seeds "
                 f"{', '.join(map(str, seeds))}")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    paths["png"] = out / "history.png"
    fig.savefig(paths["png"], dpi=120)
    plt.close(fig)
    return paths


def print_summary(spreads, n_seeds, *, print_fn=print):
    """Print the last round of every method and which differences exceed the spread.

    Returns the :func:`robust_differences` at the last round (empty for one
    method).
    """
    last = min(len(s) for s in spreads.values()) - 1
    summary = [{"method": name,
                "rank-1 round 0": _pm(s[0]["rank1"]), "rank-1 last": _pm(s[last]["rank1"]),
                "mAP round 0": _pm(s[0]["mAP"]), "mAP last": _pm(s[last]["mAP"]),
                "label P last": _pm(s[last]["label_precision"]),
                "label R last": _pm(s[last]["label_recall"])}
               for name, s in spreads.items()]
    print_fn(f"summary (%, {SPREAD_NOTE}, {n_seeds} seeds; round 0 = after training "
             f"on singletons; last = round {last}):")
    print_fn(format_table(summary, list(summary[0])))
    differences = robust_differences(spreads, round_index=last) if len(spreads) > 1 else []
    if differences:
        print_fn(f"\ndifferences between methods at round {last} ({ROBUST_RULE}):")
        print_fn(_differences_text(differences))
    return differences


def _check_seeds(seeds):
    seeds = [int(s) for s in seeds]
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds={seeds}: give at least two different seeds; the spread "
                         "over seeds is what the demo reports.")
    return seeds


def reid_demo(*, out_dir=None, data_dir=None, methods=DEFAULT_DEMO_METHODS,
              seeds=DEMO_SEEDS, n_identities=80, print_fn=print, **loop_params):
    """Run the loop for each method and training seed; print and return the results.

    Every method runs once per seed on the same synthetic dataset (its draw
    does not depend on the seeds); the seed sets the network's
    initialisation and each round's training order. Printed: per method
    the mean ± std over seeds per round, then the last round of all
    methods, and which differences between methods exceed the spread
    (:data:`ROBUST_RULE`), and the whole time.

    Returns ``{"runs": {method: {seed: history}}, "spread": {method:
    seed_spread}, "differences": robust_differences at the last round,
    "seconds": the whole time}``; with ``out_dir`` also writes the files of
    :func:`write_demo_results`.
    """
    from ._jobs import train

    seeds = _check_seeds(seeds)
    start = time.perf_counter()
    runs, spreads = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        dataset = make_demo_dataset(data_dir or tmp, n_identities=n_identities,
                                    image_size=loop_params.get("image_size", (64, 32)))
        print_fn(f"synthetic dataset: {len(dataset.train.paths)} training images of "
                 f"{len(np.unique(dataset.train.pids))} people (labels not used for "
                 f"training), {len(dataset.query.paths)} queries, "
                 f"{len(dataset.gallery.paths)} gallery images "
                 f"({time.perf_counter() - t0:.1f} s)")
        print_fn(f"{len(methods)} methods x {len(seeds)} training seeds "
                 f"({', '.join(map(str, seeds))})\n")
        for name in methods:
            runs[name] = {}
            for seed in seeds:
                loop = demo_loop(DEMO_METHODS[name]["method"],
                                 **{**loop_params, "random_state": seed})
                t0 = time.perf_counter()
                train(loop, dataset)
                h = loop.history_
                runs[name][seed] = h
                print_fn(f"{name}, seed {seed} ({time.perf_counter() - t0:.0f} s): "
                         f"mAP {100 * h[0]['mAP']:.1f} -> {100 * h[-1]['mAP']:.1f}, "
                         f"rank-1 {100 * h[0]['rank1']:.1f} -> {100 * h[-1]['rank1']:.1f}")
            spreads[name] = seed_spread(list(runs[name].values()))
            print_fn(f"{name}, {SPREAD_NOTE}, %:")
            print_fn(spread_table(spreads[name]) + "\n")

    differences = print_summary(spreads, len(seeds), print_fn=print_fn)
    seconds = time.perf_counter() - start
    if out_dir is not None:
        paths = write_demo_results(out_dir, runs, spreads, differences, seconds=seconds)
        print_fn("\nwrote " + ", ".join(str(p) for p in paths.values() if p))
    print_fn(f"\nwhole demo: {seconds:.0f} s ({seconds / 60:.1f} min) for "
             f"{len(methods)} methods x {len(seeds)} seeds")
    return {"runs": runs, "spread": spreads, "differences": differences,
            "seconds": seconds}
