"""Retrieval per round of the self-training loop, as the paper's Figure 5."""

import numpy as np

from ..utils._sklearn import HasMethods, validate_params

_LABELS = {"mAP": "mAP", "rank1": "rank-1", "rank5": "rank-5", "rank10": "rank-10",
           "mINP": "mINP", "label_precision": "label precision",
           "label_recall": "label recall", "label_nmi": "label NMI"}


def _is_one_history(history):
    return len(history) == 0 or isinstance(history[0], dict)


def _curve(histories, key):
    """Rounds and per-round values (runs x rounds) of ``key``, rounds every run has."""
    rounds = sorted(set.intersection(*(
        {h["round"] for h in hist if h.get(key) is not None} for hist in histories)))
    values = np.array([[next(h[key] for h in hist if h["round"] == r) for r in rounds]
                       for hist in histories], dtype=float)
    return rounds, 100 * values


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
    history : list of dict, or list of list of dict
        ``SelfTrainingReID.history_`` (or the ``history.json`` the command line
        writes). A list of several such histories (runs of one configuration
        with different seeds) draws their mean per round with a band of
        plus or minus one standard deviation (``ddof=1``) across the runs.
    keys : tuple of str, default=("mAP", "rank1")
        Entries of each round to plot, in percent; rounds without a key (in
        any of the runs) are left out.
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

    Two seeds of the same run: the mean, and a band of one standard deviation.

    >>> other = [{"round": 0, "mAP": 0.12, "rank1": 0.20},
    ...          {"round": 1, "mAP": 0.19, "rank1": 0.34}]
    >>> ax = plot_history([history, other], keys=("mAP",), label="E-cluster")
    >>> [round(float(y), 6) for y in ax.get_lines()[0].get_ydata()]
    [11.0, 17.0]
    >>> ax.get_lines()[0].get_label()
    'E-cluster mAP (mean ± std, 2 runs)'
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

    histories = [history] if _is_one_history(history) else list(history)
    several = len(histories) > 1
    styles = ("-", "--", ":", "-.")
    for i, key in enumerate(keys):
        rounds, values = _curve(histories, key)
        if not rounds:
            continue
        name = _LABELS.get(key, key)
        name = f"{label} {name}" if label else name
        if several:
            name += f" (mean ± std, {len(histories)} runs)"
        mean = values.mean(axis=0)
        line, = ax.plot(rounds, mean, marker="o", color=color,
                        linestyle=styles[i % len(styles)], label=name)
        if several:
            std = values.std(axis=0, ddof=1)
            ax.fill_between(rounds, mean - std, mean + std, color=line.get_color(),
                            alpha=0.15, linewidth=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.set_ylabel("%")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax
