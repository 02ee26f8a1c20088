"""One table of bad arguments for every public function and estimator.

Each row calls one public function or estimator of :mod:`sklearn_ecluster`
(datasets, metrics, feature_extraction, self_training, plotting) with one bad
argument and states the exception type and a regex of the message, which
names the parameter (and, for a scalar, the value). The rule checked:
``TypeError`` for a wrong type (``bool`` where a number is wanted included),
``ValueError`` for a wrong value, shape or length. A failed scikit-learn
constraint raises ``InvalidParameterError``, which is both; every other error
must be exactly one of the two.

The calls fail in validation, before any work: no file is read, no network
is built.
"""

import re

import numpy as np
import pytest
import torch
from sklearn.utils import Bunch
from sklearn.utils._param_validation import InvalidParameterError
from torch import nn

from sklearn_ecluster import (
    datasets,
    feature_extraction,
    metrics,
    plotting,
    self_training,
)
from sklearn_ecluster.datasets import (
    ReIDImageDataset,
    build_transforms,
    load_dukemtmc_reid,
    load_market1501,
    load_msmt17,
    load_prid450s,
    load_reid_folder,
    make_reid_features,
    make_synthetic_reid,
    read_image,
)
from sklearn_ecluster.feature_extraction import (
    EmbeddingHead,
    ReIDFeatureExtractor,
    ReIDNetwork,
    build_network,
    cluster_contrast_loss,
    convert_tonylins_mobilenet_v2,
    init_cluster_memory,
    init_memory,
    memory_loss,
    update_cluster_memory,
    update_memory,
)
from sklearn_ecluster.metrics import (
    cmc_curve,
    evaluate_features,
    evaluate_reid,
    jaccard_distance,
    k_reciprocal_rerank,
    mean_average_precision_score,
    mean_inp_score,
    rank_k_score,
    reid_distances,
)
from sklearn_ecluster.plotting import plot_cluster_montage, plot_history
from sklearn_ecluster.self_training import (
    AutoEpsDBSCAN,
    CrossCameraAssociation,
    SelfTrainingReID,
    center_per_camera,
    cross_camera_nearest,
    make_recipe,
    mutual_cross_camera_pairs,
    pseudo_label_scores,
)

# a valid re-ID evaluation problem: 2 queries x 3 gallery items
D = np.array([[0.1, 0.5, 0.9], [0.7, 0.2, 0.4]])
QP, GP, QC, GC = [1, 2], [1, 2, 2], [0, 0], [1, 1, 1]
RANKING = [cmc_curve, evaluate_reid, mean_average_precision_score, mean_inp_score,
           rank_k_score]
IMAGES = np.zeros((4, 32, 16, 3), dtype=np.uint8)
FEATS = torch.zeros(3, 4)
LABELS = torch.tensor([0, 1, 1])
MEMORY = torch.eye(2, 4)
PART = Bunch(paths=["a.jpg"], pids=[1], camids=[0])


def _extractor(**params):
    params = {"image_size": (32, 16), "embedding_dim": 4, "epochs": 1, "device": "cpu",
              **params}
    return ReIDFeatureExtractor(nn.Conv2d(3, 4, 3), **params)


def _loop(**params):
    return SelfTrainingReID(_extractor(), **params)


def _eval_set(q_pids=(1, 2), q_camids=(0, 0)):
    return (list(IMAGES[:2]), list(q_pids), list(q_camids), list(IMAGES[:2]), [1, 2], [1, 1])


def _names(param, value=None):
    """Regex: the parameter, then (for scalars) the offending value."""
    pattern = re.escape(param)
    return pattern if value is None else rf"{pattern}.*{re.escape(repr(value))}"


def _case(func, call, error, match, id_):
    return pytest.param(func, call, error, match, id=id_)


