"""Named recipes: the paper's loops (E-cluster, BUC, DBC) and the contrastive one.

Keeping them here means the command line, the benchmarks and the user's code
run exactly the same configurations.
"""

from copy import deepcopy

from sklearn.base import clone

from ..utils._sklearn import HasMethods, StrOptions, validate_params

PAPER_RECIPES = ("ecluster", "buc", "dbc")
CONTRASTIVE_RECIPES = ("contrastive_dbscan", "contrastive_energy", "contrastive_camera",
                       "contrastive_camera_pairs")
#: Recipes that need the camera ids (``camera_aware=True`` by default).
CAMERA_RECIPES = ("contrastive_camera", "contrastive_camera_pairs")
RECIPES = PAPER_RECIPES + CONTRASTIVE_RECIPES

#: The extractor of the contrastive cluster-memory recipe (SPEC 11, Cluster-Contrast).
CONTRASTIVE_EXTRACTOR = {
    "loss": "cluster_contrast", "temperature": 0.05, "memory_momentum": 0.1,
    "sampler": "pk", "train_batch_size": 256, "num_instances": 16, "iters_per_epoch": 200,
    "optimizer": "adam", "lr": 3.5e-4, "backbone_lr_mult": 1.0, "weight_decay": 5e-4,
    "lr_step": None, "dropout": 0.0, "epochs": 1,
    # no Linear projection: BatchNorm1d over pool5, whose normalised output is
    # clustered and evaluated (a random projection degrades the pretrained
    # features in its first steps: recipes guide, "What limits the loop")
    "embedding_dim": None, "output": "embedding",
    "random_erasing": 0.5,
}
#: Its loop: one epoch a round, every round re-clustered afresh.
CONTRASTIVE_LOOP = {
    "init": "cluster", "label_update": "recluster", "outliers": "drop",
    "cluster_distance": "jaccard", "n_rounds": 50, "later_epochs": 1, "later_lr": 3.5e-4,
    "selection": "last",
}


