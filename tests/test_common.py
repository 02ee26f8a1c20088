"""The scikit-learn estimator contract and the usual estimator behaviour."""

import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer, StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_ecluster.cluster import (
    METHOD_PRESETS,
    EnergyAgglomerative,
    make_clusterer,
)

ESTIMATORS = [
    EnergyAgglomerative(device="cpu"),
    make_clusterer("buc", device="cpu"),
    make_clusterer("dbc", device="cpu"),
    EnergyAgglomerative(weighted=True, merge_percent=None, device="cpu"),
    EnergyAgglomerative(merge_schedule="geometric", n_clusters=3, device="cpu"),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=150, n_features=6, centers=5, cluster_std=0.7,
                      random_state=1)
    return X, y


FITTED_PARAMS = [
    {"n_clusters": 5},
    {"merge_percent": None, "weighted": True, "regularizer": None},  # auto cut
    {"linkage": "average", "regularizer": "dispersion", "lam": 0.1, "max_steps": 4},
]


@pytest.mark.parametrize("params", FITTED_PARAMS)
def test_pickle_and_joblib_round_trip(blobs, params, tmp_path):
    X, _ = blobs
    model = EnergyAgglomerative(device="cpu", **params).fit(X)
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    for loaded in (pickle.loads(pickle.dumps(model)), joblib.load(path)):
        assert loaded.get_params() == model.get_params()
        for name in ("labels_", "children_", "distances_"):
            np.testing.assert_array_equal(getattr(loaded, name), getattr(model, name))
        for name in ("n_clusters_", "n_leaves_", "n_steps_", "history_", "cut_score_",
                     "metric_", "device_", "n_features_in_"):
            assert getattr(loaded, name) == getattr(model, name), name
        np.testing.assert_array_equal(loaded.fit(X).labels_, model.labels_)


def test_clone_copies_parameters_not_fit(blobs):
    X, _ = blobs
    model = make_clusterer("dbc", n_clusters=4, merge_schedule="geometric", device="cpu")
    model.fit(X)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "labels_")
    np.testing.assert_array_equal(copy.fit(X).labels_, model.labels_)


def _ari_scorer(estimator, X, y):
    """Cluster the evaluation fold and compare with its known labels."""
    return adjusted_rand_score(y, estimator.fit_predict(X))


def test_grid_search_over_a_pipeline(blobs):
    X, y = blobs
    pipe = make_pipeline(StandardScaler(), Normalizer(), EnergyAgglomerative(device="cpu"))
    grid = GridSearchCV(
        pipe,
        {"energyagglomerative__n_clusters": [2, 5, 9],
         "energyagglomerative__weighted": [False, True]},
        scoring=_ari_scorer,
        cv=KFold(3, shuffle=True, random_state=0),
    )
    grid.fit(X, y)
    assert grid.best_params_["energyagglomerative__n_clusters"] == 5
    assert grid.best_score_ > 0.9
    labels = grid.best_estimator_[-1].labels_
    assert adjusted_rand_score(y, labels) > 0.9
    # fit_predict of the pipeline: the last step's labels on the transformed data
    np.testing.assert_array_equal(grid.best_estimator_.fit_predict(X), labels)


def test_nested_set_params_and_presets():
    pipe = make_pipeline(Normalizer(), make_clusterer("buc", device="cpu"))
    pipe.set_params(energyagglomerative__lam=0.003)
    assert pipe[-1].lam == 0.003
    assert pipe[-1].linkage == "single"
    # the presets are the paper's configurations (SPEC 4)
    assert METHOD_PRESETS["ecluster"] == {"linkage": "energy", "regularizer": "ssd",
                                          "lam": 0.9}
    assert METHOD_PRESETS["buc"]["lam"] == 0.005
    assert METHOD_PRESETS["buc"]["regularizer"] == "size"
    assert METHOD_PRESETS["dbc"]["lam"] == 0.1
    assert METHOD_PRESETS["dbc"]["regularizer"] == "dispersion"
    # defaults of the estimator are the paper's too
    default = EnergyAgglomerative()
    assert (default.linkage, default.regularizer, default.lam, default.weighted,
            default.merge_percent, default.merge_schedule) == (
        "energy", "ssd", 0.9, False, 0.05, "constant")
    # overrides win and the shared preset dictionary is not modified
    model = make_clusterer("dbc", lam=0.5)
    assert model.lam == 0.5 and METHOD_PRESETS["dbc"]["lam"] == 0.1


@pytest.mark.parametrize("params", [
    {},
    {"merge_percent": None, "n_clusters": 3},
    {"linkage": "single", "regularizer": "size", "merge_schedule": "geometric"},
])
def test_fit_leaves_the_global_rng_state_alone(blobs, params):
    X, _ = blobs
    np_before = np.random.get_state()  # noqa: NPY002 (the global state itself)
    torch_before = torch.get_rng_state()
    EnergyAgglomerative(device="cpu", **params).fit(X)
    EnergyAgglomerative(device="cpu", **params).fit(torch.from_numpy(X.astype(np.float32)))
    np_after = np.random.get_state()  # noqa: NPY002
    assert np_before[0] == np_after[0]
    np.testing.assert_array_equal(np_before[1], np_after[1])
    assert np_before[2:] == np_after[2:]
    assert torch.equal(torch_before, torch.get_rng_state())


def test_fit_returns_self_and_a_second_fit_overwrites(blobs):
    X, _ = blobs
    model = EnergyAgglomerative(n_clusters=3, device="cpu")
    assert model.fit(X, init_labels=np.arange(150) // 2) is model
    assert model.n_leaves_ == 75
    model.fit(X[:40, :3])
    assert model.n_leaves_ == 40 and model.n_features_in_ == 3
    assert model.labels_.shape == (40,)
    np.testing.assert_array_equal(model.fit_predict(X[:40, :3]), model.labels_)


def test_verbose_output(blobs, capsys):
    # every line of every engine: tests/test_cluster_engines.py
    X, _ = blobs
    EnergyAgglomerative(n_clusters=3, device="cpu").fit(X)
    assert capsys.readouterr().out == ""
    model = EnergyAgglomerative(n_clusters=3, verbose=1, device="cpu").fit(X)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == model.n_steps_ + 1
    assert all(line.startswith("[EnergyAgglomerative] step ") for line in lines[:-1])
    assert "3 clusters" in lines[-1]
