"""The design choices of issue 10, each against a hand-computed case on tiny data.

The cluster-memory contrastive loss and its memory, the P x K sampler,
outlier removal, frozen backbone stages, per-camera centring, the
k-reciprocal Jaccard distance, the data-driven DBSCAN radius, the loop with
each new option, the named recipes and ``train --recipe``.
"""

import json
import warnings

import numpy as np
import pytest
import torch
from _rerank_reference import k_reciprocal_weights
from _tolerances import assert_allclose_float32
from scipy import sparse
from sklearn.base import BaseEstimator, ClusterMixin, clone
from sklearn.cluster import DBSCAN, KMeans
from torch import nn

from sklearn_ecluster import EnergyAgglomerative, ReIDFeatureExtractor
from sklearn_ecluster.cli import main
from sklearn_ecluster.datasets import build_transforms
from sklearn_ecluster.feature_extraction import (
    cluster_contrast_loss,
    init_cluster_memory,
    update_cluster_memory,
)
from sklearn_ecluster.feature_extraction._inputs import check_images, eval_batches
from sklearn_ecluster.feature_extraction._samplers import PKBatchSampler
from sklearn_ecluster.feature_extraction._stages import backbone_stages
from sklearn_ecluster.metrics import evaluate_features, jaccard_distance
from sklearn_ecluster.self_training import (
    RECIPES,
    AutoEpsDBSCAN,
    CrossCameraAssociation,
    SelfTrainingReID,
    center_per_camera,
    cross_camera_nearest,
    make_recipe,
    mutual_cross_camera_pairs,
)
from sklearn_ecluster.self_training._dbscan import eps_from_distances

# float32 GEMM / normalisation on values of order 1
RTOL = 1e-4