@validate_params(
    {
        "name": [StrOptions(set(RECIPES))],
        "feature_extractor": [HasMethods(["fit", "transform"]), None],
        "clusterer": [HasMethods(["fit"]), None],
    },
    prefer_skip_nested_validation=True,
)
def make_recipe(name="ecluster", feature_extractor=None, clusterer=None, **params):
    """A :class:`~sklearn_ecluster.self_training.SelfTrainingReID` configured as a named recipe.

    ``"ecluster"``, ``"buc"``, ``"dbc"``: the paper's loop (SPEC 7: singleton
    round 0, ``m`` more merges a round, memory softmax, SGD) with the
    clusterer of :func:`~sklearn_ecluster.cluster.make_clusterer`.

    ``"contrastive_dbscan"`` and ``"contrastive_energy"``: the cluster-memory
    contrastive recipe (SPEC 11): round 0 on the clusters of the pretrained
    features; every round (one epoch of 200 P x K batches, 16 x 16) re-clusters
    all features on the k-reciprocal Jaccard distance and leaves clusters of
    one image and noise out; InfoNCE over a memory of cluster centroids
    (temperature 0.05, momentum 0.1); Adam at 3.5e-4, weight decay 5e-4, no
    dropout, random erasing 0.5; the head is BatchNorm1d over the pooled features without a
    Linear layer, and its normalised output is clustered and evaluated
    (``embedding_dim=None, output="embedding"``); 50 rounds, the last one
    kept. The clusterer:

    - ``"contrastive_dbscan"``: scikit-learn's DBSCAN (``min_samples=4``) on the
      precomputed distance, its radius the mean of the smallest 0.16 % of the
      pairwise distances at every round
      (:class:`~sklearn_ecluster.self_training.AutoEpsDBSCAN`; Song et al.
      2018), so no radius is tuned on a test set;
    - ``"contrastive_energy"``: the standalone energy clustering
      (``make_clusterer("standalone")``: weighted energy distance, exact) with
      no ``n_clusters``: the full hierarchy, cut where the mean silhouette is
      highest, so the number of clusters comes from the data; in the graph
      mode on each sample's 30 nearest neighbours (``connectivity=30``:
      merges only between clusters joined by one of those pairs, every
      criterion over all the pairs of the two clusters), so that no
      ``N x N`` matrix exists at any size. Its default ``cluster_distance``
      is ``"euclidean"``; ``cluster_distance="jaccard"`` sets
      ``metric="precomputed"`` and ``missing_distance=1.0``: the sparse
      Jaccard matrix, its 30 nearest pairs a sample as the graph;
    - ``"contrastive_camera"``: ``"contrastive_dbscan"``'s clusters joined
      along the cross-camera mutual nearest neighbours of the same distance
      (:class:`~sklearn_ecluster.self_training.CrossCameraAssociation`), with
      ``camera_aware=True``: needs ``fit(X, camids=...)``. An image DBSCAN
      leaves out enters a cluster through its partner in another camera;
    - ``"contrastive_camera_pairs"``: the cross-camera mutual nearest
      neighbours alone (``CrossCameraAssociation(None)``) on the Euclidean
      distance of the features centred per camera (``camera_aware=True``):
      with two cameras, each cluster is one such pair and every other image
      an outlier. Its pairs are the more precise labels when a person has
      few images a camera (PRID 450S: 37-47 % of the pairs true, against
      17-25 % for the DBSCAN clusters on the Jaccard distance), and it was
      the best recipe there (recipes guide).

    Parameters
    ----------
    name : {"ecluster", "buc", "dbc", "contrastive_dbscan", "contrastive_energy", \\
            "contrastive_camera", "contrastive_camera_pairs"}, default="ecluster"
    feature_extractor : estimator, default=None
        The extractor (None: ``ReIDFeatureExtractor()``). The contrastive
        recipes set their training parameters (``CONTRASTIVE_EXTRACTOR``) on
        a clone of it; change them afterwards with ``set_params``, e.g.
        ``feature_extractor__train_batch_size=64``.
    clusterer : estimator, default=None
        Replaces the recipe's clusterer.
    **params
        Parameters of :class:`SelfTrainingReID`; they override the recipe's
        (``n_rounds``, ``camera_aware``, ``cluster_distance``,
        ``random_state``, ...).

    Returns
    -------
    loop : SelfTrainingReID

    Examples
    --------
    >>> from sklearn_ecluster.self_training import make_recipe
    >>> loop = make_recipe("contrastive_dbscan", n_rounds=10)
    >>> loop.label_update, loop.cluster_distance, loop.n_rounds
    ('recluster', 'jaccard', 10)
    >>> loop.feature_extractor.loss, loop.feature_extractor.optimizer
    ('cluster_contrast', 'adam')
    >>> make_recipe("buc").clusterer.linkage
    'single'
    """
    from ..cluster import make_clusterer
    from ..feature_extraction import ReIDFeatureExtractor
    from ._association import CrossCameraAssociation
    from ._dbscan import AutoEpsDBSCAN
    from ._loop import SelfTrainingReID

    if name in PAPER_RECIPES:
        if clusterer is None:
            clusterer = make_clusterer(name)
        return SelfTrainingReID(feature_extractor, clusterer, **params)
    camera = {"camera_aware": True} if name in CAMERA_RECIPES else {}
    loop_params = {**deepcopy(CONTRASTIVE_LOOP), **camera, **params}
    euclidean_by_default = ("contrastive_energy", "contrastive_camera_pairs")
    if name in euclidean_by_default and "cluster_distance" not in params:
        loop_params["cluster_distance"] = "euclidean"
    metric = "precomputed" if loop_params["cluster_distance"] == "jaccard" else "euclidean"
    if clusterer is None:
        if name == "contrastive_dbscan":
            clusterer = AutoEpsDBSCAN(min_samples=4, metric=metric)
        elif name == "contrastive_camera":
            clusterer = CrossCameraAssociation(AutoEpsDBSCAN(min_samples=4, metric=metric),
                                               metric=metric)
        elif name == "contrastive_camera_pairs":
            clusterer = CrossCameraAssociation(None, metric=metric)
        else:
            # the graph mode on each sample's 30 nearest neighbours (the k1 = 30
            # of the Jaccard distance): no N x N matrix at any N, and every
            # candidate's criterion still over all the pairs of its two
            # clusters; on the Jaccard distance, its sparse matrix (the pairs
            # without a common neighbour are at exactly 1)
            extra = {"missing_distance": 1.0} if metric == "precomputed" else {}
            clusterer = make_clusterer("standalone", metric=metric, connectivity=30,
                                       **extra)
    extractor = clone(feature_extractor if feature_extractor is not None
                      else ReIDFeatureExtractor())
    extractor.set_params(**CONTRASTIVE_EXTRACTOR)
    return SelfTrainingReID(extractor, clusterer, **loop_params)
