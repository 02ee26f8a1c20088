"""The work behind the command line: load a dataset, run the loop, write its history.

Kept apart from ``cli.py`` (argument parsing) so that the demo, the command
line and the benchmarks run exactly the same code.
"""

import csv
import json
from pathlib import Path

import numpy as np

PARTS = ("train", "query", "gallery")
HISTORY_COLUMNS = ("round", "n_clusters", "loss", "rank1", "rank5", "rank10", "mAP", "mINP",
                   "label_precision", "label_recall", "label_nmi", "label_ari",
                   "train_seconds", "extract_seconds", "cluster_seconds", "seconds",
                   "world_size")


def _loaders():
    from . import datasets

    return {
        "market1501": datasets.load_market1501,
        "dukemtmc": datasets.load_dukemtmc_reid,
        "msmt17": datasets.load_msmt17,
        "prid450s": datasets.load_prid450s,
        "folder": datasets.load_reid_folder,
    }


LAYOUTS = ("market1501", "dukemtmc", "msmt17", "prid450s", "folder")


def load_dataset(root, layout="market1501", **kwargs):
    """A dataset ``Bunch`` (train / query / gallery) read by the loader of ``layout``."""
    loaders = _loaders()
    if layout not in loaders:
        raise ValueError(f"layout={layout!r} is not known; use one of {sorted(loaders)}.")
    return loaders[layout](root, **kwargs)


def format_table(rows, columns, floatfmt="{:.3f}"):
    """A plain-text table of ``rows`` (dicts) in the given column order."""
    cells = [[c for c in columns]]
    for r in rows:
        cells.append([floatfmt.format(r[c]) if isinstance(r[c], float) else str(r[c])
                      for c in columns])
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths))
        ))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def history_table(history):
    """The per-round history as a plain-text table (scores in percent)."""
    columns = [("round", "round", "{:d}"), ("n_clusters", "clusters", "{:d}"),
               ("loss", "loss", "{:.3f}"), ("rank1", "rank-1", "{:.1f}"),
               ("rank5", "rank-5", "{:.1f}"), ("mAP", "mAP", "{:.1f}"),
               ("mINP", "mINP", "{:.1f}"), ("label_precision", "label P", "{:.2f}"),
               ("label_recall", "label R", "{:.2f}"), ("label_nmi", "NMI", "{:.2f}"),
               ("seconds", "seconds", "{:.1f}")]
    columns = [c for c in columns if any(h.get(c[0]) is not None for h in history)]
    percent = {"rank1", "rank5", "mAP", "mINP"}
    cells = [[title for _, title, _ in columns]]
    for h in history:
        row = []
        for key, _, fmt in columns:
            value = h.get(key)
            if value is None:
                row.append("-")
            else:
                row.append(fmt.format(100 * value if key in percent else value))
        cells.append(row)
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_history(history, out_dir, *, title=None, runs=None):
    """Write ``history.json``, ``history.csv`` and ``history.png`` into ``out_dir``.

    ``runs`` (name -> history) draws several runs on the plot; the PNG is
    skipped (None returned for it) when matplotlib is not installed.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "history.json", "csv": out / "history.csv", "png": None}
    paths["json"].write_text(json.dumps(runs if runs is not None else history, indent=2))
    rows = ([{"method": name, **h} for name, hist in runs.items() for h in hist]
            if runs is not None else history)
    keys = [k for k in ("method", *HISTORY_COLUMNS) if any(k in r for r in rows)]
    with open(paths["csv"], "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return paths
    from .plotting import plot_history

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (name, hist) in enumerate((runs or {None: history}).items()):
        plot_history(hist, ax=ax, label=name, color=f"C{i}")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    paths["png"] = out / "history.png"
    fig.savefig(paths["png"], dpi=120)
    plt.close(fig)
    return paths


def train(loop, dataset, out_dir=None, *, diagnostics=True):
    """Fit ``loop`` on ``dataset.train`` (evaluating on its query / gallery).

    The train person ids are passed only for the pseudo-label diagnostics
    (``diagnostics=False`` leaves them out). With ``out_dir``, writes the
    history files, the selected round's pseudo labels (``labels.npy``) and
    weights (``weights.pt``); under ``torchrun``, rank 0 alone writes them.
    """
    y = dataset.train.pids if diagnostics else None
    has_eval = len(dataset.query.paths) > 0 and len(dataset.gallery.paths) > 0
    # camera ids carry no identity: a camera-aware loop reads them
    camids = ({"camids": dataset.train.camids}
              if loop.get_params(deep=False).get("camera_aware") else {})
    loop.fit(dataset.train.paths, y, eval_set=dataset if has_eval else None, **camids)
    if out_dir is not None:
        from .utils import get_world

        world = get_world() if getattr(loop, "world_size_", 1) > 1 else None
        if world is None:
            _write_run(loop, out_dir, dataset)
        else:  # rank 0 writes; the others wait, and share its errors
            world.on_main(_write_run, loop, out_dir, dataset)
    return loop


def _write_run(loop, out_dir, dataset):
    """The history files, the selected labels and weights of a fitted loop."""
    out = Path(out_dir)
    write_history(loop.history_, out, title=getattr(dataset, "name", None))
    np.save(out / "labels.npy", loop.labels_)
    if hasattr(loop.feature_extractor_, "save_weights"):
        loop.feature_extractor_.save_weights(out / "weights.pt")


def extract(extractor, dataset, parts=PARTS):
    """Features of the given parts: a dict ``{part}_features/_pids/_camids/_paths``."""
    out = {}
    fitted = hasattr(extractor, "model_")
    for part in parts:
        paths = dataset[part].paths
        if not paths:
            continue
        if not fitted:
            extractor.fit(paths)
            fitted = True
        out[f"{part}_features"] = extractor.transform(paths)
        out[f"{part}_pids"] = np.asarray(dataset[part].pids)
        out[f"{part}_camids"] = np.asarray(dataset[part].camids)
        out[f"{part}_paths"] = np.asarray(paths, dtype=str)
    if not out:
        raise ValueError(f"the dataset has no images in the parts {list(parts)}.")
    return out