def _tiny_images(seed=0, n_ids=6, per_id=4):
    """Images of a person: one colour + noise; cameras 0, 0, 1, 1 (camera 1 brighter)."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(n_ids), per_id)
    cams = np.tile(np.arange(per_id) * 2 // per_id, n_ids)
    base = rng.integers(0, 200, size=(n_ids, 1, 1, 3))
    noise = rng.normal(0, 20, size=(len(ids), 32, 16, 3))
    images = np.clip(base[ids] + noise + 40 * cams[:, None, None, None], 0, 255)
    return images.astype(np.uint8), ids, cams


def _tiny_extractor(**params):
    with torch.random.fork_rng():  # the same initial weights at every call
        torch.manual_seed(0)
        backbone = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                                 nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8))
    params.setdefault("embedding_dim", 8)
    return ReIDFeatureExtractor(backbone, image_size=(32, 16), device="cpu", **params)


# ------------------------------------------------------------------ memory
def test_cluster_memory_init_is_the_normalised_mean_without_outliers():
    features = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0], [9.0, 9.0]])
    memory = init_cluster_memory(features, torch.tensor([0, 1, 1, -1]), 2)
    # cluster 0: (3, 4) / 5; cluster 1: mean (0.5, 1) / |(0.5, 1)|
    expected = np.array([[0.6, 0.8], [0.5, 1.0] / np.hypot(0.5, 1.0)])
    np.testing.assert_allclose(memory.numpy(), expected, rtol=RTOL)


def test_infonce_loss_matches_a_hand_computation():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(5, 4))
    memory = rng.normal(size=(3, 4))
    memory /= np.linalg.norm(memory, axis=1, keepdims=True)
    y = np.array([0, 2, 1, 1, 0])
    q = f / np.linalg.norm(f, axis=1, keepdims=True)
    logits = q @ memory.T / 0.05
    expected = np.mean([np.log(np.exp(logits[i]).sum()) - logits[i, y[i]] for i in range(5)])
    got = cluster_contrast_loss(torch.tensor(f, dtype=torch.float32),
                                torch.tensor(y), torch.tensor(memory, dtype=torch.float32))
    # logits up to 20 in float32: the log-sum-exp keeps ~1e-6 relative error
    assert float(got) == pytest.approx(expected, rel=RTOL)


def test_memory_update_is_sequential_with_momentum_and_normalisation():
    rng = np.random.default_rng(1)
    memory = rng.normal(size=(3, 4))
    memory /= np.linalg.norm(memory, axis=1, keepdims=True)
    f = rng.normal(size=(6, 4)) * 3.0
    y = [2, 0, 2, 2, 1, 0]  # label 2 three times: each update on top of the last
    expected = memory.copy()
    for v, label in zip(f, y):
        q = v / np.linalg.norm(v)
        row = 0.1 * expected[label] + 0.9 * q
        expected[label] = row / np.linalg.norm(row)
    got = torch.tensor(memory, dtype=torch.float32)
    update_cluster_memory(got, torch.tensor(f, dtype=torch.float32), torch.tensor(y))
    np.testing.assert_allclose(got.numpy(), expected, rtol=RTOL, atol=1e-6)


def test_cluster_contrast_training_runs_with_its_own_loss():
    images, ids, _ = _tiny_images()
    ex = _tiny_extractor(loss="cluster_contrast", temperature=0.05, memory_momentum=0.1,
                         optimizer="adam", lr=3e-3, backbone_lr_mult=1.0, lr_step=None,
                         dropout=0.0, epochs=4, train_batch_size=8, random_state=0)
    ex.fit(images, ids)
    assert len(ex.loss_history_) == 4 and np.isfinite(ex.loss_history_).all()
    other = clone(ex).set_params(loss="memory_softmax").fit(images, ids)
    assert other.loss_history_ != ex.loss_history_


# ---------------------------------------------------------------- outliers
def test_outliers_are_left_out_of_training():
    images, ids, _ = _tiny_images()
    y = ids.copy()
    y[[1, 5, 9]] = -1
    keep = y >= 0
    params = dict(epochs=2, train_batch_size=6, random_state=0)
    a = _tiny_extractor(**params).fit(images, y)
    b = _tiny_extractor(**params).fit(images[keep], y[keep])
    np.testing.assert_array_equal(a.classes_, np.arange(6))
    assert a.loss_history_ == b.loss_history_
    for (name, pa), pb in zip(a.model_.state_dict().items(), b.model_.state_dict().values()):
        assert torch.equal(pa, pb), name


def test_loop_training_labels_drop_or_keep_outliers():
    labels = np.array([0, 0, 1, 2, 2, -1, 3])
    drop = SelfTrainingReID(outliers="drop", init="cluster")
    # clusters 1 and 3 have one image each, and -1 is noise
    np.testing.assert_array_equal(drop._training_labels(labels, 1), [0, 0, -1, 1, 1, -1, -1])
    keep = SelfTrainingReID(outliers="keep", init="cluster")
    np.testing.assert_array_equal(keep._training_labels(labels, 1), [0, 0, 1, 2, 2, 4, 3])
    # the paper's singleton round 0 is trained whole
    paper = SelfTrainingReID(outliers="drop")
    np.testing.assert_array_equal(paper._training_labels(np.arange(4), 0), np.arange(4))


# ----------------------------------------------------------------- sampler
def test_pk_sampler_batches_have_p_ids_times_k_images():
    sizes = [1, 2, 3, 5, 6]
    labels = np.repeat(np.arange(5), sizes)
    sampler = PKBatchSampler(labels, n_instances=2, batch_size=6, n_batches=7, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 7
    for batch in batches:
        ids, counts = np.unique(labels[batch], return_counts=True)
        assert len(ids) == 3 and (counts == 2).all()
        for i in ids:  # distinct images unless the label has fewer than K
            picked = np.asarray(batch)[labels[batch] == i]
            assert len(set(picked)) == min(2, sizes[i])
    # every label within ceil(5 / 3) batches
    assert set(labels[np.concatenate(batches[:2])]) == set(range(5))
    again = list(PKBatchSampler(labels, n_instances=2, batch_size=6, n_batches=7, seed=3))
    other = list(PKBatchSampler(labels, n_instances=2, batch_size=6, n_batches=7, seed=4))
    assert again == batches and other != batches


def test_pk_sampler_balances_cameras_and_continues_over_epochs():
    labels = np.repeat([0, 1], 6)
    camids = np.array([0, 0, 0, 0, 1, 1] * 2)
    sampler = PKBatchSampler(labels, n_instances=4, batch_size=8, n_batches=3,
                             camids=camids, seed=0)
    first, second = list(sampler), list(sampler)
    for batch in first + second:
        for i in (0, 1):
            picked = np.asarray(batch)[labels[batch] == i]
            assert np.bincount(camids[picked], minlength=2).tolist() == [2, 2]
    assert first != second  # a new draw each epoch


def test_extractor_pk_sampler_checks_the_batch_and_runs():
    images, ids, cams = _tiny_images()
    with pytest.raises(ValueError, match="multiple of num_instances"):
        _tiny_extractor(sampler="pk", train_batch_size=6, num_instances=4).fit(images, ids)
    ex = _tiny_extractor(sampler="pk", train_batch_size=8, num_instances=2,
                         iters_per_epoch=3, epochs=2, random_state=0)
    a = ex.fit(images, ids, camids=cams).loss_history_
    b = clone(ex).fit(images, ids, camids=cams).loss_history_
    assert len(a) == 2 and a == b


# ----------------------------------------------------------- frozen stages
def test_backbone_stage_boundaries_by_architecture():
    import torchvision

    resnet = dict(backbone_stages(torchvision.models.resnet18()))
    assert list(resnet) == ["conv1", "layer1", "layer2", "layer3", "layer4"]
    assert resnet["conv1"] == ["conv1", "bn1", "relu", "maxpool"]
    mobile = [name for name, _ in backbone_stages(torchvision.models.mobilenet_v2())]
    assert mobile == [f"features.{i}" for i in range(19)]


def test_frozen_stages_keep_weights_bn_statistics_and_outputs():
    images, ids, _ = _tiny_images()
    params = dict(epochs=2, train_batch_size=8, random_state=0, lr=0.5)
    start = _tiny_extractor(**params).fit(images)  # built, not trained: the same init
    ex = _tiny_extractor(frozen_stages=2, **params).fit(images, ids)
    same_by_name = _tiny_extractor(frozen_stages="1", **params).fit(images, ids)
    before, after = start.model_.backbone, ex.model_.backbone
    for i in (0, 1):  # the frozen conv and BatchNorm
        for key, value in before[i].state_dict().items():
            assert torch.equal(value, after[i].state_dict()[key]), (i, key)
        assert not any(p.requires_grad for p in after[i].parameters())
    # the trained part did change (its BatchNorm statistics too)
    assert not torch.equal(before[4].running_mean, after[4].running_mean)
    assert all(p.requires_grad for p in after[3].parameters())
    x = torch.randn(3, 3, 32, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(before[:2].eval()(x), after[:2].eval()(x))
    assert same_by_name.model_.frozen == ex.model_.frozen == ["backbone.0", "backbone.1"]
    # frozen stages stay in eval mode when the network trains
    ex.model_.train()
    assert not after[1].training and after[4].training
    ex.model_.eval()
    with pytest.raises(ValueError, match="not a stage"):
        _tiny_extractor(frozen_stages="layer9").fit(images[:2])
    with pytest.raises(ValueError, match="only 5 stages"):
        _tiny_extractor(frozen_stages=6).fit(images[:2])


# ------------------------------------------------------ BatchNorm statistics
def _bn_inputs(layer_input, channels):
    """(channels, n) float64 view of a BatchNorm input (N, C, ...) over all positions."""
    return layer_input.transpose(0, 1).reshape(channels, -1).double().numpy()


def test_recomputed_bn_statistics_are_the_inputs_mean_and_unbiased_variance():
    images, ids, _ = _tiny_images()  # 24 images
    # batches of 7: 7, 7, 7, 3 images, so a per-batch average would differ
    ex = _tiny_extractor(bn_statistics="recomputed", batch_size=7, epochs=1,
                         train_batch_size=8, random_state=0).fit(images, ids)
    first = ex.model_.backbone[1]  # its input is the first conv's output: no BatchNorm before
    x = torch.cat(list(eval_batches(check_images(images), build_transforms((32, 16)),
                                    (32, 16), batch_size=64, device=torch.device("cpu"))))
    with torch.no_grad():
        z = _bn_inputs(ex.model_.backbone[0](x), 8)
    assert_allclose_float32(first.running_mean, z.mean(1))
    assert_allclose_float32(first.running_var, z.var(1, ddof=1))
    # the head's BatchNorm over the pooled features, with the whole backbone
    # frozen (so its input is exactly what transform(output="pool5") returns)
    frozen = _tiny_extractor(bn_statistics="recomputed", frozen_stages=5, embedding_dim=None, epochs=1,
                             train_batch_size=8, random_state=0, output="pool5",
                             normalize=False).fit(images, ids)
    pooled = frozen.transform(images).astype(np.float64)
    head = frozen.model_.head.bn
    assert_allclose_float32(head.running_mean, pooled.mean(0))
    assert_allclose_float32(head.running_var, pooled.var(0, ddof=1))
    # frozen layers keep their statistics (a fresh BatchNorm's: 0 and 1)
    assert torch.equal(frozen.model_.backbone[1].running_mean, torch.zeros(8))
    assert torch.equal(frozen.model_.backbone[1].running_var, torch.ones(8))
    assert not frozen.model_.training and not head.training  # the mode is restored


def test_recomputed_bn_statistics_use_every_image_outliers_included():
    images, ids, _ = _tiny_images()
    y = ids.copy()
    y[:4] = -1  # the first person's images are outliers: not trained on
    ex = _tiny_extractor(bn_statistics="recomputed", epochs=1, train_batch_size=8,
                         random_state=0, frozen_stages=5, embedding_dim=None, output="pool5",
                         normalize=False).fit(images, y)
    pooled = ex.transform(images).astype(np.float64)
    assert_allclose_float32(ex.model_.head.bn.running_mean, pooled.mean(0))
    # without labels the statistics are set from X too (AdaBN), no training;
    # 5 images in batches of 4 would leave a batch of one: it joins the last
    fresh = _tiny_extractor(bn_statistics="recomputed", output="pool5", normalize=False,
                            frozen_stages=5, embedding_dim=None, batch_size=4).fit(images[:5])
    assert fresh.loss_history_ == []
    assert_allclose_float32(fresh.model_.head.bn.running_mean,
                            fresh.transform(images[:5]).astype(np.float64).mean(0))
    # the default keeps torch's running averages of the training batches
    # (the same head over the same frozen pooled features, so only the
    # statistics differ: an average of the last batches of the kept images)
    running = _tiny_extractor(epochs=1, train_batch_size=8, random_state=0,
                              frozen_stages=5, embedding_dim=None).fit(images, y)
    assert not np.allclose(running.model_.head.bn.running_mean.numpy(),
                           pooled.mean(0), rtol=1e-2, atol=1e-3)
    with pytest.raises(ValueError, match="bn_statistics='recomputed' needs at least 2"):
        _tiny_extractor(bn_statistics="recomputed").fit(images[:1])
    with pytest.raises(ValueError, match="bn_statistics"):
        _tiny_extractor(bn_statistics="exact").fit(images)


def test_pretrained_bn_statistics_keep_the_backbones_and_recompute_the_heads():
    images, ids, _ = _tiny_images()
    start = _tiny_extractor().fit(images)  # built, not trained: the same init
    ex = _tiny_extractor(bn_statistics="pretrained", epochs=2, train_batch_size=8,
                         random_state=0, lr=0.5, embedding_dim=None, output="pool5",
                         normalize=False).fit(images, ids)
    for i in (1, 4):  # the backbone's BatchNorm layers: statistics untouched...
        for key in ("running_mean", "running_var"):
            assert torch.equal(getattr(start.model_.backbone[i], key),
                               getattr(ex.model_.backbone[i], key)), (i, key)
    # ... while their scale and the convolutions trained
    assert not torch.equal(start.model_.backbone[1].weight, ex.model_.backbone[1].weight)
    pooled = ex.transform(images).astype(np.float64)
    assert_allclose_float32(ex.model_.head.bn.running_mean, pooled.mean(0))
    assert_allclose_float32(ex.model_.head.bn.running_var, pooled.var(0, ddof=1))
    # training normalised each batch by its own statistics, as "running" does:
    # the same weights, only the running statistics differ
    running = _tiny_extractor(epochs=2, train_batch_size=8, random_state=0, lr=0.5,
                              embedding_dim=None, output="pool5",
                              normalize=False).fit(images, ids)
    assert torch.equal(running.model_.backbone[0].weight, ex.model_.backbone[0].weight)
    assert not torch.equal(running.model_.backbone[1].running_mean,
                           ex.model_.backbone[1].running_mean)


# ------------------------------------------------------------------ cameras
def test_center_per_camera_matches_numpy():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 5))
    cams = rng.choice([3, 7, 9], size=20)
    expected = X.copy()
    for c in np.unique(cams):
        expected[cams == c] -= X[cams == c].mean(axis=0)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(center_per_camera(X, cams), expected, rtol=RTOL, atol=1e-6)


# ---------------------------------------------------- Jaccard and DBSCAN eps
def _loop_jaccard(X, k1, k2):
    """The Jaccard term of the authors' re-ranking code, one sample at a time."""
    full = ((X[:, None] - X[None]) ** 2).sum(-1)
    dist = (full / full.max(axis=0)).T
    n = len(dist)
    V = k_reciprocal_weights(dist, k1, k2)
    return np.array([[1 - np.minimum(V[i], V[j]).sum() / np.maximum(V[i], V[j]).sum()
                      for j in range(n)] for i in range(n)])


@pytest.mark.parametrize("k1, k2", [(5, 3), (8, 1), (30, 6)])
def test_jaccard_distance_matches_the_published_algorithm(k1, k2):
    X = np.random.default_rng(k1).normal(size=(30, 4))
    np.testing.assert_allclose(jaccard_distance(X, k1=k1, k2=k2), _loop_jaccard(X, k1, k2),
                               atol=1e-12)
    D32 = jaccard_distance(X.astype(np.float32), k1=k1, k2=k2)
    assert D32.dtype == np.float32
    np.testing.assert_allclose(D32, D32.T, atol=1e-6)


@pytest.mark.parametrize("k1, k2", [(5, 3), (8, 1), (30, 6)])
def test_sparse_jaccard_stores_exactly_the_pairs_below_one(k1, k2):
    # the brute-force reference: a pair sharing no neighbour has min-sum 0, so
    # its distance is exactly 1 (the value the sparse matrix leaves out)
    X = np.random.default_rng(k1 + 10).normal(size=(30, 4))
    expected = _loop_jaccard(X, k1, k2)
    S = jaccard_distance(X, k1=k1, k2=k2, sparse=True)
    assert sparse.isspmatrix_csr(S) and S.has_sorted_indices and S.dtype == np.float64
    coo = S.tocoo()
    stored = np.zeros(expected.shape, dtype=bool)
    stored[coo.row, coo.col] = True
    np.testing.assert_array_equal(stored, (expected < 1) | np.eye(30, dtype=bool))
    np.testing.assert_allclose(coo.data, expected[coo.row, coo.col], atol=1e-12)
    assert np.all(expected[~stored] == 1.0)
    assert np.all(S.diagonal() == 0.0)
    S32 = jaccard_distance(X.astype(np.float32), k1=k1, k2=k2, sparse=True)
    assert S32.dtype == np.float32
    dense32 = jaccard_distance(X.astype(np.float32), k1=k1, k2=k2)
    c32 = S32.tocoo()
    # the same float32 sums in the same order; the last step's elementwise
    # kernels may round differently in their vector and scalar parts: one ulp
    # of a value in [0, 1]
    np.testing.assert_allclose(c32.data, dense32[c32.row, c32.col], rtol=0,
                               atol=np.finfo(np.float32).eps)


