"""SelfTrainingReID: the loop's structure, selection, diagnostics and resumption."""

import itertools
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.cluster import AgglomerativeClustering
from sklearn.utils import Bunch
from torch import nn

from sklearn_ecluster import EnergyAgglomerative, ReIDFeatureExtractor, SelfTrainingReID
from sklearn_ecluster.cluster import make_clusterer
from sklearn_ecluster.self_training import pseudo_label_scores

SIZE = (32, 16)


def _images(n, seed=0, n_ids=4):
    """Images of ``n_ids`` colour-coded identities with noise; ids returned too."""
    rng = np.random.default_rng(seed)
    ids = np.arange(n) % n_ids
    base = rng.integers(0, 256, size=(n_ids, 1, 1, 3))
    noise = rng.normal(0, 40, size=(n, *SIZE, 3))
    return np.clip(base[ids] + noise, 0, 255).astype(np.uint8), ids


def _extractor(**kw):
    with torch.random.fork_rng():  # the same backbone weights in every call
        torch.manual_seed(0)
        tiny = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    params = dict(image_size=SIZE, embedding_dim=8, epochs=1, batch_size=16,
                  device="cpu", random_state=0)
    params.update(kw)
    return ReIDFeatureExtractor(tiny, **params)


def _loop(**kw):
    params = dict(feature_extractor=_extractor(),
                  clusterer=EnergyAgglomerative(device="cpu"),
                  merge_percent=0.25, random_state=0)
    params.update(kw)
    return SelfTrainingReID(**params)


def _eval_set(seed=1):
    q, q_ids = _images(8, seed=seed)
    g, g_ids = _images(12, seed=seed + 1)
    return (list(q), q_ids, np.zeros(8, int), list(g), g_ids, np.ones(12, int))


# ---------------------------------------------------------------- diagnostics
def _brute_force_pair_scores(y, p):
    together = same = both = 0
    for i, j in itertools.combinations(range(len(y)), 2):
        together += p[i] == p[j]
        same += y[i] == y[j]
        both += (p[i] == p[j]) and (y[i] == y[j])
    return both / together if together else None, both / same if same else None


@pytest.mark.parametrize("seed", range(5))
def test_pseudo_label_precision_recall_match_a_loop_over_pairs(seed):
    rng = np.random.default_rng(seed)
    y, p = rng.integers(0, 5, 30), rng.integers(0, 7, 30)
    scores = pseudo_label_scores(y, p)
    precision, recall = _brute_force_pair_scores(y, p)
    assert scores["precision"] == pytest.approx(precision)
    assert scores["recall"] == pytest.approx(recall)


def test_pseudo_label_scores_of_singletons_have_no_precision():
    scores = pseudo_label_scores([0, 0, 1], [0, 1, 2])
    assert scores["precision"] is None and scores["recall"] == 0.0


# ----------------------------------------------------------------- structure
def test_rounds_merge_m_clusters_each_until_fewer_than_m_remain():
    X, _ = _images(16)
    loop = _loop().fit(X)
    assert loop.merges_per_round_ == 4
    assert [h["n_clusters"] for h in loop.history_] == [16, 12, 8, 4]
    assert loop.n_iter_ == 4 and loop.selection_ == "last"
    assert loop.best_iteration_ == 3
    # the selected round trained on 4 clusters; labels_ are those, numbered 0..3
    assert sorted(np.unique(loop.labels_)) == [0, 1, 2, 3]
    assert loop.clusterer_.n_clusters_ == 4
    assert loop.transform(X).shape == (16, 8)
    assert all(h["loss"] is not None and np.isfinite(h["loss"]) for h in loop.history_)


def test_each_round_is_one_batched_step_of_m_merges():
    X, _ = _images(16)
    loop = _loop(n_rounds=2).fit(X)
    # the clusterer of round 0 ran with init_labels = singletons, one step of 4 merges
    assert loop.clusterer_.n_steps_ == 1
    assert loop.clusterer_.children_.shape == (4, 2)


def test_n_rounds_limits_the_loop_and_later_rounds_use_the_later_recipe():
    X, _ = _images(16)
    loop = _loop(n_rounds=2, later_epochs=3, later_lr=0.05).fit(X)
    assert loop.n_iter_ == 2
    ext = loop.feature_extractor_
    assert ext.epochs == 3 and ext.lr == 0.05 and ext.warm_start
    assert len(ext.loss_history_) == 3


def test_sub_estimators_are_cloned_and_nested_params_work():
    extractor, clusterer = _extractor(), EnergyAgglomerative(device="cpu")
    loop = _loop(feature_extractor=extractor, clusterer=clusterer, n_rounds=2)
    loop.set_params(clusterer__lam=0.5, feature_extractor__epochs=2)
    assert loop.get_params()["clusterer__lam"] == 0.5
    X, _ = _images(12)
    loop.fit(X)
    assert not hasattr(extractor, "model_") and not hasattr(clusterer, "labels_")
    assert loop.clusterer_.lam == 0.5
    assert clone(loop).get_params()["feature_extractor__epochs"] == 2


