"""The meta-estimator :class:`SelfTrainingReID`: fine-tune, extract, cluster, repeat."""

import copy
import inspect
import os
import time
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, TransformerMixin, clone
from sklearn.utils import check_random_state

from ..utils._distributed import get_world
from ..utils._sklearn import (
    HasMethods,
    Interval,
    StrOptions,
    _fit_context,
    check_is_fitted,
)
from ..utils._validation import check_label_vector
from ._camera import center_per_camera
from ._checkpoint import (
    check_checkpoint_dir,
    read_checkpoint,
    run_fingerprint,
    write_checkpoint,
)
from ._diagnostics import pseudo_label_scores

_EVAL_KEYS = ("rank1", "rank5", "rank10", "mAP", "mINP")
_EVAL_SET_FORMS = (
    "eval_set must be a dataset Bunch / dict with 'query' and 'gallery' parts (each "
    "with 'paths' or 'images', 'pids' and 'camids', as the sklearn_ecluster.datasets "
    "loaders return), or a tuple (query_images, query_pids, query_camids, "
    "gallery_images, gallery_pids, gallery_camids)"
)


def _default_extractor():
    from ..feature_extraction import ReIDFeatureExtractor

    return ReIDFeatureExtractor()


def _default_clusterer():
    from ..cluster import EnergyAgglomerative

    return EnergyAgglomerative(lam=0.9, merge_percent=0.05)


def _part(part, name):
    if not hasattr(part, "get") and not hasattr(part, "__getitem__"):
        raise TypeError(f"{_EVAL_SET_FORMS}; eval_set[{name!r}] is a {type(part).__name__}.")
    for key in ("paths", "images"):
        if key in part:
            images = part[key]
            break
    else:
        raise ValueError(f"{_EVAL_SET_FORMS}; eval_set[{name!r}] has no 'paths' or 'images'.")
    return images, np.asarray(part["pids"]), np.asarray(part["camids"])


def _check_eval_set(eval_set):
    """``eval_set`` in any accepted form -> (q_images, q_pids, q_cams, g_images, ...)."""
    if eval_set is None:
        return None
    if isinstance(eval_set, tuple) and len(eval_set) == 6:
        q_x, q_p, q_c, g_x, g_p, g_c = eval_set
        out = (q_x, np.asarray(q_p), np.asarray(q_c), g_x, np.asarray(g_p), np.asarray(g_c))
    elif isinstance(eval_set, dict) and "query" in eval_set and "gallery" in eval_set:
        out = (*_part(eval_set["query"], "query"), *_part(eval_set["gallery"], "gallery"))
    else:
        raise TypeError(f"{_EVAL_SET_FORMS}; got {type(eval_set).__name__}.")
    out = list(out)
    for i, part in ((0, "query"), (3, "gallery")):
        n = len(out[i])
        if n == 0:
            raise ValueError(f"eval_set: the {part} part has no images.")
        what = f"the eval_set {part} part's images"
        out[i + 1] = check_label_vector(out[i + 1], f"eval_set {part} pids", n, what=what)
        out[i + 2] = check_label_vector(out[i + 2], f"eval_set {part} camids", n, what=what)
    return tuple(out)


def _round_seeds(random_state, size):
    """One int32 seed per round; None draws OS entropy, not NumPy's global RNG."""
    high = np.iinfo(np.int32).max
    if random_state is None:  # check_random_state(None) would advance the global RNG
        return np.random.default_rng().integers(high, size=size)
    return check_random_state(random_state).randint(high, size=size)


def _image_files(X):
    """The image files that ``X`` names (paths, or a ReIDImageDataset's files)."""
    from ..datasets import ReIDImageDataset

    if isinstance(X, ReIDImageDataset):
        return X.paths
    if isinstance(X, list | tuple) or (isinstance(X, np.ndarray) and X.ndim == 1):
        return [os.fspath(x) for x in X if isinstance(x, str | os.PathLike)]
    return []


def _check_image_files(X, evaluation):
    """Check every image file once, before round 0, so that no round dies on one."""
    from ..datasets._image_files import CorruptImageError, find_unreadable

    files = _image_files(X)
    if evaluation is not None:
        files = files + _image_files(evaluation[0]) + _image_files(evaluation[3])
    problems = find_unreadable(files)
    if problems:
        raise CorruptImageError(
            problems, "Replace them, or leave them out (the dataset loaders' "
            "on_corrupt='skip' does)."
        )


