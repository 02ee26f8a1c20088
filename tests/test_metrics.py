"""Re-ID metrics: the Market-1501 protocol, distances and k-reciprocal re-ranking.

Expected values come from hand computations (written next to each check),
from scikit-learn / SciPy, or from deliberately simple per-query loop
implementations written below, never from the package itself.
"""

import doctest
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from _rerank_reference import k_reciprocal_weights
from scipy.spatial.distance import cdist
from sklearn import config_context
from sklearn.metrics import average_precision_score

from sklearn_ecluster.metrics import (
    cmc_curve,
    evaluate_features,
    evaluate_reid,
    k_reciprocal_rerank,
    mean_average_precision_score,
    mean_inp_score,
    rank_k_score,
    reid_distances,
)

# --------------------------------------------------------------------------
# Independent references
# --------------------------------------------------------------------------


def loop_protocol(distmat, q_pids, g_pids, q_camids, g_camids, max_rank):
    """Per-query loop, read off SPEC section 8 (torchreid + fast-reid's mINP)."""
    distmat = np.asarray(distmat)
    cmcs, aps, inps = [], [], []
    for q in range(distmat.shape[0]):
        order = np.argsort(distmat[q], kind="stable")
        same_pid = g_pids[order] == q_pids[q]
        junk = same_pid & (g_camids[order] == q_camids[q])
        matches = same_pid[~junk].astype(int)
        if matches.sum() == 0:
            continue
        cmc = np.minimum(np.cumsum(matches), 1)[:max_rank]
        cmc = np.pad(cmc, (0, max_rank - cmc.size), constant_values=1)
        precision_at = [matches[: r + 1].sum() / (r + 1) for r in range(matches.size)]
        ap = sum(p for p, m in zip(precision_at, matches) if m) / matches.sum()
        last = max(r for r in range(matches.size) if matches[r]) + 1
        cmcs.append(cmc)
        aps.append(ap)
        inps.append(matches.sum() / last)
    return np.mean(cmcs, axis=0), np.mean(aps), np.mean(inps), len(aps)


def loop_rerank(q_g, q_q, g_g, k1, k2, lambda_value):
    """k-reciprocal re-ranking, one sample at a time, as the published code.

    Zhong et al., CVPR 2017; github.com/zhunzhong07/person-re-ranking. Only
    the argsort is made stable (ties by index), as the package documents.
    """
    nq = q_g.shape[0]
    full = np.block([[q_q, q_g], [q_g.T, g_g]]).astype(np.float64) ** 2
    dist = (full / full.max(axis=0)).T
    n = dist.shape[0]
    V = k_reciprocal_weights(dist, k1, k2)
    out = np.zeros((nq, n - nq))
    for i in range(nq):
        for j in range(nq, n):
            s_min = np.minimum(V[i], V[j]).sum()
            s_max = np.maximum(V[i], V[j]).sum()
            jaccard = 1 - s_min / s_max
            out[i, j - nq] = (1 - lambda_value) * jaccard + lambda_value * dist[i, j]
    return out


def random_reid(seed, n_query=40, n_gallery=120, n_ids=10, n_cams=3, ties=False):
    """Labels with distractors (pid 0, gallery only) and same-camera items."""
    rng = np.random.default_rng(seed)
    q_pids = rng.integers(1, n_ids + 1, n_query)
    g_pids = rng.integers(0, n_ids + 1, n_gallery)  # 0: distractors
    q_camids = rng.integers(0, n_cams, n_query)
    g_camids = rng.integers(0, n_cams, n_gallery)
    distmat = rng.random((n_query, n_gallery))
    if ties:
        distmat = np.round(distmat * 4) / 4  # five distinct values
    return distmat, q_pids, g_pids, q_camids, g_camids


# --------------------------------------------------------------------------
# The protocol on hand-worked cases
# --------------------------------------------------------------------------