def test_baseline_presets_plug_in():
    X, _ = _images(12)
    for method in ("buc", "dbc"):
        loop = _loop(clusterer=make_clusterer(method, device="cpu"), n_rounds=2).fit(X)
        assert loop.clusterer_.linkage in ("single", "average")
        assert loop.history_[1]["n_clusters"] == 9


def test_labels_y_are_used_only_for_diagnostics():
    X, ids = _images(16)
    with_y = _loop().fit(X, ids)
    without = _loop().fit(X)
    np.testing.assert_array_equal(with_y.labels_, without.labels_)
    np.testing.assert_array_equal(with_y.transform(X), without.transform(X))
    assert all(0.0 <= h["label_nmi"] <= 1.0 for h in with_y.history_)
    # round 0 trains on singletons: no pair joined, recall 0
    assert with_y.history_[0]["label_precision"] is None
    assert with_y.history_[0]["label_recall"] == 0.0
    assert "label_nmi" not in without.history_[0]


def test_diagnostics_describe_the_labels_of_each_round():
    X, ids = _images(16)
    loop = _loop(n_rounds=4).fit(X, ids)
    last = loop.history_[-1]
    precision, recall = _brute_force_pair_scores(ids, loop.labels_)
    assert last["label_precision"] == pytest.approx(precision)
    assert last["label_recall"] == pytest.approx(recall)


# ----------------------------------------------------------------- selection
def test_eval_selection_keeps_the_round_with_the_best_map():
    X, _ = _images(16)
    loop = _loop(selection="eval").fit(X, eval_set=_eval_set())
    maps = [h["mAP"] for h in loop.history_]
    assert loop.best_iteration_ == int(np.argmax(maps))
    assert loop.labels_.max() + 1 == loop.history_[loop.best_iteration_]["n_clusters"]
    # the kept model is that round's: it reproduces that round's mAP
    from sklearn_ecluster.metrics import evaluate_features

    q, qp, qc, g, gp, gc = _eval_set()
    res = evaluate_features(loop.transform(q), loop.transform(g), qp, gp, qc, gc,
                            max_rank=12)
    assert res["mAP"] == pytest.approx(max(maps))
    for h in loop.history_:
        assert {"rank1", "rank5", "rank10", "mAP", "mINP"} <= set(h)


def test_auto_selection_follows_the_eval_set_and_forms_agree():
    X, _ = _images(12)
    q, qp, qc, g, gp, gc = _eval_set()
    bunch = Bunch(query=Bunch(paths=q, pids=qp, camids=qc),
                  gallery=Bunch(images=g, pids=gp, camids=gc))
    a = _loop(n_rounds=2).fit(X, eval_set=(q, qp, qc, g, gp, gc))
    b = _loop(n_rounds=2).fit(X, eval_set=bunch)
    assert a.selection_ == b.selection_ == "eval"
    assert [h["mAP"] for h in a.history_] == [h["mAP"] for h in b.history_]


def test_bad_arguments_give_clear_errors():
    X, _ = _images(12)
    with pytest.raises(ValueError, match="selection='eval' needs an eval_set"):
        _loop(selection="eval").fit(X)
    with pytest.raises(ValueError, match="merge_percent"):
        _loop(merge_percent=1.5).fit(X)
    with pytest.raises(TypeError, match="init_labels"):
        _loop(clusterer=AgglomerativeClustering()).fit(X)
    with pytest.raises(ValueError, match="y has 5 entries but X has 12"):
        _loop().fit(X, np.zeros(5))
    with pytest.raises(TypeError, match="eval_set"):
        _loop().fit(X, eval_set=[1, 2, 3])
    with pytest.raises(ValueError, match="eval_set query pids has 3 entries but the eval_set "
                                         "query part's images has"):
        q, qp, qc, g, gp, gc = _eval_set()
        _loop().fit(X, eval_set=(q, qp[:3], qc, g, gp, gc))


def test_pickle_round_trip_keeps_the_features():
    X, _ = _images(12)
    loop = _loop(n_rounds=2).fit(X)
    again = pickle.loads(pickle.dumps(loop))
    np.testing.assert_array_equal(again.transform(X), loop.transform(X))


# ----------------------------------------------------------- checkpointing
def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    X, _ = _images(12)
    _loop(n_rounds=2, checkpoint_dir=tmp_path).fit(X)
    with pytest.raises(ValueError, match="another run"):
        _loop(n_rounds=2, merge_percent=0.5, checkpoint_dir=tmp_path).fit(X)


def test_a_finished_checkpoint_returns_the_same_result_without_training(
        tmp_path, monkeypatch):
    X, _ = _images(12)
    first = _loop(checkpoint_dir=tmp_path).fit(X)

    def no_training(self, *args, **kwargs):
        raise AssertionError("a finished run must not train again")

    monkeypatch.setattr(ReIDFeatureExtractor, "fit", no_training)
    second = _loop(checkpoint_dir=tmp_path, verbose=0).fit(X)
    np.testing.assert_array_equal(first.labels_, second.labels_)
    assert first.history_ == second.history_