CASES = [
    # ---------------------------------------------------------------- datasets
    _case(make_reid_features, lambda tmp: make_reid_features(n_samples=True), TypeError,
          _names("n_samples", True), "make_reid_features-bool"),
    _case(make_reid_features, lambda tmp: make_reid_features(40, 4, 8, n_cameras=0),
          ValueError, _names("n_cameras", 0), "make_reid_features-zero"),
    _case(make_reid_features, lambda tmp: make_reid_features(40, 4, n_features=-3),
          ValueError, _names("n_features", -3), "make_reid_features-negative"),
    _case(make_reid_features, lambda tmp: make_reid_features(40, 4, 8, noise="large"),
          TypeError, _names("noise", "large"), "make_reid_features-str"),
    _case(make_reid_features, lambda tmp: make_reid_features(40, 4, 8, shuffle=1),
          TypeError, _names("shuffle", 1), "make_reid_features-shuffle-int"),
    _case(make_reid_features, lambda tmp: make_reid_features(40, 4, 8, dtype=np.int32),
          ValueError, "dtype must be np.float32 or np.float64", "make_reid_features-dtype"),
    _case(make_reid_features, lambda tmp: make_reid_features(40, 4, 8, random_state="a"),
          TypeError, _names("random_state", "a"), "make_reid_features-random_state"),
    _case(make_synthetic_reid, lambda tmp: make_synthetic_reid(tmp, n_identities=True),
          TypeError, _names("n_identities", True), "make_synthetic_reid-bool"),
    _case(make_synthetic_reid, lambda tmp: make_synthetic_reid(tmp, n_cameras=1),
          ValueError, _names("n_cameras", 1), "make_synthetic_reid-n_cameras"),
    _case(make_synthetic_reid, lambda tmp: make_synthetic_reid(tmp, n_junk=-1),
          ValueError, _names("n_junk", -1), "make_synthetic_reid-negative"),
    _case(make_synthetic_reid, lambda tmp: make_synthetic_reid(tmp, image_size=(32, True)),
          TypeError, _names("image_size", (32, True)), "make_synthetic_reid-size-bool"),
    _case(make_synthetic_reid, lambda tmp: make_synthetic_reid(tmp, image_size=(0, 16)),
          ValueError, _names("image_size", (0, 16)), "make_synthetic_reid-size-zero"),
    _case(make_synthetic_reid, lambda tmp: make_synthetic_reid(tmp, image_size=(32, 16, 3)),
          ValueError, _names("image_size", (32, 16, 3)), "make_synthetic_reid-size-3"),
    _case(make_synthetic_reid, lambda tmp: make_synthetic_reid(tmp, image_size="32x16"),
          TypeError, _names("image_size", "32x16"), "make_synthetic_reid-size-str"),
    _case(make_synthetic_reid,
          lambda tmp: make_synthetic_reid(tmp, images_per_identity=(2, 5)), ValueError,
          _names("images_per_identity", (2, 5)), "make_synthetic_reid-pair-low"),
    _case(make_synthetic_reid, lambda tmp: make_synthetic_reid(tmp, n_train_identities=100),
          ValueError, _names("n_train_identities") + ".*100", "make_synthetic_reid-upper"),
    _case(make_synthetic_reid, lambda tmp: make_synthetic_reid(tmp, overwrite="yes"),
          TypeError, _names("overwrite", "yes"), "make_synthetic_reid-overwrite"),
    _case(make_synthetic_reid, lambda tmp: make_synthetic_reid(tmp, random_state=-1),
          ValueError, _names("random_state", -1), "make_synthetic_reid-seed"),
    _case(make_synthetic_reid, lambda tmp: make_synthetic_reid(tmp, name=3),
          TypeError, _names("name", 3), "make_synthetic_reid-name"),
    _case(load_market1501, lambda tmp: load_market1501(3), TypeError, _names("root", 3),
          "load_market1501-root"),
    _case(load_market1501, lambda tmp: load_market1501(tmp, on_corrupt="warn"),
          ValueError, _names("on_corrupt", "warn"), "load_market1501-on_corrupt"),
    _case(load_market1501, lambda tmp: load_market1501(tmp, on_mismatch="ignore"),
          ValueError, _names("on_mismatch", "ignore"), "load_market1501-on_mismatch"),
    _case(load_market1501, lambda tmp: load_market1501(tmp, relabel_train="yes"),
          TypeError, _names("relabel_train", "yes"), "load_market1501-relabel"),
    _case(load_dukemtmc_reid, lambda tmp: load_dukemtmc_reid(tmp, on_corrupt="Skip"),
          ValueError, _names("on_corrupt", "Skip"), "load_dukemtmc_reid-on_corrupt"),
    _case(load_dukemtmc_reid, lambda tmp: load_dukemtmc_reid(tmp, relabel_train=0),
          TypeError, _names("relabel_train", 0), "load_dukemtmc_reid-relabel"),
    _case(load_reid_folder, lambda tmp: load_reid_folder(tmp, n_cameras=0), ValueError,
          _names("n_cameras", 0), "load_reid_folder-n_cameras-zero"),
    _case(load_reid_folder, lambda tmp: load_reid_folder(tmp, n_cameras=True), TypeError,
          _names("n_cameras", True), "load_reid_folder-n_cameras-bool"),
    _case(load_reid_folder, lambda tmp: load_reid_folder(tmp, first_camera=-1), ValueError,
          _names("first_camera", -1), "load_reid_folder-first_camera"),
    _case(load_reid_folder, lambda tmp: load_reid_folder(tmp, first_camera=1.0), TypeError,
          _names("first_camera", 1.0), "load_reid_folder-first_camera-float"),
    _case(load_reid_folder, lambda tmp: load_reid_folder(tmp, pattern=3), TypeError,
          _names("pattern", 3), "load_reid_folder-pattern"),
    _case(load_reid_folder, lambda tmp: load_reid_folder(tmp, subsets="train"), TypeError,
          _names("subsets", "train"), "load_reid_folder-subsets"),
    _case(load_reid_folder, lambda tmp: load_reid_folder(tmp, on_mismatch="warn"),
          ValueError, _names("on_mismatch", "warn"), "load_reid_folder-on_mismatch"),
    _case(load_msmt17, lambda tmp: load_msmt17(tmp, include_val="no"), TypeError,
          _names("include_val", "no"), "load_msmt17-include_val"),
    _case(load_msmt17, lambda tmp: load_msmt17(tmp, on_corrupt=None), TypeError,
          _names("on_corrupt", None), "load_msmt17-on_corrupt"),
    _case(load_prid450s, lambda tmp: load_prid450s(tmp, split=True), TypeError,
          _names("split", True), "load_prid450s-split-bool"),
    _case(load_prid450s, lambda tmp: load_prid450s(tmp, split=-1), ValueError,
          _names("split", -1), "load_prid450s-split"),
    _case(load_prid450s, lambda tmp: load_prid450s(tmp, n_train_ids=0), ValueError,
          _names("n_train_ids", 0), "load_prid450s-n_train_ids"),
    _case(load_prid450s, lambda tmp: load_prid450s(tmp, random_state=1.5), TypeError,
          _names("random_state", 1.5), "load_prid450s-random_state"),
    _case(build_transforms, lambda tmp: build_transforms((True, 16)), TypeError,
          _names("image_size", (True, 16)), "build_transforms-size-bool"),
    _case(build_transforms, lambda tmp: build_transforms((32, -16)), ValueError,
          _names("image_size", (32, -16)), "build_transforms-size-negative"),
    _case(build_transforms, lambda tmp: build_transforms([32]), ValueError,
          _names("image_size", [32]), "build_transforms-size-1"),
    _case(build_transforms, lambda tmp: build_transforms((32.0, 16)), TypeError,
          _names("image_size", (32.0, 16)), "build_transforms-size-float"),
    _case(build_transforms, lambda tmp: build_transforms(32), TypeError,
          _names("image_size", 32), "build_transforms-size-int"),
    _case(build_transforms, lambda tmp: build_transforms(train="yes"), TypeError,
          _names("train", "yes"), "build_transforms-train"),
    _case(build_transforms, lambda tmp: build_transforms(pad=-1), ValueError,
          _names("pad", -1), "build_transforms-pad"),
    _case(build_transforms, lambda tmp: build_transforms(flip_prob=2), ValueError,
          _names("flip_prob", 2), "build_transforms-flip_prob"),
    _case(read_image, lambda tmp: read_image(3), TypeError, _names("path", 3),
          "read_image-path"),
    _case(ReIDImageDataset, lambda tmp: ReIDImageDataset("a.jpg"), TypeError, "paths",
          "ReIDImageDataset-one-path"),
    _case(ReIDImageDataset, lambda tmp: ReIDImageDataset(["a.jpg"], labels=[1, 2]),
          ValueError, "labels has 2 entries but paths has 1", "ReIDImageDataset-length"),
    _case(ReIDImageDataset, lambda tmp: ReIDImageDataset(["a.jpg"], labels=[1.0]),
          TypeError, "labels must hold integers.*float64", "ReIDImageDataset-float"),
    _case(ReIDImageDataset, lambda tmp: ReIDImageDataset(["a.jpg"], camids=[True]),
          TypeError, "camids must hold integers.*bool", "ReIDImageDataset-bool"),
    _case(ReIDImageDataset, lambda tmp: ReIDImageDataset(["a.jpg"], camids=[[0]]),
          ValueError, r"camids must be 1-D, got shape \(1, 1\)", "ReIDImageDataset-2d"),
    _case(ReIDImageDataset, lambda tmp: ReIDImageDataset(["a.jpg"], transform="train"),
          TypeError, _names("transform", "train"), "ReIDImageDataset-transform"),
    _case(ReIDImageDataset, lambda tmp: ReIDImageDataset.from_bunch(PART, labels="pid"),
          ValueError, _names("labels", "pid"), "from_bunch-labels"),
    _case(ReIDImageDataset,
          lambda tmp: ReIDImageDataset.from_bunch(PART, image_size=(32, 0)), ValueError,
          _names("image_size", (32, 0)), "from_bunch-image_size"),
    _case(ReIDImageDataset, lambda tmp: ReIDImageDataset.from_bunch(PART, train=1),
          TypeError, _names("train", 1), "from_bunch-train"),
    _case(ReIDImageDataset, lambda tmp: ReIDImageDataset.from_bunch(["a.jpg"]),
          TypeError, "'part' parameter", "from_bunch-part"),
    # ----------------------------------------------------------------- metrics
    *[
        row
        for f in RANKING
        for row in (
            _case(f, lambda tmp, f=f: f("dist", QP, GP, QC, GC), TypeError,
                  _names("distmat", "dist"), f"{f.__name__}-distmat-str"),
            _case(f, lambda tmp, f=f: f(D.astype(complex), QP, GP, QC, GC), TypeError,
                  "distmat must hold real numbers", f"{f.__name__}-distmat-complex"),
            _case(f, lambda tmp, f=f: f(D[0], QP, GP, QC, GC), ValueError,
                  r"distmat must be a 2-D array, got shape \(3,\)",
                  f"{f.__name__}-distmat-1d"),
            _case(f, lambda tmp, f=f: f(D, [1, 2, 3], GP, QC, GC), ValueError,
                  "q_pids has 3 entries but distmat", f"{f.__name__}-q_pids-length"),
            _case(f, lambda tmp, f=f: f(D, QP, [1.0, 2.0, 2.0], QC, GC), TypeError,
                  "g_pids must hold integers.*float64", f"{f.__name__}-g_pids-float"),
            _case(f, lambda tmp, f=f: f(D, QP, GP, [True, False], GC), TypeError,
                  "q_camids must hold integers.*bool", f"{f.__name__}-q_camids-bool"),
            _case(f, lambda tmp, f=f: f(D, QP, GP, QC, [[1, 1, 1]]), ValueError,
                  "g_camids must be 1-D", f"{f.__name__}-g_camids-2d"),
        )
    ],
    _case(cmc_curve, lambda tmp: cmc_curve(D, QP, GP, QC, GC, max_rank=True), TypeError,
          _names("max_rank", True), "cmc_curve-max_rank-bool"),
    _case(cmc_curve, lambda tmp: cmc_curve(D, QP, GP, QC, GC, max_rank=0), ValueError,
          _names("max_rank", 0), "cmc_curve-max_rank-zero"),
    _case(evaluate_reid, lambda tmp: evaluate_reid(D, QP, GP, QC, GC, max_rank=2.0),
          TypeError, _names("max_rank", 2.0), "evaluate_reid-max_rank-float"),
    _case(evaluate_reid, lambda tmp: evaluate_reid(D, QP, GP, QC, GC, max_rank=-5),
          ValueError, _names("max_rank", -5), "evaluate_reid-max_rank-negative"),
    _case(rank_k_score, lambda tmp: rank_k_score(D, QP, GP, QC, GC, k=True), TypeError,
          _names("k", True), "rank_k_score-k-bool"),
    _case(rank_k_score, lambda tmp: rank_k_score(D, QP, GP, QC, GC, k=0), ValueError,
          _names("k", 0), "rank_k_score-k-zero"),
    _case(reid_distances, lambda tmp: reid_distances(D, D, metric="manhattan"), ValueError,
          _names("metric", "manhattan"), "reid_distances-metric"),
    _case(reid_distances, lambda tmp: reid_distances(D, D, device=0), TypeError,
          _names("device", 0), "reid_distances-device"),
    _case(reid_distances, lambda tmp: reid_distances(D, np.ones((2, 4))), ValueError,
          "query_features has 3 features per row but gallery_features has 4",
          "reid_distances-features"),
    _case(reid_distances, lambda tmp: reid_distances(D, np.full((2, 3), "a")), TypeError,
          "gallery_features must hold real numbers", "reid_distances-dtype"),
    _case(evaluate_features, lambda tmp: evaluate_features(D, D, QP, QP, QC, QC, rerank=1),
          TypeError, _names("rerank", 1), "evaluate_features-rerank"),
    _case(evaluate_features,
          lambda tmp: evaluate_features(D, D, QP, QP, QC, QC, max_rank=0), ValueError,
          _names("max_rank", 0), "evaluate_features-max_rank"),
    _case(evaluate_features,
          lambda tmp: evaluate_features(D, D, QP, [1, 2, 3], QC, QC), ValueError,
          "g_pids has 3 entries but gallery_features has 2", "evaluate_features-g_pids"),
    _case(evaluate_features,
          lambda tmp: evaluate_features(D, D, QP, QP, QC, QC, metric="l1"), ValueError,
          _names("metric", "l1"), "evaluate_features-metric"),
    _case(jaccard_distance, lambda tmp: jaccard_distance(D, k1=True), TypeError,
          _names("k1", True), "jaccard_distance-k1-bool"),
    _case(jaccard_distance, lambda tmp: jaccard_distance(D, k2=0), ValueError,
          _names("k2", 0), "jaccard_distance-k2-zero"),
    _case(jaccard_distance, lambda tmp: jaccard_distance(D, sparse="yes"), TypeError,
          _names("sparse", "yes"), "jaccard_distance-sparse-str"),
    _case(k_reciprocal_rerank, lambda tmp: k_reciprocal_rerank(D, D[:, :2], D, k1=True),
          TypeError, _names("k1", True), "k_reciprocal_rerank-k1-bool"),
    _case(k_reciprocal_rerank, lambda tmp: k_reciprocal_rerank(D, D[:, :2], D, k2=0),
          ValueError, _names("k2", 0), "k_reciprocal_rerank-k2-zero"),
    _case(k_reciprocal_rerank,
          lambda tmp: k_reciprocal_rerank(D, D[:, :2], D, lambda_value=1.5), ValueError,
          _names("lambda_value", 1.5), "k_reciprocal_rerank-lambda"),
    _case(k_reciprocal_rerank,
          lambda tmp: k_reciprocal_rerank(D, D[:, :2], D, lambda_value="0.3"), TypeError,
          _names("lambda_value", "0.3"), "k_reciprocal_rerank-lambda-str"),
    _case(k_reciprocal_rerank, lambda tmp: k_reciprocal_rerank(D, D, D), ValueError,
          r"q_q_dist must have shape \(2, 2\)", "k_reciprocal_rerank-shape"),
    # ------------------------------------------------------ feature_extraction
    _case(ReIDFeatureExtractor, lambda tmp: _extractor(epochs=True).fit(IMAGES),
          TypeError, _names("epochs", True), "ReIDFeatureExtractor-epochs-bool"),
    _case(ReIDFeatureExtractor, lambda tmp: _extractor(batch_size=0).fit(IMAGES),
          ValueError, _names("batch_size", 0), "ReIDFeatureExtractor-batch_size"),
    _case(ReIDFeatureExtractor, lambda tmp: _extractor(lr=-0.1).fit(IMAGES),
          ValueError, _names("lr", -0.1), "ReIDFeatureExtractor-lr"),
    _case(ReIDFeatureExtractor, lambda tmp: _extractor(dropout=True).fit(IMAGES),
          TypeError, _names("dropout", True), "ReIDFeatureExtractor-dropout-bool"),
    _case(ReIDFeatureExtractor, lambda tmp: _extractor(output="fc7").fit(IMAGES),
          ValueError, _names("output", "fc7"), "ReIDFeatureExtractor-output"),
    _case(ReIDFeatureExtractor, lambda tmp: _extractor(memory_init="rand").fit(IMAGES),
          ValueError, _names("memory_init", "rand"), "ReIDFeatureExtractor-memory_init"),
    _case(ReIDFeatureExtractor, lambda tmp: _extractor(amp=1).fit(IMAGES),
          TypeError, _names("amp", 1), "ReIDFeatureExtractor-amp"),
    _case(ReIDFeatureExtractor,
          lambda tmp: ReIDFeatureExtractor(image_size=(32, True)).fit(IMAGES), TypeError,
          _names("image_size", (32, True)), "ReIDFeatureExtractor-size-bool"),
    _case(ReIDFeatureExtractor,
          lambda tmp: ReIDFeatureExtractor(image_size=(0, 16)).fit(IMAGES), ValueError,
          _names("image_size", (0, 16)), "ReIDFeatureExtractor-size-zero"),
    _case(ReIDFeatureExtractor,
          lambda tmp: ReIDFeatureExtractor(image_size=256).fit(IMAGES), TypeError,
          _names("image_size", 256), "ReIDFeatureExtractor-size-int"),
    _case(ReIDFeatureExtractor, lambda tmp: _extractor().fit(IMAGES, [0, 1]), ValueError,
          "y has 2 entries but X has 4", "ReIDFeatureExtractor-y-length"),
    _case(ReIDFeatureExtractor, lambda tmp: _extractor().fit(IMAGES, np.zeros((4, 1))),
          ValueError, r"y must be 1-D, got shape \(4, 1\)", "ReIDFeatureExtractor-y-2d"),
    _case(build_network, lambda tmp: build_network("resnet18", embedding_dim=True),
          TypeError, _names("embedding_dim", True), "build_network-bool"),
    _case(build_network, lambda tmp: build_network("resnet18", embedding_dim=0),
          ValueError, _names("embedding_dim", 0), "build_network-zero"),
    _case(build_network, lambda tmp: build_network("resnet18", dropout=1.0), ValueError,
          _names("dropout", 1.0), "build_network-dropout"),
    _case(build_network, lambda tmp: build_network(3), TypeError, _names("backbone", 3),
          "build_network-backbone"),
    _case(build_network, lambda tmp: build_network(nn.Conv2d(3, 4, 3), image_size=(8, 0)),
          ValueError, _names("image_size", (8, 0)), "build_network-image_size"),
    _case(EmbeddingHead, lambda tmp: EmbeddingHead(True), TypeError,
          _names("in_features", True), "EmbeddingHead-bool"),
    _case(EmbeddingHead, lambda tmp: EmbeddingHead(8, dropout=-0.1), ValueError,
          _names("dropout", -0.1), "EmbeddingHead-dropout"),
    _case(ReIDNetwork, lambda tmp: ReIDNetwork("resnet50", 8), TypeError,
          _names("backbone", "resnet50"), "ReIDNetwork-backbone"),
    _case(ReIDNetwork, lambda tmp: ReIDNetwork(nn.Identity(), 0), ValueError,
          _names("in_features", 0), "ReIDNetwork-in_features"),
    _case(init_cluster_memory, lambda tmp: init_cluster_memory(FEATS, LABELS, True),
          TypeError, _names("n_clusters", True), "init_cluster_memory-n_clusters"),
    _case(init_cluster_memory, lambda tmp: init_cluster_memory(FEATS.numpy(), LABELS, 2),
          TypeError, "'features' parameter", "init_cluster_memory-numpy"),
    _case(cluster_contrast_loss,
          lambda tmp: cluster_contrast_loss(FEATS, LABELS, MEMORY, temperature=0),
          ValueError, _names("temperature", 0), "cluster_contrast_loss-temperature"),
    _case(update_cluster_memory,
          lambda tmp: update_cluster_memory(MEMORY, FEATS, LABELS, momentum=1.5),
          ValueError, _names("momentum", 1.5), "update_cluster_memory-momentum"),
    _case(center_per_camera, lambda tmp: center_per_camera(D, [0, 1], normalize="yes"),
          TypeError, _names("normalize", "yes"), "center_per_camera-normalize"),
    _case(center_per_camera, lambda tmp: center_per_camera(D, [0, 1, 2]),
          ValueError, "one camera id per row", "center_per_camera-camids-length"),
    _case(cross_camera_nearest, lambda tmp: cross_camera_nearest(D, [0, 1], metric="l1"),
          ValueError, _names("metric", "l1"), "cross_camera_nearest-metric"),
    _case(cross_camera_nearest, lambda tmp: cross_camera_nearest(D, [0, 1, 1]),
          ValueError, "one camera id a sample", "cross_camera_nearest-camids-length"),
    _case(mutual_cross_camera_pairs,
          lambda tmp: mutual_cross_camera_pairs(D, [0, 1], metric="precomputed"),
          ValueError, "square distance matrix", "mutual_cross_camera_pairs-not-square"),
    _case(mutual_cross_camera_pairs, lambda tmp: mutual_cross_camera_pairs(D, [[0, 1]]),
          ValueError, "one camera id a sample", "mutual_cross_camera_pairs-camids-shape"),
    _case(CrossCameraAssociation,
          lambda tmp: CrossCameraAssociation(metric="l1").fit(D, camids=[0, 1]),
          ValueError, _names("metric", "l1"), "CrossCameraAssociation-metric"),
    _case(CrossCameraAssociation,
          lambda tmp: CrossCameraAssociation(clusterer="dbscan").fit(D, camids=[0, 1]),
          TypeError, _names("clusterer", "dbscan"), "CrossCameraAssociation-clusterer"),
    _case(make_recipe, lambda tmp: make_recipe("spcl"), ValueError, _names("name", "spcl"),
          "make_recipe-name"),
    _case(AutoEpsDBSCAN, lambda tmp: AutoEpsDBSCAN(min_samples=0).fit(D), ValueError,
          _names("min_samples", 0), "AutoEpsDBSCAN-min_samples"),
    _case(init_memory, lambda tmp: init_memory(FEATS, LABELS, 2, mode="random"),
          ValueError, _names("mode", "random"), "init_memory-mode"),
    _case(init_memory, lambda tmp: init_memory(FEATS, LABELS, True), TypeError,
          _names("n_classes", True), "init_memory-n_classes"),
    _case(init_memory, lambda tmp: init_memory(FEATS.numpy(), LABELS, 2), TypeError,
          "'features' parameter", "init_memory-numpy"),
    _case(init_memory, lambda tmp: init_memory(FEATS, LABELS.float(), 2), TypeError,
          "labels must hold integers", "init_memory-labels-float"),
    _case(init_memory, lambda tmp: init_memory(FEATS, LABELS[:2], 2), ValueError,
          "labels has 2 entries but features has 3", "init_memory-labels-length"),
    _case(memory_loss, lambda tmp: memory_loss(FEATS, LABELS, MEMORY, temperature=0),
          ValueError, _names("temperature", 0), "memory_loss-temperature"),
    _case(memory_loss, lambda tmp: memory_loss(FEATS, LABELS, MEMORY, temperature=True),
          TypeError, _names("temperature", True), "memory_loss-temperature-bool"),
    _case(memory_loss, lambda tmp: memory_loss(FEATS, LABELS, torch.eye(2, 5)),
          ValueError, "memory has 5 columns but features has 4", "memory_loss-memory"),
    _case(memory_loss, lambda tmp: memory_loss(FEATS[0], LABELS, MEMORY), ValueError,
          r"features must be a 2-D array, got shape \(4,\)", "memory_loss-features-1d"),
    _case(update_memory, lambda tmp: update_memory(MEMORY, FEATS, LABELS, momentum=1.5),
          ValueError, _names("momentum", 1.5), "update_memory-momentum"),
    _case(update_memory, lambda tmp: update_memory(MEMORY, FEATS, LABELS[None]),
          ValueError, r"labels must be a 1-D array", "update_memory-labels-2d"),
    _case(update_memory, lambda tmp: update_memory(MEMORY, FEATS.long(), LABELS),
          TypeError, "features must hold floating-point numbers", "update_memory-dtype"),
    _case(convert_tonylins_mobilenet_v2,
          lambda tmp: convert_tonylins_mobilenet_v2({}, keep_classifier="no"), TypeError,
          _names("keep_classifier", "no"), "convert-keep_classifier"),
    _case(convert_tonylins_mobilenet_v2, lambda tmp: convert_tonylins_mobilenet_v2([1]),
          TypeError, "state_dict must be a mapping", "convert-state_dict"),
    # ----------------------------------------------------------- self_training
    _case(SelfTrainingReID, lambda tmp: _loop(n_rounds=True).fit(IMAGES), TypeError,
          _names("n_rounds", True), "SelfTrainingReID-n_rounds-bool"),
    _case(SelfTrainingReID, lambda tmp: _loop(n_rounds=0).fit(IMAGES), ValueError,
          _names("n_rounds", 0), "SelfTrainingReID-n_rounds-zero"),
    _case(SelfTrainingReID, lambda tmp: _loop(later_epochs=-1).fit(IMAGES), ValueError,
          _names("later_epochs", -1), "SelfTrainingReID-later_epochs"),
    _case(SelfTrainingReID, lambda tmp: _loop(merge_percent=1.5).fit(IMAGES), ValueError,
          _names("merge_percent", 1.5), "SelfTrainingReID-merge_percent"),
    _case(SelfTrainingReID, lambda tmp: _loop(selection="best").fit(IMAGES), ValueError,
          _names("selection", "best"), "SelfTrainingReID-selection"),
    _case(SelfTrainingReID, lambda tmp: _loop(metric="l1").fit(IMAGES), ValueError,
          _names("metric", "l1"), "SelfTrainingReID-metric"),
    _case(SelfTrainingReID, lambda tmp: _loop(checkpoint_dir=3).fit(IMAGES), TypeError,
          _names("checkpoint_dir", 3), "SelfTrainingReID-checkpoint_dir"),
    _case(SelfTrainingReID, lambda tmp: _loop(callback="print").fit(IMAGES), TypeError,
          _names("callback", "print"), "SelfTrainingReID-callback"),
    _case(SelfTrainingReID, lambda tmp: _loop().fit(IMAGES, [0, 1, 2]), ValueError,
          "y has 3 entries but X has 4", "SelfTrainingReID-y-length"),
    _case(SelfTrainingReID,
          lambda tmp: _loop().fit(IMAGES, eval_set=_eval_set(q_pids=(1, 2, 3))),
          ValueError, "eval_set query pids has 3 entries", "SelfTrainingReID-eval-length"),
    _case(SelfTrainingReID,
          lambda tmp: _loop().fit(IMAGES, eval_set=_eval_set(q_camids=(0.0, 1.0))),
          TypeError, "eval_set query camids must hold integers", "SelfTrainingReID-eval-float"),
    _case(pseudo_label_scores, lambda tmp: pseudo_label_scores([0, 1, 1], [0, 1]),
          ValueError, "labels_pred has 2 entries but labels_true has 3",
          "pseudo_label_scores-length"),
    _case(pseudo_label_scores, lambda tmp: pseudo_label_scores([[0, 1]], [[0, 1]]),
          ValueError, "labels_true must be 1-D", "pseudo_label_scores-2d"),
    _case(pseudo_label_scores, lambda tmp: pseudo_label_scores("ab", [0, 1]), TypeError,
          _names("labels_true", "ab"), "pseudo_label_scores-str"),
    # ---------------------------------------------------------------- plotting
    _case(plot_history, lambda tmp: plot_history("history.json"), TypeError,
          _names("history", "history.json"), "plot_history-history"),
    _case(plot_history, lambda tmp: plot_history([], keys="mAP"), TypeError,
          _names("keys", "mAP"), "plot_history-keys"),
    _case(plot_history, lambda tmp: plot_history([], ax=3), TypeError, _names("ax", 3),
          "plot_history-ax"),
    _case(plot_history, lambda tmp: plot_history([], label=1), TypeError,
          _names("label", 1), "plot_history-label"),
    _case(plot_cluster_montage, lambda tmp: plot_cluster_montage("a.jpg", [0]), TypeError,
          _names("images", "a.jpg"), "plot_cluster_montage-images"),
    _case(plot_cluster_montage, lambda tmp: plot_cluster_montage(IMAGES, [0, 1]), ValueError,
          "labels has 2 entries but images has 4", "plot_cluster_montage-length"),
    _case(plot_cluster_montage,
          lambda tmp: plot_cluster_montage(IMAGES, [0, 0, 1, 1], n_clusters=0), ValueError,
          _names("n_clusters", 0), "plot_cluster_montage-n_clusters"),
    _case(plot_cluster_montage,
          lambda tmp: plot_cluster_montage(IMAGES, [0, 0, 1, 1], max_members=True),
          TypeError, _names("max_members", True), "plot_cluster_montage-bool"),
    _case(plot_cluster_montage,
          lambda tmp: plot_cluster_montage(IMAGES, [0, 0, 1, 1], image_size=(32, 0)),
          ValueError, _names("image_size", (32, 0)), "plot_cluster_montage-image_size"),
    _case(plot_cluster_montage,
          lambda tmp: plot_cluster_montage(IMAGES, [0.0, 0.0, 1.0, 1.0]), TypeError,
          "labels must hold integers", "plot_cluster_montage-float-labels"),
]