def test_same_camera_items_are_removed():
    # Gallery order by distance: g1 (pid 1, cam 0: junk for a cam-0 query),
    # g2 (pid 2), g0 (pid 1, cam 1), g3 (pid 1, cam 2).
    distmat = [[0.3, 0.1, 0.2, 0.4]]
    g_pids, g_camids = [1, 1, 2, 1], [1, 0, 1, 2]
    res = evaluate_reid(distmat, [1], g_pids, [0], g_camids, max_rank=3)
    # Without g1: g2 (miss), g0 (hit, rank 2), g3 (hit, rank 3).
    assert res["rank1"] == 0.0
    np.testing.assert_array_equal(res["cmc"], [0.0, 1.0, 1.0])
    assert res["mAP"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert res["mINP"] == pytest.approx(2 / 3)
    assert res["n_valid_queries"] == 1


def test_query_without_positive_is_skipped():
    distmat = [[0.1, 0.2, 0.3],
               [0.3, 0.1, 0.2],  # pid 2: its only match is junk (same cam)
               [0.9, 0.8, 0.7]]  # pid 3: not in the gallery at all
    g_pids, g_camids = [1, 2, 1], [1, 0, 2]
    res = evaluate_reid(distmat, [1, 2, 3], g_pids, [0, 0, 0], g_camids, max_rank=3)
    assert res["n_valid_queries"] == 1
    # Query 0 alone: hits at ranks 1 and 3 (g1 is pid 2, a miss for it).
    assert res["mAP"] == pytest.approx((1 + 2 / 3) / 2)
    assert res["mINP"] == pytest.approx(2 / 3)
    np.testing.assert_array_equal(res["cmc"], [1.0, 1.0, 1.0])


def test_ties_are_broken_by_gallery_index():
    # All distances equal: the ranking is the gallery order.
    distmat = [[0.5, 0.5, 0.5, 0.5],
               [0.5, 0.5, 0.5, 0.5]]
    g_pids, g_camids = [2, 1, 2, 1], [1, 1, 1, 1]
    q_pids, q_camids = [1, 2], [0, 0]
    res = evaluate_reid(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=4)
    # Query pid 1: hits at ranks 2 and 4. Query pid 2: hits at ranks 1 and 3.
    ap = [(1 / 2 + 2 / 4) / 2, (1 / 1 + 2 / 3) / 2]
    assert res["mAP"] == pytest.approx(np.mean(ap))
    assert res["mINP"] == pytest.approx(np.mean([2 / 4, 2 / 3]))
    np.testing.assert_array_equal(res["cmc"], [0.5, 1.0, 1.0, 1.0])


def test_partial_ties_with_a_positive():
    # g0 and g2 tie at 0.2; g2 is the positive, g0 has the lower index.
    distmat = [[0.2, 0.1, 0.2, 0.2, 0.3]]
    g_pids, g_camids = [5, 6, 1, 1, 7], [0, 0, 1, 1, 0]
    # Order: g1 (0.1), g0, g2, g3 (index order at 0.2), g4: hits at 3 and 4.
    assert mean_average_precision_score(distmat, [1], g_pids, [0], g_camids) == (
        pytest.approx((1 / 3 + 2 / 4) / 2))
    assert mean_inp_score(distmat, [1], g_pids, [0], g_camids) == pytest.approx(2 / 4)
    assert rank_k_score(distmat, [1], g_pids, [0], g_camids, k=2) == 0.0
    assert rank_k_score(distmat, [1], g_pids, [0], g_camids, k=3) == 1.0


def test_minp_by_hand():
    # Query 0 (pid 1, cam 0): order g0 (hit), g1, g2 (hit), g3, g4 (hit):
    #   INP = 3 / 5. Query 1 (pid 2, cam 1): g3 is junk (cam 1); order
    #   g1 (hit), g4 (miss), g2 (miss), g0 (miss): INP = 1 / 1.
    distmat = [[0.1, 0.2, 0.3, 0.4, 0.5],
               [0.9, 0.1, 0.5, 0.05, 0.3]]
    g_pids, g_camids = [1, 2, 1, 2, 1], [1, 0, 2, 1, 2]
    score = mean_inp_score(distmat, [1, 2], g_pids, [0, 1], g_camids)
    assert score == pytest.approx((3 / 5 + 1) / 2)


def test_cmc_monotone_and_ends_at_one():
    distmat, q_pids, g_pids, q_camids, g_camids = random_reid(0, n_gallery=30)
    with pytest.warns(UserWarning, match="only 30 items, fewer than max_rank=50"):
        cmc = cmc_curve(distmat, q_pids, g_pids, q_camids, g_camids)
    assert cmc.shape == (30,)
    assert np.all(np.diff(cmc) >= 0)
    assert cmc[-1] == 1.0
    assert 0 < cmc[0] < 1


def test_rank_k_is_the_cmc_entry():
    distmat, q_pids, g_pids, q_camids, g_camids = random_reid(1)
    cmc = cmc_curve(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=20)
    for k in (1, 5, 20):
        assert rank_k_score(distmat, q_pids, g_pids, q_camids, g_camids, k=k) == (
            cmc[k - 1])


def test_ap_matches_sklearn_average_precision():
    rng = np.random.default_rng(3)
    distmat, q_pids, g_pids, q_camids, g_camids = random_reid(3)  # no ties
    for q in rng.choice(distmat.shape[0], size=8, replace=False):
        keep = ~((g_pids == q_pids[q]) & (g_camids == q_camids[q]))
        y_true = g_pids[keep] == q_pids[q]
        if not y_true.any():
            continue
        expected = average_precision_score(y_true, -distmat[q, keep])
        got = mean_average_precision_score(
            distmat[q:q + 1], q_pids[q:q + 1], g_pids, q_camids[q:q + 1], g_camids)
        assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_agrees_with_a_per_query_loop(seed, ties):
    data = random_reid(seed, n_query=60, n_gallery=150, ties=ties)
    cmc, mAP, mINP, n_valid = loop_protocol(*data, max_rank=20)
    res = evaluate_reid(*data, max_rank=20)
    np.testing.assert_allclose(res["cmc"], cmc, rtol=0, atol=1e-12)
    assert res["mAP"] == pytest.approx(mAP, rel=1e-12)
    assert res["mINP"] == pytest.approx(mINP, rel=1e-12)
    assert res["n_valid_queries"] == n_valid
    assert res["rank1"] == cmc[0] and res["rank10"] == cmc[9]


@pytest.mark.parametrize("working_memory", [0.001, 0.05])
def test_small_blocks_agree_with_the_loop(working_memory):
    # Tiny work budgets force one query per block and chunked comparisons.
    data = random_reid(7, n_query=25, n_gallery=300, n_ids=4, ties=True)
    cmc, mAP, mINP, _ = loop_protocol(*data, max_rank=10)
    with config_context(working_memory=working_memory):
        res = evaluate_reid(*data, max_rank=10)
    np.testing.assert_allclose(res["cmc"], cmc, rtol=0, atol=1e-12)
    assert res["mAP"] == pytest.approx(mAP, rel=1e-12)
    assert res["mINP"] == pytest.approx(mINP, rel=1e-12)


def test_junk_before_and_after_the_last_positive():
    # Order: g0 (junk), g1 (pid 3), g2 (hit), g3 (junk), g4 (hit), g5 (junk),
    # g6 (pid 3). Without the junk: g1, g2 (hit, rank 2), g4 (hit, rank 3),
    # g6. The junk after the last positive changes nothing.
    distmat = [[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]]
    g_pids, g_camids = [1, 3, 1, 1, 1, 1, 3], [0, 1, 1, 0, 2, 0, 1]
    res = evaluate_reid(distmat, [1], g_pids, [0], g_camids, max_rank=4)
    np.testing.assert_array_equal(res["cmc"], [0.0, 1.0, 1.0, 1.0])
    assert res["mAP"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert res["mINP"] == pytest.approx(2 / 3)


def test_constant_and_large_distances():
    data = list(random_reid(8, n_query=10, n_gallery=40))
    # zeros, huge, negative, and a span (max - min) that overflows float64
    for distmat in (np.zeros((10, 40)), data[0] * 1e300, data[0] - 0.5,
                    (2 * data[0] - 1) * 1.7e308):
        data[0] = distmat
        cmc, mAP, mINP, _ = loop_protocol(*data, max_rank=5)
        res = evaluate_reid(*data, max_rank=5)
        np.testing.assert_allclose(res["cmc"], cmc, rtol=0, atol=1e-12)
        assert res["mAP"] == pytest.approx(mAP, rel=1e-12)
        assert res["mINP"] == pytest.approx(mINP, rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_random_problem_agrees_with_the_loop(dtype):
    # Several blocks, many members per query, distractors and junk, quantised
    # distances (ties) in one half.
    data = list(random_reid(12, n_query=300, n_gallery=2000, n_ids=40, n_cams=6))
    data[0][:150] = np.round(data[0][:150] * 50) / 50
    data[0] = data[0].astype(dtype)
    cmc, mAP, mINP, n_valid = loop_protocol(*data, max_rank=50)
    with config_context(working_memory=1):
        res = evaluate_reid(*data)
    np.testing.assert_allclose(res["cmc"], cmc, rtol=0, atol=1e-12)
    assert res["mAP"] == pytest.approx(mAP, rel=1e-12)
    assert res["mINP"] == pytest.approx(mINP, rel=1e-12)
    assert res["n_valid_queries"] == n_valid


@pytest.mark.gpu
def test_cuda_tensor_agrees_with_the_loop():
    data = random_reid(13, n_query=200, n_gallery=900, ties=True)
    cmc, mAP, mINP, _ = loop_protocol(*data, max_rank=50)
    res = evaluate_reid(torch.from_numpy(data[0]).cuda(), *data[1:])
    np.testing.assert_allclose(res["cmc"], cmc, rtol=0, atol=1e-12)
    assert res["mAP"] == pytest.approx(mAP, rel=1e-12)
    assert res["mINP"] == pytest.approx(mINP, rel=1e-12)


def test_user_guide_example_runs():
    # The worked example of docs/user_guide/evaluation.rst, as a doctest.
    path = Path(__file__).resolve().parents[1] / "docs" / "user_guide" / "evaluation.rst"
    if not path.is_file():
        pytest.skip("docs not in this checkout")
    result = doctest.testfile(str(path), module_relative=False,
                              optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 3 and result.failed == 0


def test_inputs_lists_arrays_and_tensors_agree():
    distmat, q_pids, g_pids, q_camids, g_camids = random_reid(4)
    ref = evaluate_reid(distmat, q_pids, g_pids, q_camids, g_camids)
    as_lists = evaluate_reid(distmat.tolist(), q_pids.tolist(), g_pids.tolist(),
                             q_camids.tolist(), g_camids.tolist())
    as_tensors = evaluate_reid(torch.from_numpy(distmat), torch.from_numpy(q_pids),
                               g_pids, torch.from_numpy(q_camids), g_camids)
    float32 = evaluate_reid(distmat.astype(np.float32), q_pids, g_pids, q_camids,
                            g_camids)
    for res in (as_lists, as_tensors, float32):
        assert res["mAP"] == ref["mAP"] and res["mINP"] == ref["mINP"]
        np.testing.assert_array_equal(res["cmc"], ref["cmc"])
    assert set(ref) == {"rank1", "rank5", "rank10", "mAP", "mINP", "cmc",
                        "n_valid_queries"}


def test_read_only_inputs():
    distmat, q_pids, g_pids, q_camids, g_camids = random_reid(5)
    for a in (distmat, q_pids, g_pids):
        a.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns on non-writable arrays
        res = evaluate_reid(distmat, q_pids, g_pids, q_camids, g_camids)
    assert res["mAP"] == pytest.approx(loop_protocol(
        distmat, q_pids, g_pids, q_camids, g_camids, 50)[1], rel=1e-12)


# --------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------

D2 = np.ones((2, 3))
LABELS = ([1, 2], [1, 2, 2], [0, 0], [1, 1, 1])


@pytest.mark.parametrize(
    "args, kwargs, exc, match",
    [
        ((np.ones(3), *LABELS), {}, ValueError, "distmat must be a 2-D array, got shape (3,)"),
        ((np.ones((2, 0)), *LABELS), {}, ValueError, "distmat must not be empty"),
        ((np.array([[1, np.nan, 1], [1, 1, 1]]), *LABELS), {}, ValueError,
         "distmat contains NaN"),
        ((np.array([[1, np.inf, 1], [1, 1, 1]]), *LABELS), {}, ValueError,
         "distmat contains infinity"),
        ((D2.astype(complex), *LABELS), {}, TypeError, "distmat must hold real numbers"),
        ((np.full((2, 3), "a"), *LABELS), {}, TypeError, "distmat must hold real numbers"),
        ((D2, [1, 2, 3], *LABELS[1:]), {}, ValueError,
         "q_pids has 3 entries but distmat (shape (2, 3)) along axis 0 has 2"),
        ((D2, LABELS[0], [1, 2], *LABELS[2:]), {}, ValueError,
         "g_pids has 2 entries but distmat (shape (2, 3)) along axis 1 has 3"),
        ((D2, *LABELS[:3], [[1, 1, 1]]), {}, ValueError, "g_camids must be 1-D"),
        ((D2, ["a", "b"], *LABELS[1:]), {}, TypeError, "q_pids must hold integers"),
        ((D2, [1.0, 2.0], *LABELS[1:]), {}, TypeError,
         "q_pids must hold integers (person or camera ids), got dtype float64"),
        ((D2, *LABELS), {"max_rank": 0}, ValueError,
         "'max_rank' parameter of evaluate_reid must be an int in the range [1, inf). Got 0"),
        ((D2, *LABELS), {"max_rank": 2.0}, TypeError,
         "'max_rank' parameter of evaluate_reid must be an int"),
        ((D2, [3, 4], *LABELS[1:]), {}, ValueError, "No valid query"),
        ((D2, LABELS[0], LABELS[1], [1, 1], LABELS[3]), {}, ValueError,
         "No valid query"),  # every match shares the query's camera
    ],
)
def test_bad_inputs(args, kwargs, exc, match):
    kwargs = {"max_rank": 3, **kwargs}  # the gallery has 3 items
    with pytest.raises(exc, match=re.escape(match)):
        evaluate_reid(*args, **kwargs)


def test_bad_k():
    with pytest.raises(ValueError, match=r"'k' parameter of rank_k_score must be an int .* Got 0"):
        rank_k_score(D2, *LABELS, k=0)
    with pytest.raises(TypeError, match=r"'k' parameter of rank_k_score must be an int .* Got True"):
        rank_k_score(D2, *LABELS, k=True)


def test_bad_features():
    q, g = np.ones((2, 4)), np.ones((3, 5))
    with pytest.raises(ValueError, match=re.escape(
            "query_features has 4 features per row but gallery_features has 5")):
        reid_distances(q, g)
    with pytest.raises(ValueError, match=r"'metric' parameter of reid_distances must be a str among .* Got 'manhattan'"):
        reid_distances(q, q, metric="manhattan")
    with pytest.raises(ValueError, match="query_features contains NaN"):
        reid_distances(np.full((2, 4), np.nan), q)
    with pytest.raises(ValueError, match=re.escape(
            "q_pids has 3 entries but query_features has 2")):
        evaluate_features(q, q, [1, 2, 3], [1, 2], [0, 0], [1, 1])
    with pytest.raises(TypeError, match="'rerank' parameter of evaluate_features must be an instance of 'bool'"):
        evaluate_features(q, q, [1, 2], [1, 2], [0, 0], [1, 1], rerank=1)


# --------------------------------------------------------------------------
# Distances and the features path
# --------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
def test_reid_distances_match_scipy(metric):
    rng = np.random.default_rng(6)
    q, g = rng.normal(size=(7, 5)), rng.normal(size=(11, 5))
    got = reid_distances(q, g, metric=metric, device="cpu")
    assert got.dtype == np.float64 and got.shape == (7, 11)
    np.testing.assert_allclose(got, cdist(q, g, metric), rtol=1e-10, atol=1e-10)
    got32 = reid_distances(q.astype(np.float32), torch.from_numpy(g).float(),
                           metric=metric)
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, cdist(q, g, metric), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_features_path_equals_distmat_path(metric):
    rng = np.random.default_rng(9)
    _, q_pids, g_pids, q_camids, g_camids = random_reid(9, n_query=30, n_gallery=90)
    qf, gf = rng.normal(size=(30, 16)), rng.normal(size=(90, 16))
    res = evaluate_features(qf, gf, q_pids, g_pids, q_camids, g_camids,
                            metric=metric, max_rank=10, device="cpu")
    ref = evaluate_reid(cdist(qf, gf, metric), q_pids, g_pids, q_camids, g_camids,
                        max_rank=10)
    np.testing.assert_allclose(res["cmc"], ref["cmc"], rtol=0, atol=1e-12)
    assert res["mAP"] == pytest.approx(ref["mAP"], rel=1e-12)
    assert res["mINP"] == pytest.approx(ref["mINP"], rel=1e-12)


# --------------------------------------------------------------------------
# k-reciprocal re-ranking
# --------------------------------------------------------------------------


def _rerank_inputs(seed, nq=6, ng=24, d=5):
    rng = np.random.default_rng(seed)
    q, g = rng.normal(size=(nq, d)), rng.normal(size=(ng, d))
    return cdist(q, g), cdist(q, q), cdist(g, g)


@pytest.mark.parametrize(
    "seed, k1, k2, lambda_value",
    [(0, 20, 6, 0.3), (1, 5, 3, 0.3), (2, 6, 1, 0.5), (3, 3, 2, 0.0),
     (4, 4, 2, 1.0), (5, 40, 50, 0.3)],  # k1, k2 larger than the sample count
)
def test_rerank_matches_the_published_algorithm(seed, k1, k2, lambda_value):
    q_g, q_q, g_g = _rerank_inputs(seed)
    got = k_reciprocal_rerank(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=lambda_value)
    expected = loop_rerank(q_g, q_q, g_g, k1, k2, lambda_value)
    assert got.shape == (6, 24)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_rerank_with_ties_matches_the_published_algorithm():
    # Integer distances: many ties, resolved by index in both.
    rng = np.random.default_rng(11)
    pts = rng.integers(0, 3, size=(20, 2)).astype(float)
    d = cdist(pts, pts, "cityblock")
    q_g, q_q, g_g = d[:5, 5:], d[:5, :5], d[5:, 5:]
    got = k_reciprocal_rerank(q_g, q_q, g_g, k1=4, k2=3)
    np.testing.assert_allclose(got, loop_rerank(q_g, q_q, g_g, 4, 3, 0.3),
                               rtol=1e-10, atol=1e-12)


def test_rerank_is_deterministic_and_keeps_dtype():
    q_g, q_q, g_g = _rerank_inputs(7, nq=10, ng=40)
    a = k_reciprocal_rerank(q_g, q_q, g_g, k1=6, k2=3)
    b = k_reciprocal_rerank(q_g, q_q, g_g, k1=6, k2=3)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float64
    f32 = k_reciprocal_rerank(*(torch.from_numpy(x).float() for x in (q_g, q_q, g_g)),
                              k1=6, k2=3)
    assert f32.dtype == np.float32
    np.testing.assert_allclose(f32, a, rtol=1e-4, atol=1e-5)


def test_features_path_with_rerank():
    rng = np.random.default_rng(8)
    qf, gf = rng.normal(size=(12, 5)), rng.normal(size=(30, 5))
    _, q_pids, g_pids, q_camids, g_camids = random_reid(8, n_query=12, n_gallery=30,
                                                        n_ids=4)
    res = evaluate_features(qf, gf, q_pids, g_pids, q_camids, g_camids,
                            rerank=True, max_rank=10, device="cpu")
    distmat = loop_rerank(cdist(qf, gf), cdist(qf, qf), cdist(gf, gf), 20, 6, 0.3)
    ref = evaluate_reid(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=10)
    assert res["mAP"] == pytest.approx(ref["mAP"], rel=1e-10)
    np.testing.assert_allclose(res["cmc"], ref["cmc"], atol=1e-12)


def test_rerank_bad_inputs(monkeypatch):
    q_g, q_q, g_g = _rerank_inputs(0)
    with pytest.raises(ValueError, match=re.escape(
            "g_g_dist must have shape (24, 24) to match q_g_dist of shape (6, 24), "
            "got (6, 6)")):
        k_reciprocal_rerank(q_g, q_q, q_q)
    with pytest.raises(ValueError, match=r"'lambda_value' parameter of k_reciprocal_rerank must be a float in the range \[0.0, 1.0\]"):
        k_reciprocal_rerank(q_g, q_q, g_g, lambda_value=1.5)
    with pytest.raises(ValueError, match=r"'k1' parameter of k_reciprocal_rerank must be an int in the range \[1, inf\)"):
        k_reciprocal_rerank(q_g, q_q, g_g, k1=0)
    with pytest.raises(ValueError, match="q_q_dist contains NaN"):
        k_reciprocal_rerank(q_g, np.full_like(q_q, np.nan), g_g)
    monkeypatch.setattr("sklearn_ecluster.utils._memory.available_memory",
                        lambda device: 1000)
    with pytest.raises(MemoryError, match=re.escape(
            "k_reciprocal_rerank on 6 queries + 24 gallery items needs")):
        k_reciprocal_rerank(q_g, q_q, g_g)
    with pytest.raises(MemoryError, match=re.escape(
            "evaluate_features(rerank=True) on 6 queries + 24 gallery items needs")):
        evaluate_features(q_g, g_g, [1] * 6, [1] * 24, [0] * 6, [1] * 24, rerank=True)