_SCRIPT = textwrap.dedent("""
    import sys, pickle
    import numpy as np, torch
    from torch import nn
    torch.set_num_threads(1)
    from sklearn_ecluster import EnergyAgglomerative, ReIDFeatureExtractor, SelfTrainingReID

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(48, 32, 16, 3), dtype=np.uint8)
    torch.manual_seed(0)  # the same arguments: the same backbone weights
    tiny = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 16, 3), nn.ReLU())
    ext = ReIDFeatureExtractor(tiny, image_size=(32, 16), embedding_dim=16, epochs=3,
                               batch_size=16, device="cpu")
    loop = SelfTrainingReID(ext, EnergyAgglomerative(device="cpu"), merge_percent=0.15,
                            later_epochs=2, random_state=3, checkpoint_dir=sys.argv[1])
    loop.fit(X)
    with open(sys.argv[2], "wb") as fh:
        pickle.dump({"labels": loop.labels_, "features": loop.transform(X),
                     "clusters": [h["n_clusters"] for h in loop.history_],
                     "loss": [h["loss"] for h in loop.history_]}, fh)
""")


def _run(script, *args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, str(script), *map(str, args)], env=env, **kw)


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_same_result(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(_SCRIPT)
    # uninterrupted reference
    assert _run(script, tmp_path / "ref_ckpt", tmp_path / "ref.pkl").wait(300) == 0
    # killed as soon as the first round's checkpoint exists, then restarted
    ckpt = tmp_path / "ckpt"
    proc = _run(script, ckpt, tmp_path / "out.pkl")
    deadline = time.time() + 300
    while not (ckpt / "self_training_checkpoint.joblib").exists():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(60) == -signal.SIGKILL
    assert not (tmp_path / "out.pkl").exists()
    assert _run(script, ckpt, tmp_path / "out.pkl").wait(300) == 0
    with open(tmp_path / "ref.pkl", "rb") as fh:
        ref = pickle.load(fh)
    with open(tmp_path / "out.pkl", "rb") as fh:
        out = pickle.load(fh)
    assert out["clusters"] == ref["clusters"] and len(ref["clusters"]) > 2
    np.testing.assert_array_equal(out["labels"], ref["labels"])
    np.testing.assert_allclose(out["loss"], ref["loss"], rtol=0, atol=0)
    np.testing.assert_array_equal(out["features"], ref["features"])


def test_verbose_prints_one_line_per_round(capsys):
    X, _ = _images(12)
    _loop(n_rounds=3, verbose=1).fit(X)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "[SelfTrainingReID]" in ln]
    assert len(lines) == 3 and lines[0].split()[1:3] == ["round", "0"]


def test_callback_is_called_after_every_round_with_its_labels(tmp_path):
    X, _ = _images(16)
    calls = []

    def callback(loop, record, labels):
        calls.append((loop, record, labels))

    loop = _loop(callback=callback).fit(X)
    assert [record["round"] for _, record, _ in calls] == [0, 1, 2, 3]
    assert all(owner is loop for owner, _, _ in calls)
    assert [record for _, record, _ in calls] == loop.history_
    for _, record, labels in calls:
        assert isinstance(labels, np.ndarray) and labels.dtype.kind == "i"
        assert labels.shape == (16,)
        assert len(np.unique(labels)) == record["n_clusters"]
    np.testing.assert_array_equal(calls[-1][2], loop.labels_)
    # not part of the checkpoint's identity: a run resumes with another callback
    _loop(n_rounds=2, checkpoint_dir=tmp_path).fit(X)
    resumed = []
    _loop(n_rounds=2, checkpoint_dir=tmp_path,
          callback=lambda *args: resumed.append(args)).fit(X)
    assert resumed == []  # both rounds were done: nothing runs again
    with pytest.raises(TypeError, match="callback"):
        _loop(callback="print").fit(X)


def test_the_loop_runs_in_the_graph_mode_with_the_dense_rounds_labels():
    # a complete graph: the graph mode must give each round the dense labels
    # (same features, same merges), so the two loops are the same run
    X, _ = _images(16)
    complete = np.ones((16, 16))
    dense = _loop(n_rounds=3).fit(X)
    graph = _loop(n_rounds=3, clusterer=EnergyAgglomerative(
        device="cpu", connectivity=complete)).fit(X)
    assert graph.clusterer_.engine_ == "graph_batched"
    assert [h["n_clusters"] for h in graph.history_] == [h["n_clusters"] for h in
                                                       dense.history_]
    np.testing.assert_array_equal(graph.labels_, dense.labels_)
    # an int: the kNN graph of each round's features, rebuilt every round
    knn = _loop(n_rounds=2, clusterer=EnergyAgglomerative(device="cpu", connectivity=5))
    assert knn.fit(X).history_[-1]["n_clusters"] == 12