def test_sparse_jaccard_in_small_row_blocks_matches(monkeypatch):
    # blocks of 7 joined pairs: every block is one row (more pairs than the
    # budget), the path that must still take whole rows
    from sklearn_ecluster.metrics import _jaccard, _rerank

    X = np.random.default_rng(5).normal(size=(30, 4))
    expected = _loop_jaccard(X, 6, 3)
    for module in (_jaccard, _rerank):
        monkeypatch.setattr(module, "rows_per_block", lambda *args, **kwargs: 7)
    coo = jaccard_distance(X, k1=6, k2=3, sparse=True).tocoo()
    assert coo.nnz == int(((expected < 1) | np.eye(30, dtype=bool)).sum())
    np.testing.assert_allclose(coo.data, expected[coo.row, coo.col], atol=1e-12)


def test_eps_and_dbscan_on_the_sparse_jaccard_equal_the_dense():
    rng = np.random.default_rng(3)
    X = np.repeat(rng.normal(size=(12, 8)) * 3, 6, axis=0) + 0.3 * rng.normal(size=(72, 8))
    D = jaccard_distance(X, k1=8, k2=3)
    S = jaccard_distance(X, k1=8, k2=3, sparse=True)
    assert S.nnz < D.size  # some pairs share no neighbour
    for rho in (1e-3, 0.05, 0.9):  # the last needs pairs that are not stored (at 1)
        assert eps_from_distances(S, rho) == pytest.approx(eps_from_distances(D, rho),
                                                           rel=1e-12)
    dense = AutoEpsDBSCAN(rho=0.05, min_samples=3).fit(D)
    sparse_fit = AutoEpsDBSCAN(rho=0.05, min_samples=3).fit(S)
    # the same values, summed in another order for the mean
    assert sparse_fit.eps_ == pytest.approx(dense.eps_, rel=1e-12)
    np.testing.assert_array_equal(sparse_fit.labels_, dense.labels_)
    assert dense.n_clusters_ >= 2
    reference = DBSCAN(eps=dense.eps_, min_samples=3, metric="precomputed").fit(S)
    np.testing.assert_array_equal(reference.labels_, dense.labels_)
    with pytest.raises(ValueError, match="eps=1 >= 1 with a sparse"):
        AutoEpsDBSCAN(eps=1.0, min_samples=3).fit(S)


def test_sparse_eps_and_radius_graph_by_small_row_blocks_match(monkeypatch):
    import functools

    from sklearn_ecluster.self_training import _dbscan

    rng = np.random.default_rng(4)
    X = np.repeat(rng.normal(size=(10, 6)) * 3, 5, axis=0) + 0.3 * rng.normal(size=(50, 6))
    S = jaccard_distance(X, k1=6, k2=3, sparse=True)
    whole_eps = eps_from_distances(S, 0.05)
    whole = _dbscan._radius_graph(S, whole_eps)
    original = _dbscan.csr_row_blocks
    monkeypatch.setattr(_dbscan, "csr_row_blocks",
                        functools.partial(original, max_entries=7))  # a row or two a block
    assert eps_from_distances(S, 0.05) == whole_eps
    blocked = _dbscan._radius_graph(S, whole_eps)
    assert (blocked != whole).nnz == 0 and blocked.nnz == whole.nnz
    dense = jaccard_distance(X, k1=6, k2=3)
    np.testing.assert_array_equal(blocked.toarray() > 0, (dense <= whole_eps) & (dense > 0))


def test_the_loop_gives_dbscan_the_sparse_jaccard_and_others_the_dense():
    from sklearn_ecluster.self_training._loop import _takes_sparse_distances

    assert _takes_sparse_distances(AutoEpsDBSCAN())
    assert _takes_sparse_distances(DBSCAN(eps=0.6, metric="precomputed"))
    assert not _takes_sparse_distances(DBSCAN(eps=1.5, metric="precomputed"))
    assert not _takes_sparse_distances(AutoEpsDBSCAN(eps=1.2))
    assert not _takes_sparse_distances(EnergyAgglomerative(metric="precomputed"))


def test_eps_from_distances_and_dbscan_match_brute_force():
    X = np.random.default_rng(0).normal(size=(40, 3))
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    upper = np.sort(D[np.triu_indices(40, k=1)])
    t = round(0.05 * 40 * 39 / 2)
    assert eps_from_distances(D, rho=0.05) == pytest.approx(upper[:t].mean(), rel=1e-12)
    model = AutoEpsDBSCAN(rho=0.05, min_samples=3).fit(D)
    reference = DBSCAN(eps=upper[:t].mean(), min_samples=3, metric="precomputed").fit(D)
    np.testing.assert_array_equal(model.labels_, reference.labels_)
    assert model.eps_ == pytest.approx(upper[:t].mean())


# --------------------------------------------------------------- the loop
def _pretrained_features(extractor, images, seed=0, n_rounds=1):
    """The features the loop's round 0 clusters: its seed, the network built."""
    round_seed = int(np.random.RandomState(seed).randint(np.iinfo(np.int32).max,
                                                         size=n_rounds)[0])
    return clone(extractor).set_params(random_state=round_seed).fit(images).transform(images)


def test_init_cluster_with_jaccard_dbscan_and_dropped_outliers():
    images, ids, _ = _tiny_images()
    ex = _tiny_extractor(epochs=1, train_batch_size=8)
    D = jaccard_distance(_pretrained_features(ex, images))
    # a radius that gives at least 2 clusters on these features (set before the loop)
    for q in (0.05, 0.1, 0.2, 0.3, 0.5):
        eps = float(np.quantile(D[np.triu_indices(len(D), k=1)], q))
        if DBSCAN(eps=eps, min_samples=3, metric="precomputed").fit(D).labels_.max() >= 1:
            break
    clusterer = DBSCAN(eps=eps, min_samples=3, metric="precomputed")
    loop = SelfTrainingReID(ex, clusterer, init="cluster", label_update="recluster",
                            outliers="drop", cluster_distance="jaccard", n_rounds=1,
                            random_state=0).fit(images, ids)
    expected = clusterer.fit(D).labels_
    kept = expected >= 0
    assert kept.sum() >= 2
    np.testing.assert_array_equal(loop.labels_ >= 0, kept)
    np.testing.assert_array_equal(
        loop.labels_[kept], np.unique(expected[kept], return_inverse=True)[1])
    assert loop.history_[0]["n_outliers"] == int((~kept).sum())
    assert loop.history_[0]["n_clusters"] == len(set(expected[kept]))


def test_camera_aware_clusters_centred_features_and_evaluates_centred():
    images, ids, cams = _tiny_images()
    ex = _tiny_extractor(epochs=1, train_batch_size=8)
    centred = center_per_camera(_pretrained_features(ex, images), cams)
    clusterer = EnergyAgglomerative(n_clusters=5, merge_percent=None, device="cpu")
    q, g = np.arange(0, 24, 2), np.arange(1, 24, 2)
    eval_set = (images[q], ids[q], cams[q], images[g], ids[g], cams[g])
    loop = SelfTrainingReID(ex, clusterer, init="cluster", camera_aware=True,
                            n_rounds=1, selection="last", random_state=0)
    loop.fit(images, ids, camids=cams, eval_set=eval_set)
    expected = clone(clusterer).fit(centred).labels_
    np.testing.assert_array_equal(loop.labels_, expected)
    both = center_per_camera(
        np.concatenate([loop.feature_extractor_.transform(images[q]),
                        loop.feature_extractor_.transform(images[g])]),
        np.concatenate([cams[q], cams[g]]))
    res = evaluate_features(both[:12], both[12:], ids[q], ids[g], cams[q], cams[g],
                            device="cpu", max_rank=12)
    assert loop.history_[0]["mAP"] == pytest.approx(float(res["mAP"]), rel=1e-6)
    with pytest.raises(ValueError, match="camera ids"):
        clone(loop).fit(images)


class _Recording(ClusterMixin, BaseEstimator):
    """KMeans that records what each fit got (the loop clones it: a class-level log)."""

    log = []

    def fit(self, X, init_labels=None):
        _Recording.log.append((np.asarray(X).shape, init_labels is None))
        self.labels_ = KMeans(3, n_init=1, random_state=0).fit(X).labels_
        return self


def test_recluster_clusters_afresh_every_round():
    images, ids, _ = _tiny_images()
    _Recording.log.clear()
    loop = SelfTrainingReID(_tiny_extractor(epochs=1, train_batch_size=8), _Recording(),
                            label_update="recluster", n_rounds=3, random_state=0)
    loop.fit(images, ids)
    assert [h["n_clusters"] for h in loop.history_] == [24, 3, 3]
    assert _Recording.log == [((24, 8), True), ((24, 8), True)]  # no init_labels, all features
    with pytest.raises(ValueError, match="needs n_rounds"):
        clone(loop).set_params(n_rounds=None).fit(images)
    with pytest.raises(ValueError, match="metric='precomputed'"):
        clone(loop).set_params(cluster_distance="jaccard").fit(images)


def test_defaults_are_the_papers_loop():
    loop = SelfTrainingReID()
    assert (loop.init, loop.label_update, loop.outliers, loop.cluster_distance,
            loop.camera_aware) == ("singletons", "merge", "keep", "euclidean", False)
    ex = ReIDFeatureExtractor()
    assert (ex.loss, ex.sampler, ex.optimizer, ex.frozen_stages) == (
        "memory_softmax", "random", "sgd", None)


# ----------------------------------------------------------------- recipes
def _small(loop):
    """A contrastive recipe cut to tiny data."""
    loop.set_params(feature_extractor__train_batch_size=8,
                    feature_extractor__num_instances=2,
                    feature_extractor__iters_per_epoch=2)
    if isinstance(loop.clusterer, AutoEpsDBSCAN):
        loop.set_params(clusterer__min_samples=2, clusterer__rho=0.05)
    elif isinstance(loop.clusterer, CrossCameraAssociation):
        if loop.clusterer.clusterer is not None:
            loop.set_params(clusterer__clusterer__min_samples=2,
                            clusterer__clusterer__rho=0.05)
    else:
        loop.set_params(clusterer__device="cpu")
    return loop


@pytest.mark.parametrize("name", RECIPES)
def test_recipes_construct_and_run(name):
    from sklearn_ecluster.cluster import make_clusterer

    images, ids, cams = _tiny_images()
    ex = _tiny_extractor(epochs=1, train_batch_size=8)
    loop = make_recipe(name, ex, n_rounds=2, random_state=0)
    if name in ("ecluster", "buc", "dbc"):
        assert loop.clusterer.get_params() == make_clusterer(name).get_params()
        assert loop.feature_extractor is ex and loop.label_update == "merge"
        loop.set_params(clusterer__device="cpu", merge_percent=0.25)
    else:
        fe = loop.feature_extractor
        assert (fe.loss, fe.sampler, fe.optimizer, fe.lr, fe.temperature,
                fe.memory_momentum) == ("cluster_contrast", "pk", "adam", 3.5e-4, 0.05, 0.1)
        assert (loop.init, loop.label_update, loop.outliers) == ("cluster", "recluster",
                                                                "drop")
        assert ex.loss == "memory_softmax"  # the user's extractor is not changed
        _small(loop)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a tiny set may stop early
        loop.fit(images, ids, camids=cams)
    assert 1 <= loop.n_iter_ <= 2
    assert loop.transform(images).shape == (24, 8)


def test_contrastive_dbscan_defaults_to_jaccard_and_energy_to_euclidean():
    assert make_recipe("contrastive_dbscan").clusterer.metric == "precomputed"
    energy = make_recipe("contrastive_energy")
    assert energy.cluster_distance == "euclidean" and energy.clusterer.n_clusters is None
    assert make_recipe("contrastive_dbscan", cluster_distance="euclidean").clusterer.metric \
        == "euclidean"
    pairs = make_recipe("contrastive_camera_pairs")
    assert pairs.camera_aware and pairs.cluster_distance == "euclidean"
    assert isinstance(pairs.clusterer, CrossCameraAssociation)
    assert pairs.clusterer.clusterer is None and pairs.clusterer.metric == "euclidean"
    assert make_recipe("contrastive_camera_pairs",
                       cluster_distance="jaccard").clusterer.metric == "precomputed"
    with pytest.raises(ValueError, match="name"):
        make_recipe("spcl")


# --------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    from sklearn_ecluster.datasets import make_synthetic_reid

    return make_synthetic_reid(tmp_path_factory.mktemp("data"), n_identities=8,
                               images_per_identity=(4, 6), image_size=(32, 16),
                               random_state=0)


TINY = ["--backbone", "resnet18", "--image-size", "32", "16", "--embedding-dim", "16",
        "--device", "cpu", "--eval-batch-size", "32"]


@pytest.mark.parametrize("recipe", ["contrastive_energy", "buc", "contrastive_camera",
                                    "contrastive_camera_pairs"])
def test_train_recipe_from_the_command_line(recipe, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    # the camera recipes are camera-aware by themselves
    camera = [] if recipe.startswith("contrastive_camera") else ["--camera-aware"]
    argv = ["train", str(tiny_dataset), "--recipe", recipe, "--rounds", "2",
            "--output-dir", str(out), "--frozen-stages", "layer3", *camera, *TINY]
    if recipe.startswith("contrastive_camera"):  # the PRID 450S benchmark's choice
        argv += ["--bn-statistics", "pretrained", "--random-erasing", "0"]
    if recipe == "buc":
        argv += ["--epochs", "1", "--merge-percent", "0.2", "--batch-size", "8"]
    else:
        argv += ["--recipe-batch-size", "8", "--num-instances", "2",
                 "--iters-per-epoch", "2"]
    code = main(argv)
    assert code == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert f"({'recipe' if recipe != 'buc' else 'method'} {recipe})" in text
    history = json.loads((out / "history.json").read_text())
    assert history[0]["round"] == 0 and "mAP" in history[0]
    assert (out / "labels.npy").exists()


def test_train_recipe_flags_reach_the_extractor(monkeypatch, tiny_dataset, tmp_path):
    from sklearn_ecluster import cli

    seen = {}

    def stop(loop, dataset, args):
        seen.update(loop.feature_extractor.get_params(deep=False))
        return 0

    monkeypatch.setattr(cli, "_train_and_report", stop)
    assert main(["train", str(tiny_dataset), "--recipe", "contrastive_camera_pairs",
                 "--random-erasing", "0.25", "--iters-per-epoch", "7",
                 "--output-dir", str(tmp_path / "r"), *TINY]) == 0
    assert (seen["random_erasing"], seen["iters_per_epoch"]) == (0.25, 7)
    assert seen["loss"] == "cluster_contrast"


@pytest.mark.parametrize("value", ["1.5", "-0.1"])
def test_train_bad_random_erasing_exits_2(value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "x", "--recipe", "contrastive_dbscan", "--random-erasing", value])
    assert exc.value.code == 2
    assert f"must be in [0, 1], got {value}" in capsys.readouterr().err


def test_train_recipe_bad_stage_exits_2(tiny_dataset, tmp_path, capsys):
    code = main(["train", str(tiny_dataset), "--recipe", "ecluster", "--frozen-stages",
                 "layer9", "--rounds", "1", "--epochs", "1", "--output-dir",
                 str(tmp_path / "x"), *TINY])
    assert code == 2
    assert "layer9" in capsys.readouterr().err


def test_pk_epochs_have_iters_per_epoch_batches_of_p_times_k():
    images, ids, _ = _tiny_images()
    seen = []
    ex = _tiny_extractor(sampler="pk", train_batch_size=6, num_instances=2,
                         iters_per_epoch=3, epochs=2, random_state=0)
    ex.backbone.register_forward_hook(
        lambda module, args, out: seen.append(len(args[0])) if module.training else None)
    ex.fit(images, ids)
    assert seen == [6] * 6  # 2 epochs x 3 batches of 3 ids x 2 images


def test_adam_optimizer_leaves_frozen_parameters_out():
    from sklearn_ecluster.feature_extraction._training import make_optimizer

    images, ids, _ = _tiny_images()
    ex = _tiny_extractor(frozen_stages=2).fit(images[:2])
    opt = make_optimizer(ex.model_, lr=3.5e-4, backbone_lr_mult=1.0, momentum=0.9,
                         weight_decay=5e-4, kind="adam")
    assert isinstance(opt, torch.optim.Adam)
    trained = {id(p) for g in opt.param_groups for p in g["params"]}
    frozen = {id(p) for i in (0, 1) for p in ex.model_.backbone[i].parameters()}
    assert not trained & frozen
    assert trained == {id(p) for p in ex.model_.parameters() if p.requires_grad}
    assert all(g["weight_decay"] == 5e-4 for g in opt.param_groups)


def test_jaccard_distance_in_small_blocks_matches(monkeypatch):
    from sklearn_ecluster.metrics import _jaccard, _rerank

    X = np.random.default_rng(5).normal(size=(30, 4))
    expected = _loop_jaccard(X, 6, 3)
    for module in (_jaccard, _rerank):  # blocks of 7 rows, 7 joined pairs
        monkeypatch.setattr(module, "rows_per_block", lambda *args, **kwargs: 7)
    np.testing.assert_allclose(jaccard_distance(X, k1=6, k2=3), expected, atol=1e-12)


def test_jaccard_feature_entries_by_blocks_equal_the_unblocked_ones(monkeypatch):
    # the gathered rows X[i], X[j] of all expanded pairs at once were ~12 N x N
    # buffers at Market size (benchmarks/bench_recluster_scale.py): by blocks now
    from sklearn_ecluster.metrics import _jaccard

    X = torch.as_tensor(np.random.default_rng(6).normal(size=(50, 8)), dtype=torch.float32)
    dist = _jaccard._FeatureDistances(X, 16)
    i, j = torch.randint(0, 50, (500,)), torch.randint(0, 50, (500,))
    before = (X[i] - X[j]).square_().sum(1).div_(dist.row_max[i])
    monkeypatch.setattr(_jaccard, "rows_per_block", lambda *args, **kwargs: 7)
    assert torch.equal(dist.entries(i, j), before)


def test_auto_eps_dbscan_counts_zero_distances_as_neighbours():
    rng = np.random.default_rng(2)
    X = np.repeat(rng.normal(size=(6, 2)) * 5, [3, 3, 2, 2, 1, 1], axis=0)  # duplicates
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    model = AutoEpsDBSCAN(eps=0.5, min_samples=2).fit(D)
    reference = DBSCAN(eps=0.5, min_samples=2, metric="precomputed").fit(D)
    np.testing.assert_array_equal(model.labels_, reference.labels_)
    # each group of duplicates (distance 0) is one cluster
    for group in (slice(0, 3), slice(3, 6), slice(6, 8), slice(8, 10)):
        assert len(set(model.labels_[group])) == 1 and model.labels_[group][0] >= 0


def test_demo_runs_the_contrastive_recipes_as_make_recipe_makes_them():
    from sklearn_ecluster._demo import DEFAULT_DEMO_METHODS, DEMO_METHODS, demo_loop
    from sklearn_ecluster.self_training import AutoEpsDBSCAN

    assert set(DEFAULT_DEMO_METHODS) == {"E-cluster", "BUC", "DBC"}
    for name, recipe in (("contrastive-DBSCAN", "contrastive_dbscan"),
                         ("contrastive-energy", "contrastive_energy")):
        assert DEMO_METHODS[name]["method"] == recipe
        loop = demo_loop(recipe, epochs=6, later_epochs=3, n_rounds=4, random_state=1)
        expected = make_recipe(recipe, camera_aware=True)
        for key in ("label_update", "outliers", "cluster_distance", "camera_aware"):
            assert getattr(loop, key) == getattr(expected, key)
        assert loop.init == "singletons"  # a network from scratch: nothing to cluster
        assert (loop.n_rounds, loop.later_epochs, loop.selection) == (4, 3, "last")
        ex = loop.feature_extractor
        assert (ex.loss, ex.sampler, ex.optimizer, ex.embedding_dim) == (
            "cluster_contrast", "pk", "adam", None)
        assert (ex.train_batch_size, ex.num_instances, ex.epochs) == (32, 4, 6)
    assert isinstance(demo_loop("contrastive_dbscan").clusterer, AutoEpsDBSCAN)


# ------------------------------------------------- cross-camera association
def _brute_nearest(D, cams):
    """nearest[i, c] by a loop over samples and cameras (D: inf where no pair)."""
    cameras = np.unique(cams)
    out = np.full((len(D), len(cameras)), -1)
    for i in range(len(D)):
        for c, cam in enumerate(cameras):
            if cam == cams[i]:
                continue
            cand = [j for j in range(len(D)) if cams[j] == cam and np.isfinite(D[i, j])]
            if cand:
                out[i, c] = min(cand, key=lambda j: (D[i, j], j))
    return out


def _brute_pairs(nearest, cams):
    cameras = list(np.unique(cams))
    return sorted((i, j) for i in range(len(cams)) for j in range(i + 1, len(cams))
                  if cams[i] != cams[j] and nearest[i, cameras.index(cams[j])] == j
                  and nearest[j, cameras.index(cams[i])] == i)


@pytest.mark.parametrize("seed", range(3))
def test_cross_camera_nearest_and_mutual_pairs_match_brute_force(seed):
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40, 3))
    cams = rng.choice([3, 5, 9], size=40)
    D = cdist(X, X)
    expected = _brute_nearest(D, cams)
    for data, metric in ((X, "euclidean"), (D, "precomputed")):
        nearest, cameras = cross_camera_nearest(data, cams, metric=metric)
        np.testing.assert_array_equal(cameras, [3, 5, 9])
        np.testing.assert_array_equal(nearest, expected)
        pairs = mutual_cross_camera_pairs(data, cams, metric=metric)
        assert [tuple(p) for p in pairs] == _brute_pairs(expected, cams)
    # sparse distances: only the stored pairs can be neighbours (ties by index)
    kept = np.triu(rng.random((40, 40)) < 0.2, 1)
    kept = kept | kept.T
    Dr = np.round(D, 1)  # ties
    S = sparse.csr_matrix(np.where(kept, Dr + 1e-300, 0.0))
    S.data -= 1e-300  # stored values as in Dr, explicit zeros kept
    expected = _brute_nearest(np.where(kept, Dr, np.inf), cams)
    np.testing.assert_array_equal(cross_camera_nearest(S, cams, metric="precomputed")[0],
                                  expected)
    assert [tuple(p) for p in mutual_cross_camera_pairs(S, cams, metric="precomputed")] \
        == _brute_pairs(expected, cams)


def test_cross_camera_association_joins_clusters_along_the_pairs():
    # hand-computed: DBSCAN finds {0, 1} (camera 0) and {2, 3} (camera 1);
    # 1 and 2 are each other's nearest in the other camera, so do 4 and 5
    # (DBSCAN noise both), and 6 (camera 0, far) has no mutual partner
    X = np.array([[0.0], [0.05], [1.0], [1.05], [9.0], [9.5], [30.0]])
    cams = np.array([0, 0, 1, 1, 0, 1, 0])
    model = CrossCameraAssociation(DBSCAN(eps=0.1, min_samples=2)).fit(X, camids=cams)
    np.testing.assert_array_equal(model.clusterer_.labels_, [0, 0, 1, 1, -1, -1, -1])
    np.testing.assert_array_equal(model.pairs_, [[1, 2], [4, 5]])
    np.testing.assert_array_equal(model.labels_, [0, 0, 0, 0, 1, 1, -1])
    alone = CrossCameraAssociation().fit(X, camids=cams)  # the pairs only
    np.testing.assert_array_equal(alone.labels_, [-1, 0, 0, -1, 1, 1, -1])
    with pytest.raises(ValueError, match="camids"):
        CrossCameraAssociation().fit(X)
    with pytest.raises(ValueError, match="one camera id"):
        CrossCameraAssociation().fit(X, camids=cams[:3])
    lists = CrossCameraAssociation().fit(X.tolist(), camids=cams.tolist())  # array-likes
    np.testing.assert_array_equal(lists.labels_, alone.labels_)
    with pytest.raises(ValueError, match="metric"):
        CrossCameraAssociation(metric="cosine").fit(X, camids=cams)


def test_the_loop_gives_the_association_the_camera_ids():
    images, ids, cams = _tiny_images()
    ex = _tiny_extractor(epochs=1, train_batch_size=8)
    centred = center_per_camera(_pretrained_features(ex, images), cams)
    loop = SelfTrainingReID(ex, CrossCameraAssociation(), init="cluster",
                            label_update="recluster", outliers="drop", camera_aware=True,
                            n_rounds=1, selection="last", random_state=0)
    loop.fit(images, ids, camids=cams)
    expected = CrossCameraAssociation().fit(centred, camids=cams).labels_
    np.testing.assert_array_equal(loop.labels_, expected)
    with pytest.raises(ValueError, match="camera_aware=True"):
        clone(loop).set_params(camera_aware=False).fit(images, camids=cams)
    jac = make_recipe("contrastive_camera")
    assert jac.camera_aware and isinstance(jac.clusterer, CrossCameraAssociation)
    assert jac.clusterer.metric == jac.clusterer.clusterer.metric == "precomputed"
    from sklearn_ecluster.self_training._loop import _takes_sparse_distances

    assert _takes_sparse_distances(jac.clusterer)
    assert not _takes_sparse_distances(CrossCameraAssociation(metric="precomputed"))