@pytest.mark.parametrize("func, call, error, match", CASES)
def test_bad_argument(tmp_path, func, call, error, match):
    with pytest.raises(error, match=match) as info:
        call(tmp_path)
    if not isinstance(info.value, InvalidParameterError):  # scikit-learn's is both
        other = ValueError if error is TypeError else TypeError
        assert not isinstance(info.value, other), repr(info.value)
    assert not any(tmp_path.iterdir())  # nothing written


def _public_callables():
    for module in (datasets, metrics, feature_extraction, self_training, plotting):
        for name in module.__all__:
            obj = getattr(module, name)
            if callable(obj):
                yield obj


def test_every_public_callable_is_in_the_table():
    covered = {case.values[0] for case in CASES}
    missing = [f"{obj.__module__}.{obj.__qualname__}" for obj in _public_callables()
               if obj not in covered]
    assert not missing, missing


@pytest.mark.parametrize("est", [ReIDFeatureExtractor, SelfTrainingReID])
def test_integer_parameters_refuse_bool(est):
    """Every int parameter of an estimator refuses True (bool is not a count)."""
    ints = [name for name, constraints in est._parameter_constraints.items()
            if any(getattr(c, "type", None) is not None and "int" in str(c)
                   for c in constraints)]
    assert ints  # the estimators have integer parameters
    for name in ints:
        model = _loop(**{name: True}) if est is SelfTrainingReID else _extractor(**{name: True})
        with pytest.raises(TypeError, match=rf"'{name}' parameter.*Got True"):
            model.fit(IMAGES)
