"""Retrieval per round of the self-training loop, as the paper's Figure 5."""

from ..utils._sklearn import HasMethods, validate_params

_LABELS = {"mAP": "mAP", "rank1": "rank-1", "rank5": "rank-5", "rank10": "rank-10",
           "mINP": "mINP", "label_precision": "label precision",
           "label_recall": "label recall", "label_nmi": "label NMI"}


@validate_params(
    {
        "history": [list, tuple],
        "keys": [list, tuple],
        "ax": [HasMethods(["plot", "legend"]), None],
        "label": [str, None],
        "color": "no_validation",  # any matplotlib color
    },
    prefer_skip_nested_validation=True,
)
def plot_history(history, *, keys=("mAP", "rank1"), ax=None, label=None, color=None):
    """Plot evaluation scores per round of a :class:`SelfTrainingReID` run.

    Parameters
    ----------
    history : list of dict
        ``SelfTrainingReID.history_`` (or the ``history.json`` the command line
        writes).
    keys : tuple of str, default=("mAP", "rank1")
        Entries of each round to plot, in percent; rounds without a key are
        left out.
    ax : matplotlib Axes, default=None
        Axes to draw on; None creates a figure.
    label : str, default=None
        Prefix of the legend entries (e.g. the method's name), to draw several
        runs on one Axes.
    color : matplotlib color, default=None
        One color for all the run's curves (the keys then differ by line
        style); None lets matplotlib cycle.

    Returns
    -------
    ax : matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn_ecluster.plotting import plot_history
    >>> history = [{"round": 0, "mAP": 0.10, "rank1": 0.20},
    ...            {"round": 1, "mAP": 0.15, "rank1": 0.30}]
    >>> ax = plot_history(history, label="E-cluster")
    >>> [line.get_label() for line in ax.get_lines()]
    ['E-cluster mAP', 'E-cluster rank-1']
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # an optional dependency
        raise ImportError(
            "plot_history needs matplotlib: pip install 'sklearn-ecluster[plots]'"
        ) from exc
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    from matplotlib.ticker import MaxNLocator

    styles = ("-", "--", ":", "-.")
    for i, key in enumerate(keys):
        rows = [h for h in history if h.get(key) is not None]
        if not rows:
            continue
        name = _LABELS.get(key, key)
        ax.plot([h["round"] for h in rows], [100 * h[key] for h in rows], marker="o",
                color=color, linestyle=styles[i % len(styles)],
                label=f"{label} {name}" if label else name)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.set_ylabel("%")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax
