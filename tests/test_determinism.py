"""Runs that repeat: the same seed, machine and threads give bit-identical results.

Each test runs the same thing twice in one process and compares with
``np.array_equal`` / ``torch.equal`` / ``==``, never with a tolerance: on one
machine and one thread count, float32 kernels sum in the same order every
time. (Across machines only float32 rounding agrees; see
docs/user_guide/reproducibility.rst.) The package promises a local RNG
(STYLE.md): the global NumPy, torch and Python generators are as they were
after every fit.
"""

import os
import random

import numpy as np
import pytest
import torch
from _tolerances import assert_allclose_float32
from torch import nn

from sklearn_ecluster import EnergyAgglomerative, ReIDFeatureExtractor, SelfTrainingReID
from sklearn_ecluster.datasets import make_reid_features
from sklearn_ecluster.utils._determinism import deterministic_algorithms

SIZE = (32, 16)
TIMINGS = ("train_seconds", "extract_seconds", "cluster_seconds", "seconds")


def global_rng_states():
    states = {"numpy": np.random.get_state(),  # noqa: NPY002 (the global state itself)
              "torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def assert_global_rng_unchanged(before):
    after = global_rng_states()
    np_before, np_after = before["numpy"], after["numpy"]
    assert np_before[0] == np_after[0] and np_before[2:] == np_after[2:]
    np.testing.assert_array_equal(np_before[1], np_after[1])
    assert torch.equal(before["torch"], after["torch"])
    assert before["python"] == after["python"]
    for a, b in zip(before.get("cuda", []), after.get("cuda", [])):
        assert torch.equal(a, b)


def assert_same_state_dict(a, b):
    state_a, state_b = a.state_dict(), b.state_dict()
    assert list(state_a) == list(state_b)
    for key, value in state_a.items():
        assert torch.equal(value, state_b[key]), key


def images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(n, *SIZE, 3), dtype=np.uint8)


def tiny_backbone():
    """A conv + BatchNorm backbone with fixed weights (the global RNG is forked)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                             nn.Conv2d(8, 8, 3, stride=2), nn.ReLU())


def extractor(**params):
    # dropout and the training augmentations (crop, flip) both draw random numbers
    params = {"image_size": SIZE, "embedding_dim": 16, "epochs": 2, "batch_size": 8,
              "train_batch_size": 4, "device": "cpu", "random_state": 0, **params}
    return ReIDFeatureExtractor(tiny_backbone(), **params)


# ------------------------------------------------------------------ extractor
@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("deterministic", [False, True])
def test_extractor_fit_and_transform_repeat_bit_for_bit(num_workers, deterministic):
    X, y = images(12, seed=0), np.arange(12) % 3
    before = global_rng_states()
    runs = []
    for _ in range(2):
        model = extractor(num_workers=num_workers, deterministic=deterministic).fit(X, y)
        runs.append((model, model.transform(X)))
        assert_global_rng_unchanged(before)
    (a, features_a), (b, features_b) = runs
    assert len(a.loss_history_) == 2 and a.loss_history_ == b.loss_history_
    assert_same_state_dict(a.model_, b.model_)
    assert np.array_equal(features_a, features_b)
    # the seed matters: another one trains another network
    c = extractor(num_workers=num_workers, deterministic=deterministic,
                  random_state=1).fit(X, y)
    assert c.loss_history_ != a.loss_history_


def test_deterministic_mode_gives_the_same_network_on_the_cpu():
    """On the CPU the deterministic kernels compute the same function."""
    X, y = images(12, seed=0), np.arange(12) % 3
    plain = extractor().fit(X, y)
    strict = extractor(deterministic=True).fit(X, y)
    np.testing.assert_allclose(strict.loss_history_, plain.loss_history_, rtol=1e-4)
    assert_allclose_float32(strict.transform(X), plain.transform(X))


class _FlagRecorder(nn.Module):
    """Wraps a backbone; records torch's determinism flags at each forward."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.seen = []

    def forward(self, x):
        self.seen.append((torch.are_deterministic_algorithms_enabled(),
                          torch.backends.cudnn.deterministic,
                          torch.backends.cudnn.benchmark,
                          os.environ.get("CUBLAS_WORKSPACE_CONFIG")))
        return self.backbone(x)


@pytest.fixture
def caller_settings(monkeypatch):
    """Non-default global settings of the caller, restored after the test."""
    previous = (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.deterministic = False
    yield
    torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous[2:]


def _settings():
    return (torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
            os.environ.get("CUBLAS_WORKSPACE_CONFIG"))


def test_deterministic_sets_the_flags_in_fit_and_transform_and_restores_them(
        caller_settings):
    X, y = images(8, seed=1), np.arange(8) % 2
    before = _settings()
    assert before == (False, False, False, True, None)
    recorder = _FlagRecorder(tiny_backbone())
    model = ReIDFeatureExtractor(recorder, image_size=SIZE, embedding_dim=8, epochs=1,
                                 train_batch_size=4, device="cpu", random_state=0,
                                 deterministic=True).fit(X, y)
    assert _settings() == before
    model.model_.backbone.seen.clear()  # the fitted network holds a copy of recorder
    model.transform(X)
    assert _settings() == before
    seen = model.model_.backbone.seen
    assert seen and set(seen) == {(True, True, False, ":4096:8")}
    # deterministic=False leaves the caller's settings alone, inside too
    model.set_params(deterministic=False)
    seen.clear()
    model.transform(X)
    assert set(seen) == {(False, False, True, None)}


def test_the_context_manager_restores_the_settings_after_an_error(caller_settings,
                                                                  monkeypatch):
    torch.use_deterministic_algorithms(False, warn_only=True)
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # the user's own is kept
    before = _settings()
    with pytest.raises(KeyError):
        with deterministic_algorithms():
            assert _settings() == (True, False, True, False, ":16:8")
            raise KeyError("boom")
    assert _settings() == before
    with deterministic_algorithms(False):
        assert _settings() == before


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_deterministic_must_be_a_bool(value):
    with pytest.raises(ValueError, match="'deterministic' parameter"):
        extractor(deterministic=value).fit(images(4, seed=0))


# ---------------------------------------------------------------- clusterer
@pytest.mark.parametrize("params", [
    {"n_clusters": 6},  # batched merges (the paper's 5 % per step)
    {"n_clusters": 6, "merge_percent": None},  # exact: one merge at a time
    {"merge_percent": None, "weighted": True, "regularizer": None},  # automatic cut
    {"n_clusters": 4, "linkage": "average", "regularizer": "dispersion", "lam": 0.1},
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_energy_agglomerative_fit_repeats_bit_for_bit(params, dtype):
    X, _, _ = make_reid_features(120, 8, 32, random_state=0, dtype=dtype)
    before = global_rng_states()
    a = EnergyAgglomerative(device="cpu", **params).fit(X)
    b = EnergyAgglomerative(device="cpu", **params).fit(X.copy())
    assert_global_rng_unchanged(before)
    for name in ("labels_", "children_", "distances_"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.n_clusters_ == b.n_clusters_ and a.cut_score_ == b.cut_score_
    assert a.history_.keys() == b.history_.keys()
    for key, values in a.history_.items():
        if key == "seconds":  # wall-clock time
            continue
        assert np.array_equal(np.asarray(values), np.asarray(b.history_[key])), key
    # from initial labels too (what the self-training loop does every round)
    init_labels = np.arange(120) // 2
    c = EnergyAgglomerative(device="cpu", **params).fit(X, init_labels=init_labels)
    d = EnergyAgglomerative(device="cpu", **params).fit(X, init_labels=init_labels)
    assert np.array_equal(c.labels_, d.labels_)
    assert np.array_equal(c.distances_, d.distances_)


# ------------------------------------------------------------ the whole loop
def _loop(X, y, eval_set, **params):
    ext = ReIDFeatureExtractor(tiny_backbone(), image_size=SIZE, embedding_dim=8,
                               epochs=2, batch_size=8, train_batch_size=4,
                               device="cpu", **params)
    loop = SelfTrainingReID(ext, EnergyAgglomerative(device="cpu"), merge_percent=0.25,
                            n_rounds=3, later_epochs=1, random_state=7)
    return loop.fit(X, y, eval_set=eval_set)


@pytest.mark.parametrize("deterministic", [False, True])
def test_self_training_run_repeats_bit_for_bit(deterministic):
    X = images(16, seed=2)
    y = np.arange(16) % 4
    eval_set = (list(images(6, seed=3)), np.arange(6) % 3, np.zeros(6, int),
                list(images(9, seed=4)), np.arange(9) % 3, np.ones(9, int))
    before = global_rng_states()
    a = _loop(X, y, eval_set, deterministic=deterministic)
    assert_global_rng_unchanged(before)
    b = _loop(X, y, eval_set, deterministic=deterministic)
    assert_global_rng_unchanged(before)
    assert a.n_iter_ == b.n_iter_ == 3
    assert [h["n_clusters"] for h in a.history_] == [16, 12, 8]
    assert a.best_iteration_ == b.best_iteration_
    assert np.array_equal(a.labels_, b.labels_)
    assert np.array_equal(a.clusterer_.labels_, b.clusterer_.labels_)
    assert np.array_equal(a.clusterer_.distances_, b.clusterer_.distances_)
    for ra, rb in zip(a.history_, b.history_):  # losses, mAP, label scores, ...
        assert ra.keys() == rb.keys()
        assert {k: v for k, v in ra.items() if k not in TIMINGS} == {
            k: v for k, v in rb.items() if k not in TIMINGS}
    assert_same_state_dict(a.feature_extractor_.model_, b.feature_extractor_.model_)
    assert np.array_equal(a.transform(X), b.transform(X))
    assert a.feature_extractor_.loss_history_ == b.feature_extractor_.loss_history_


def test_random_state_none_leaves_the_global_rngs_alone_too():
    """None draws fresh OS entropy (sklearn's check_random_state(None) would
    advance NumPy's global generator)."""
    X = images(8, seed=5)
    before = global_rng_states()
    ext = ReIDFeatureExtractor(tiny_backbone(), image_size=SIZE, embedding_dim=8,
                               epochs=1, train_batch_size=4, device="cpu")
    ext.fit(X, np.arange(8) % 2).transform(X)
    assert_global_rng_unchanged(before)
    loop = SelfTrainingReID(ext, EnergyAgglomerative(device="cpu"), merge_percent=0.25,
                            n_rounds=2).fit(X)
    assert_global_rng_unchanged(before)
    assert loop.n_iter_ == 2


@pytest.mark.gpu
def test_cuda_fit_with_deterministic_true_repeats_bit_for_bit():
    X, y = images(12, seed=0), np.arange(12) % 3
    runs = [extractor(device="cuda", deterministic=True).fit(X, y) for _ in range(2)]
    assert runs[0].loss_history_ == runs[1].loss_history_
    assert_same_state_dict(runs[0].model_, runs[1].model_)
    assert np.array_equal(runs[0].transform(X), runs[1].transform(X))
    assert not torch.are_deterministic_algorithms_enabled()  # restored