def _n_items(X):
    shape = getattr(X, "shape", None)
    return int(shape[0]) if shape is not None else len(X)


class SelfTrainingReID(MetaEstimatorMixin, TransformerMixin, BaseEstimator):
    """Fully unsupervised person re-ID by self-training on cluster pseudo labels.

    The loop of the paper's Algorithm 1 (with BUC's published recipe): start
    with every training image its own cluster; in every round, fine-tune the
    feature extractor on the current pseudo labels, extract features of all
    training images, evaluate on ``eval_set`` if given, and let the clusterer
    merge ``m`` more pairs of clusters starting from the current labels.

    Read more in the :doc:`user guide </user_guide/self_training>`.

    Parameters
    ----------
    feature_extractor : estimator, default=None
        A transformer from images to features whose ``fit(X, y)`` fine-tunes
        on labels and that has ``warm_start``, ``epochs`` and ``lr``
        parameters (:class:`~sklearn_ecluster.feature_extraction.ReIDFeatureExtractor`;
        None: ``ReIDFeatureExtractor()``, ResNet-50 with the recipe of SPEC 7).
        Cloned in :meth:`fit`. Its own ``epochs`` and ``lr`` govern round 0.
    clusterer : estimator, default=None
        A clusterer with an ``n_clusters`` parameter whose ``fit`` accepts
        ``init_labels`` (None: ``EnergyAgglomerative(lam=0.9,
        merge_percent=0.05)``, E-cluster with the paper's defaults; use
        :func:`~sklearn_ecluster.cluster.make_clusterer` for BUC and DBC).
        Cloned in every round with ``n_clusters`` set to the current number
        of clusters minus ``m``.
    merge_percent : float in (0, 1), default=None
        ``m = max(1, int(merge_percent * n_images))`` merges per round. None
        takes the clusterer's ``merge_percent`` (0.05 when it has none).
    n_rounds : int, default=None
        At most this many rounds (each one trains and evaluates once). None:
        go on until fewer than ``m`` merges remain.
    later_epochs : int, default=2
        Training epochs of rounds after the first (SPEC 7: 2).
    later_lr : float, default=0.01
        Learning rate of rounds after the first (SPEC 7: 0.01).
    selection : {"auto", "eval", "last"}, default="auto"
        Which round's model and labels to keep. ``"eval"``: the round with the
        best mAP on ``eval_set`` (the paper's choice; optimistic, since it
        selects on the test data); ``"last"``: the last round; ``"auto"``:
        ``"eval"`` when an ``eval_set`` is given, else ``"last"``.
    metric : {"euclidean", "sqeuclidean", "cosine"}, default="euclidean"
        Distance of the evaluation.
    checkpoint_dir : str or path-like, default=None
        Write the state after every round (atomically) to this folder; a
        :meth:`fit` with the same arguments resumes from the last completed
        round and ends with the same result as an uninterrupted run. A
        checkpoint of another run, or one that cannot be read, is refused
        with a ValueError, never overwritten.
    callback : callable, default=None
        Called after every round as ``callback(loop, record, labels)``:
        ``loop`` this estimator, ``record`` the round's entry of
        ``history_`` (a dict) and ``labels`` the pseudo labels the round
        trained on (int ndarray of shape ``(n_images,)``, ``-1`` for images
        left out); to watch a run, or draw its clusters
        (:func:`~sklearn_ecluster.plotting.plot_cluster_montage`). Not part
        of a checkpoint's identity: a run resumes with another callback.
    random_state : int, RandomState instance or None, default=None
        Seeds each round's fine-tuning (round ``r`` gets its own seed). An
        int gives the same run every time on one machine with the same thread
        count; None draws fresh entropy from the OS. NumPy's and torch's
        global RNG states are left unchanged.
    verbose : int, default=0
        0 silent; 1 one line per round; 2 also the extractor's progress bars.
    init : {"singletons", "cluster"}, default="singletons"
        How round 0 starts. ``"singletons"``: every image its own class
        (the paper). ``"cluster"``: the features of the starting network
        (pretrained) are clustered first, by the clusterer as configured
        (its own ``n_clusters``, threshold or automatic cut), and round 0
        trains on those clusters (SpCL, Cluster-Contrast).
    label_update : {"merge", "recluster"}, default="merge"
        How the labels of the next round are made. ``"merge"``: ``m`` more
        merges starting from the current labels (the paper).
        ``"recluster"``: all features clustered afresh, the number of
        clusters chosen by the clusterer from the data (DBSCAN's radius,
        ``EnergyAgglomerative``'s ``distance_threshold`` or automatic cut),
        never from test labels; needs ``n_rounds``.
    outliers : {"keep", "drop"}, default="keep"
        ``"keep"``: every image is trained on (a DBSCAN noise point as its own
        class). ``"drop"``: images in clusters of size 1 and noise points
        (label -1) are left out of the round's training (Cluster-Contrast);
        the paper's singleton round 0 (``init="singletons"``) is kept whole.
    cluster_distance : {"euclidean", "jaccard"}, default="euclidean"
        The distance that is clustered. ``"euclidean"``: the features
        themselves. ``"jaccard"``: the k-reciprocal Jaccard distance
        (:func:`~sklearn_ecluster.metrics.jaccard_distance`, ``k1=30``,
        ``k2=6``), given to a clusterer with ``metric="precomputed"``: to
        DBSCAN (scikit-learn's with ``eps < 1`` or
        :class:`~sklearn_ecluster.self_training.AutoEpsDBSCAN`) and to
        ``EnergyAgglomerative(missing_distance=1.0)`` as the sparse matrix
        of the pairs that share a neighbour (the others are at distance 1),
        to any other clusterer as the dense ``N x N`` matrix.
    camera_aware : bool, default=False
        Centre the features per camera before they are clustered (the means
        of each camera's unlabelled training images;
        :func:`~sklearn_ecluster.self_training.center_per_camera`), pass the
        camera ids to the extractor (camera-balanced P x K batches), and
        evaluate on features centred per camera (see Notes). Needs
        ``fit(X, camids=...)``.

    Attributes
    ----------
    feature_extractor_ : estimator
        The fitted extractor of the selected round.
    clusterer_ : estimator or None
        The clusterer fitted last (None when no clustering ran).
    labels_ : ndarray of shape (n_images,)
        The pseudo labels the selected round trained on (``0..K-1``; ``-1``
        for images left out with ``outliers="drop"``).
    n_iter_ : int
        Rounds run.
    best_iteration_ : int
        The selected round (0-based).
    history_ : list of dict
        One entry per round: ``round``, ``n_clusters`` (trained on),
        ``loss`` (mean of the last epoch), ``train_seconds``,
        ``extract_seconds``, ``cluster_seconds``, ``seconds``; with an
        ``eval_set`` also ``rank1``, ``rank5``, ``rank10``, ``mAP``, ``mINP``;
        with ``y`` also ``label_precision``, ``label_recall``,
        ``label_nmi``, ``label_ari`` of the labels trained on (of the images
        trained on); with ``outliers="drop"`` or noise labels also
        ``n_outliers`` (images not trained on); ``world_size``, the
        number of processes that ran the round (1 without ``torchrun``).
    merges_per_round_ : int
        ``m``.
    selection_ : str
        The selection rule applied (``"eval"`` or ``"last"``).
    world_size_ : int
        Processes that ran the loop together (1 in a single process). Under
        ``torchrun``, with a data-parallel extractor (see the
        :doc:`multi-GPU guide </user_guide/multi_gpu>`), every rank runs
        :meth:`fit`; rank 0 alone checks the image files, clusters,
        evaluates, calls ``callback`` and writes the checkpoints, and the
        other ranks receive its results.

    See Also
    --------
    sklearn_ecluster.cluster.EnergyAgglomerative : the default clusterer.
    sklearn_ecluster.feature_extraction.ReIDFeatureExtractor : the default extractor.

    Notes
    -----
    Labels ``y`` are never used for training: they only fill the pseudo-label
    diagnostics of ``history_``. Selecting the round by mAP on the
    evaluation set, as the paper does, uses test labels and so overstates
    what a truly unsupervised run can expect; ``selection="last"`` does not.

    The defaults are the paper's loop (SPEC 7); ``init``, ``label_update``,
    ``outliers``, ``cluster_distance`` and ``camera_aware`` each change one
    design choice, so that any combination runs and each can be compared
    alone. :func:`~sklearn_ecluster.self_training.make_recipe` names the
    paper's loops and the contrastive cluster-memory recipe (SPEC 11).

    **Camera ids at evaluation.** With ``camera_aware``, query and gallery
    features are centred with the means of the evaluation images of each
    camera (query and gallery pooled). They use no labels, only the images
    at hand, and work for cameras the training set never saw; the training
    cameras' means would assume the same cameras in both.

    Examples
    --------
    >>> import numpy as np
    >>> from torch import nn
    >>> from sklearn_ecluster import EnergyAgglomerative, ReIDFeatureExtractor
    >>> from sklearn_ecluster.self_training import SelfTrainingReID
    >>> rng = np.random.default_rng(0)
    >>> images = rng.integers(0, 256, size=(12, 32, 16, 3), dtype=np.uint8)
    >>> tiny = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    >>> extractor = ReIDFeatureExtractor(tiny, image_size=(32, 16), embedding_dim=8,
    ...                                  epochs=1, device="cpu")
    >>> loop = SelfTrainingReID(extractor, EnergyAgglomerative(device="cpu"),
    ...                         merge_percent=0.25, random_state=0).fit(images)
    >>> loop.n_iter_, [h["n_clusters"] for h in loop.history_]
    (4, [12, 9, 6, 3])
    >>> loop.transform(images).shape
    (12, 8)
    """

    _parameter_constraints = {
        "feature_extractor": [HasMethods(["fit", "transform"]), None],
        "clusterer": [HasMethods(["fit"]), None],
        "merge_percent": [Interval(Real, 0, 1, closed="neither"), None],
        "n_rounds": [Interval(Integral, 1, None, closed="left"), None],
        "later_epochs": [Interval(Integral, 0, None, closed="left")],
        "later_lr": [Interval(Real, 0, None, closed="neither")],
        "selection": [StrOptions({"auto", "eval", "last"})],
        "metric": [StrOptions({"euclidean", "sqeuclidean", "cosine"})],
        "checkpoint_dir": [str, os.PathLike, None],
        "callback": [callable, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "init": [StrOptions({"singletons", "cluster"})],
        "label_update": [StrOptions({"merge", "recluster"})],
        "outliers": [StrOptions({"keep", "drop"})],
        "cluster_distance": [StrOptions({"euclidean", "jaccard"})],
        "camera_aware": ["boolean"],
    }

    def __init__(
        self,
        feature_extractor=None,
        clusterer=None,
        *,
        merge_percent=None,
        n_rounds=None,
        later_epochs=2,
        later_lr=0.01,
        selection="auto",
        metric="euclidean",
        checkpoint_dir=None,
        callback=None,
        random_state=None,
        verbose=0,
        init="singletons",
        label_update="merge",
        outliers="keep",
        cluster_distance="euclidean",
        camera_aware=False,
    ):
        self.feature_extractor = feature_extractor
        self.clusterer = clusterer
        self.merge_percent = merge_percent
        self.n_rounds = n_rounds
        self.later_epochs = later_epochs
        self.later_lr = later_lr
        self.selection = selection
        self.metric = metric
        self.checkpoint_dir = checkpoint_dir
        self.callback = callback
        self.random_state = random_state
        self.verbose = verbose
        self.init = init
        self.label_update = label_update
        self.outliers = outliers
        self.cluster_distance = cluster_distance
        self.camera_aware = camera_aware

    # ------------------------------------------------------------ checks
    def _check_sub_estimators(self):
        extractor = clone(self.feature_extractor if self.feature_extractor is not None
                          else _default_extractor())
        clusterer = clone(self.clusterer if self.clusterer is not None
                          else _default_clusterer())
        missing = {"warm_start", "epochs", "lr"} - set(extractor.get_params(deep=False))
        if missing or not hasattr(extractor, "transform"):
            raise TypeError(
                f"feature_extractor={self.feature_extractor!r} must be a transformer with "
                f"warm_start, epochs and lr parameters (missing: {sorted(missing)}), "
                "such as ReIDFeatureExtractor."
            )
        fit_params = inspect.signature(clusterer.fit).parameters
        if self.label_update == "merge" and (
                "n_clusters" not in clusterer.get_params(deep=False)
                or "init_labels" not in fit_params):
            raise TypeError(
                f"clusterer={self.clusterer!r} must have an n_clusters parameter and a "
                "fit(X, init_labels=...) method, such as EnergyAgglomerative, with "
                "label_update='merge'; label_update='recluster' takes any clusterer "
                "with labels_ (such as DBSCAN)."
            )
        if (self.cluster_distance == "jaccard"
                and clusterer.get_params(deep=False).get("metric") != "precomputed"):
            raise ValueError(
                f"cluster_distance='jaccard' gives the clusterer a distance matrix: "
                f"clusterer={self.clusterer!r} needs metric='precomputed'."
            )
        return extractor, clusterer

    def _merges_per_round(self, clusterer, n):
        mp = self.merge_percent
        if mp is None:
            mp = clusterer.get_params(deep=False).get("merge_percent") or 0.05
        return max(1, int(mp * n))

    def _fingerprint(self, X, y, eval_set):
        # verbose, the callback and the folder itself do not change the result
        params = {k: v for k, v in self.get_params(deep=True).items()
                  if k not in ("checkpoint_dir", "callback", "verbose")
                  and not k.endswith("__verbose")}
        return run_fingerprint(params, X, y, eval_set)

    # --------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None, *, camids=None, eval_set=None):
        """Run the self-training loop on unlabelled training images.

        Parameters
        ----------
        X : sequence of images, uint8 array (N, H, W, 3) or tensor (N, 3, H, W)
            Training images, in any form the feature extractor accepts.
        y : array-like of shape (n_images,), default=None
            True person ids, used only for the pseudo-label diagnostics of
            ``history_``; never for training or selection.
        camids : array-like of shape (n_images,), default=None
            Camera ids of the training images (no identity information);
            needed by ``camera_aware=True``, else ignored.
        eval_set : Bunch, dict or tuple, default=None
            Query and gallery images with person and camera ids: a dataset
            Bunch from :mod:`sklearn_ecluster.datasets` (its ``query`` and
            ``gallery`` parts are used) or ``(query_images, query_pids,
            query_camids, gallery_images, gallery_pids, gallery_camids)``.

        Returns
        -------
        self : SelfTrainingReID

        Raises
        ------
        OSError
            If image files given as paths (in ``X`` or ``eval_set``) cannot be
            read; all of them are named, before the first round.
        ValueError
            If ``checkpoint_dir`` is not a writable folder or holds a
            checkpoint of another run or one that cannot be read (it is left
            as it is), or if a round's features are not finite.
        """
        n = _n_items(X)
        if n < 2:
            raise ValueError(f"X has {n} image(s); the loop needs at least 2.")
        if y is not None:
            y = check_label_vector(y, "y", n, what="X", integer=False)
        if camids is not None:
            camids = check_label_vector(camids, "camids", n, what="X")
        if self.camera_aware and camids is None:
            raise ValueError("camera_aware=True needs the camera ids of the training "
                             "images: fit(X, camids=...).")
        if not self.camera_aware:
            camids = None
        if _fit_takes_camids(self.clusterer) and camids is None:
            raise ValueError(
                f"The clusterer {self.clusterer!r} reads the camera ids: use "
                "camera_aware=True and fit(X, camids=...).")
        if self.label_update == "recluster" and self.n_rounds is None:
            raise ValueError("label_update='recluster' needs n_rounds (a re-clustering "
                             "has no end of its own).")
        evaluation = _check_eval_set(eval_set)
        selection = self.selection
        if selection == "auto":
            selection = "eval" if evaluation is not None else "last"
        elif selection == "eval" and evaluation is None:
            raise ValueError("selection='eval' needs an eval_set; pass one, or use "
                             "selection='last'.")
        extractor, clusterer = self._check_sub_estimators()
        m = self._merges_per_round(clusterer, n)
        world = get_world(extractor.get_params(deep=False).get("distributed", "auto"))
        self._world = world  # the ranks of this fit, for the steps of a round
        try:
            return self._fit(X, y, camids, eval_set, evaluation, extractor, clusterer, m,
                             selection, world)
        finally:
            del self._world

    def _fit(self, X, y, camids, eval_set, evaluation, extractor, clusterer, m,
             selection, world):
        n = _n_items(X)
        world.on_main(_check_image_files, X, evaluation)

        fingerprint = None
        state = None
        if self.checkpoint_dir is not None:
            # rank 0 reads the checkpoint and every rank gets its state
            fingerprint, state = world.on_main(self._resume, X, y, camids, eval_set)
            if state is not None and state.get("world_size", 1) != world.size:
                warnings.warn(
                    f"SelfTrainingReID: the checkpoint in {str(self.checkpoint_dir)!r} was "
                    f"written by a run of {state.get('world_size', 1)} process(es) and "
                    f"resumes with {world.size}: it continues, but other ranks draw other "
                    "augmentations, so it will not end exactly where an uninterrupted "
                    "run would.", UserWarning, stacklevel=2)
        if state is None:
            # rank 0's seeds (None draws OS entropy, different on every rank)
            seeds = world.broadcast(
                _round_seeds(self.random_state, self.n_rounds or (n // m + 2)))
            state = {
                "fingerprint": fingerprint, "round": 0, "done": False,
                "world_size": world.size,
                # None: init="cluster" clusters the starting network's features first
                "labels": np.arange(n, dtype=np.int64) if self.init == "singletons"
                else None, "extractor": extractor,
                "clusterer": None, "history": [], "seeds": seeds,
                "best": None,  # (round, mAP, extractor, labels)
            }
        elif self.verbose and world.is_main:
            print(f"[SelfTrainingReID] resuming from {self.checkpoint_dir} after "
                  f"round {state['round'] - 1}")

        state["world_size"] = world.size
        while not state["done"]:
            self._run_round(state, X, y, camids, evaluation, clusterer, m, selection)
            if self.checkpoint_dir is not None:
                # rank 0 writes (atomically); the others wait for it to finish
                world.on_main(write_checkpoint, self.checkpoint_dir, state)

        best_round, _, best_extractor, best_labels = state["best"]
        self.feature_extractor_ = best_extractor
        self.clusterer_ = state["clusterer"]
        self.labels_ = best_labels
        self.history_ = state["history"]
        self.n_iter_ = len(state["history"])
        self.best_iteration_ = best_round
        self.merges_per_round_ = m
        self.selection_ = selection
        self.world_size_ = world.size
        return self

    def _resume(self, X, y, camids, eval_set):
        """Rank 0: this run's fingerprint and its checkpointed state (or None)."""
        check_checkpoint_dir(self.checkpoint_dir)
        fingerprint = self._fingerprint(X, y if camids is None else (y, camids), eval_set)
        return fingerprint, read_checkpoint(self.checkpoint_dir, fingerprint)

    def _run_round(self, state, X, y, camids, evaluation, clusterer, m, selection):
        r = state["round"]
        extractor = state["extractor"]
        if r > 0:
            extractor.set_params(warm_start=True, epochs=self.later_epochs, lr=self.later_lr)
        if "random_state" in extractor.get_params(deep=False):
            extractor.set_params(random_state=int(state["seeds"][r % len(state["seeds"])]))
        if "verbose" in extractor.get_params(deep=False):
            # tqdm bars for epochs and extraction at verbose=2, else silent
            extractor.set_params(verbose=2 if self.verbose >= 2 else 0)
        t0 = time.perf_counter()
        init_seconds = 0.0
        if state["labels"] is None:
            # init="cluster": cluster the starting (pretrained) network's features
            extractor.fit(X)
            state["labels"], state["clusterer"] = self._world.on_main(
                self._cluster, clusterer, self._features(extractor, X, camids), None, m,
                camids)
            extractor.set_params(warm_start=True)  # train the network just clustered
            init_seconds = time.perf_counter() - t0
        labels = state["labels"]
        train_labels = self._training_labels(labels, r)
        k = int(train_labels.max()) + 1
        if k < 2:
            raise ValueError(
                f"The clustering before round {r} leaves {k} cluster(s) to train "
                f"on ({int((train_labels < 0).sum())} outliers): the clusterer "
                f"{state['clusterer']!r} needs a larger radius or threshold on this data."
            )
        record = {"round": r, "n_clusters": k, "world_size": self._world.size}
        if self.outliers == "drop" or (labels < 0).any():
            record["n_outliers"] = int((train_labels < 0).sum())
        t1 = time.perf_counter()
        fit_params = {}
        if camids is not None and "camids" in inspect.signature(extractor.fit).parameters:
            fit_params["camids"] = camids  # camera-balanced batches
        extractor.fit(X, train_labels, **fit_params)
        losses = getattr(extractor, "loss_history_", None)
        record["loss"] = float(losses[-1]) if losses else None
        t2 = time.perf_counter()
        features = self._features(extractor, X, camids)
        record["train_seconds"] = t2 - t1
        record["extract_seconds"] = time.perf_counter() - t2
        if not np.isfinite(np.asarray(features)).all():
            raise ValueError(
                f"Round {r}: the features of the training images hold NaN or infinite "
                "values, so they cannot be clustered; the fine-tuning diverged (try a "
                "lower lr or later_lr)."
            )
        if evaluation is not None:
            record.update(self._evaluate(extractor, evaluation))
        if y is not None:
            kept = train_labels >= 0
            scores = pseudo_label_scores(y[kept], train_labels[kept])
            record.update({f"label_{key}": scores[key]
                           for key in ("precision", "recall", "nmi", "ari")})

        # Keep the selected round's model. With "eval" it is a copy, since later
        # rounds go on training the extractor; with "last" the current one is the
        # selected one whenever the loop stops, so no copy is made.
        if selection == "last":
            state["best"] = (r, r, extractor, train_labels)
        elif state["best"] is None or record["mAP"] > state["best"][1]:
            state["best"] = (r, record["mAP"], copy.deepcopy(extractor), train_labels.copy())

        last = self.n_rounds is not None and r + 1 >= self.n_rounds
        if self.label_update == "merge":
            last = last or int(labels.max()) + 1 - m < 1
        t3 = time.perf_counter()
        if not last:
            new_labels, model = self._world.on_main(self._cluster, clusterer, features,
                                                    labels, m, camids)
            if int(self._training_labels(new_labels, r + 1).max()) + 1 < 2:
                warnings.warn(
                    f"SelfTrainingReID: the clustering after round {r} leaves fewer than "
                    "2 clusters to train on; the loop stops there.", UserWarning,
                    stacklevel=3)
                last = True
            else:
                state["labels"], state["clusterer"] = new_labels, model
        record["cluster_seconds"] = time.perf_counter() - t3 + init_seconds
        record["seconds"] = time.perf_counter() - t0
        record = self._world.broadcast(record)  # rank 0's timings: one history
        state["history"].append(record)
        state["round"] = r + 1
        state["done"] = last
        if self.verbose and self._world.is_main:
            print("[SelfTrainingReID] " + _format_record(record))
        if self.callback is not None:
            self._world.on_main(self.callback, self, record, train_labels.copy())

    def _features(self, extractor, X, camids):
        """The features that are clustered: centred per camera with ``camera_aware``."""
        features = extractor.transform(X)
        return features if camids is None else center_per_camera(features, camids)

    def _training_labels(self, labels, r):
        """The labels a round trains on: outliers -1 (``"drop"``) or singletons (``"keep"``)."""
        noise = labels < 0
        paper_round0 = self.init == "singletons" and r == 0
        if not noise.any() and (self.outliers == "keep" or paper_round0):
            return labels  # the paper's loop: the clustering's labels as they are
        out = labels.copy()
        if self.outliers == "drop" and not paper_round0:
            sizes = np.bincount(labels[~noise], minlength=1)
            out[~noise & (sizes[np.where(noise, 0, labels)] == 1)] = -1
        else:
            start = int(labels.max()) + 1 if (~noise).any() else 0
            out[noise] = start + np.arange(int(noise.sum()))  # each its own class
        kept = out >= 0
        out[kept] = np.unique(out[kept], return_inverse=True)[1].ravel()
        return out

    def _cluster(self, clusterer, features, labels, m, camids=None):
        """Cluster ``features`` (the next round's labels): merge or recluster.

        A clusterer whose ``fit`` takes ``camids`` gets them (e.g.
        :class:`~sklearn_ecluster.self_training.CrossCameraAssociation`).
        """
        from ..metrics import jaccard_distance

        model = clone(clusterer)
        fit_params = {"camids": camids} if _fit_takes_camids(model) else {}
        data = features
        if self.cluster_distance == "jaccard":
            data = jaccard_distance(features, k1=30, k2=6,
                                    sparse=_takes_sparse_distances(model))
        if self.label_update == "merge" and labels is not None:
            model.set_params(n_clusters=int(labels.max()) + 1 - m)
            if model.get_params(deep=False).get("merge_percent") is not None:
                # one batched step of exactly m merges, as in the paper's loop
                model.set_params(merge_percent=(m + 0.5) / len(labels))
            model.fit(data, init_labels=labels, **fit_params)
        else:
            model.fit(data, **fit_params)
        return np.asarray(model.labels_, dtype=np.int64), model

    def _evaluate(self, extractor, evaluation):
        from ..metrics import evaluate_features

        q_x, q_p, q_c, g_x, g_p, g_c = evaluation
        q_f, g_f = extractor.transform(q_x), extractor.transform(g_x)  # all ranks
        if self.camera_aware:
            # each camera's mean from the evaluation images of that camera
            # (query and gallery pooled): label-free, and valid for new cameras
            both = center_per_camera(np.concatenate([q_f, g_f]), np.concatenate([q_c, g_c]))
            q_f, g_f = both[:len(q_f)], both[len(q_f):]

        # on the extractor's device: Market-1501's 3,368 x 15,913 ranking is a
        # GEMM and a sort, much faster on the GPU the features came from
        device = getattr(extractor, "device_", "cpu")

        def scores():
            result = evaluate_features(q_f, g_f, q_p, g_p, q_c, g_c, metric=self.metric,
                                       device=device, max_rank=min(50, len(g_p)))
            return {key: float(result[key]) for key in _EVAL_KEYS}

        return self._world.on_main(scores)

    # --------------------------------------------------------- transform
    def transform(self, X, *, camids=None):
        """Features of images from the selected round's extractor.

        Parameters
        ----------
        X : sequence of images, uint8 array (N, H, W, 3) or tensor (N, 3, H, W)
        camids : array-like of shape (n_images,), default=None
            With ``camera_aware``, the features are centred per camera with
            the means of these images' own cameras; ignored otherwise.

        Returns
        -------
        features : ndarray of shape (n_images, n_features)
        """
        check_is_fitted(self)
        features = self.feature_extractor_.transform(X)
        if self.camera_aware and camids is not None:
            features = center_per_camera(features, camids)
        return features

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.non_deterministic = True
        return tags


def _fit_takes_camids(clusterer):
    return clusterer is not None and "camids" in inspect.signature(clusterer.fit).parameters


def _takes_sparse_distances(clusterer):
    """Whether ``clusterer`` reads a sparse Jaccard matrix as the dense one.

    DBSCAN only looks at pairs within its radius: with ``eps < 1`` the pairs
    the sparse matrix leaves out (distance 1) are never among them, so it
    gets the same neighbourhoods from the pairs that share a neighbour, at
    their number instead of ``N x N``. ``EnergyAgglomerative`` reads it
    exactly with ``missing_distance=1.0`` (its graph mode). Other clusterers
    get the dense matrix.
    """
    from sklearn.cluster import DBSCAN

    from ..cluster import EnergyAgglomerative
    from ._association import CrossCameraAssociation
    from ._dbscan import AutoEpsDBSCAN

    if isinstance(clusterer, CrossCameraAssociation):  # reads what its base reads
        return clusterer.clusterer is not None and _takes_sparse_distances(
            clusterer.clusterer)
    if isinstance(clusterer, EnergyAgglomerative):
        return clusterer.metric == "precomputed" and clusterer.missing_distance == 1.0
    if isinstance(clusterer, AutoEpsDBSCAN):
        return clusterer.eps is None or clusterer.eps < 1.0
    return isinstance(clusterer, DBSCAN) and clusterer.eps < 1.0


def _format_record(record):
    parts = [f"round {record['round']:2d}", f"clusters {record['n_clusters']:6d}"]
    if record.get("loss") is not None:
        parts.append(f"loss {record['loss']:.3f}")
    for key in ("rank1", "mAP"):
        if key in record:
            parts.append(f"{key} {100 * record[key]:5.1f}")
    if record.get("n_outliers"):
        parts.append(f"outliers {record['n_outliers']:5d}")
    if record.get("label_precision") is not None:
        parts.append(f"label P/R {record['label_precision']:.2f}/"
                     f"{record['label_recall'] or 0:.2f}")
    parts.append(f"{record['seconds']:.1f} s")
    return "  ".join(parts)
