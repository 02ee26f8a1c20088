"""Speed of the Market-1501 evaluation: vectorised package vs a per-query loop.

Data: synthetic, Market-1501-sized (3,368 queries x 15,913 gallery items,
2048-d L2-normalised float32 features). 750 query identities; the gallery
holds 12,936 images of them and 2,977 distractors (pid 0, pure noise);
cameras 0-5, so some gallery images share the query's person and camera
(junk). Features are an identity centre plus noise, so the rankings are
neither perfect nor random.

Timed, median of ``--repeats`` runs (``time.perf_counter``):

* package: ``evaluate_features`` (features -> report), and its two parts
  ``reid_distances`` and ``evaluate_reid`` (distance matrix -> report);
* baseline: a plain per-query loop of the same protocol in NumPy (stable
  argsort of the row, junk removed, cumulative matches, AP, INP), on the
  same distance matrix. It runs on the first ``--loop-queries`` queries and
  its time is extrapolated linearly to all queries (the loop is linear in
  the number of queries). Its features -> report time adds one NumPy
  distance matrix (a single BLAS product, as a plain implementation would).

The script checks that both give the same mAP, mINP and CMC on the queries
the loop ran on, and prints the machine load, since the timings depend on
other processes. Usage::

    python benchmarks/bench_metrics.py              # Market-1501 size
    python benchmarks/bench_metrics.py --quick      # 1/4 of the queries
    python benchmarks/bench_metrics.py --rerank     # adds k-reciprocal re-ranking
"""

import argparse
import os
import statistics
import time

import numpy as np
import torch

from sklearn_ecluster.metrics import (
    evaluate_features,
    evaluate_reid,
    k_reciprocal_rerank,
    reid_distances,
)
from sklearn_ecluster.utils import self_distances

N_QUERY, N_GALLERY, N_DIST, DIM, N_IDS, N_CAMS = 3368, 15913, 2977, 2048, 750, 6
# Noise around the identity centres: gives rank-1 and mAP of a mid-quality
# model (a clean ranking would favour neither implementation).
NOISE = 3.5


def make_data(n_query, n_gallery, n_distractors, dim, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((N_IDS + 1, dim), dtype=np.float32)
    q_pids = rng.integers(1, N_IDS + 1, n_query)
    g_pids = np.concatenate([rng.integers(1, N_IDS + 1, n_gallery - n_distractors),
                             np.zeros(n_distractors, dtype=np.int64)])
    q_camids = rng.integers(0, N_CAMS, n_query)
    g_camids = rng.integers(0, N_CAMS, n_gallery)

    def features(pids):
        x = centres[pids] + NOISE * rng.standard_normal((pids.size, dim),
                                                        dtype=np.float32)
        x[pids == 0] = rng.standard_normal(((pids == 0).sum(), dim), dtype=np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return features(q_pids), features(g_pids), q_pids, g_pids, q_camids, g_camids


def loop_protocol(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """The protocol one query at a time (NumPy inside the loop)."""
    cmc_sum = np.zeros(max_rank)
    aps, inps = [], []
    for q in range(distmat.shape[0]):
        order = np.argsort(distmat[q], kind="stable")
        keep = ~((g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q]))
        matches = g_pids[order][keep] == q_pids[q]
        if not matches.any():
            continue
        hits = np.cumsum(matches)
        cmc = np.minimum(hits, 1)[:max_rank]
        cmc_sum[:cmc.size] += cmc
        cmc_sum[cmc.size:] += 1
        ranks = np.flatnonzero(matches) + 1
        aps.append(np.mean(hits[ranks - 1] / ranks))
        inps.append(hits[-1] / ranks[-1])
    return {"mAP": np.mean(aps), "mINP": np.mean(inps), "cmc": cmc_sum / len(aps)}


def median_time(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--loop-queries", type=int, default=400,
                        help="queries the loop baseline runs on (extrapolated)")
    parser.add_argument("--quick", action="store_true", help="a quarter of the queries")
    parser.add_argument("--rerank", action="store_true",
                        help="also time k_reciprocal_rerank (needs ~4 GB)")
    args = parser.parse_args()
    n_query = N_QUERY // 4 if args.quick else N_QUERY
    qf, gf, q_pids, g_pids, q_camids, g_camids = make_data(
        n_query, N_GALLERY, N_DIST, DIM)
    labels = (q_pids, g_pids, q_camids, g_camids)
    n_loop = min(args.loop_queries, n_query)
    sub = (q_pids[:n_loop], g_pids, q_camids[:n_loop], g_camids)
    scale = n_query / n_loop

    print(f"data: {n_query} queries x {N_GALLERY} gallery, {DIM}-d float32, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs; load average before: {os.getloadavg()[0]:.2f}")

    # Package.
    t_feat, res = median_time(lambda: evaluate_features(qf, gf, *labels,
                                                        device="cpu"), args.repeats)
    t_dist, distmat = median_time(lambda: reid_distances(qf, gf, device="cpu"),
                                  args.repeats)
    t_eval, _ = median_time(lambda: evaluate_reid(distmat, *labels), args.repeats)

    # Baseline: NumPy distances, then the loop on a subset of the queries.
    def numpy_distances():
        sq = (qf * qf).sum(1)[:, None] - 2 * qf @ gf.T + (gf * gf).sum(1)[None, :]
        return np.sqrt(np.maximum(sq, 0))

    t_np_dist, _ = median_time(numpy_distances, max(1, args.repeats // 2))
    t_loop_sub, ref = median_time(lambda: loop_protocol(distmat[:n_loop], *sub),
                                  max(1, args.repeats // 2))
    t_loop = t_loop_sub * scale

    # Same results on the queries the loop ran on.
    pkg = evaluate_reid(distmat[:n_loop], *sub)
    assert abs(pkg["mAP"] - ref["mAP"]) < 1e-9, (pkg["mAP"], ref["mAP"])
    assert abs(pkg["mINP"] - ref["mINP"]) < 1e-9, (pkg["mINP"], ref["mINP"])
    assert np.allclose(pkg["cmc"], ref["cmc"], rtol=0, atol=1e-12)

    print(f"results: rank-1 {res['rank1']:.4f}, mAP {res['mAP']:.4f}, "
          f"mINP {res['mINP']:.4f}, {res['n_valid_queries']} valid queries; "
          f"the loop agrees on its {n_loop} queries "
          f"(mAP {ref['mAP']:.6f} vs {pkg['mAP']:.6f})")
    print()
    speedup_eval = t_loop / t_eval
    speedup_feat = (t_np_dist + t_loop) / t_feat
    print("| step | per-query loop (s) | package (s) | speed-up | target |")
    print("|---|---:|---:|---:|---|")
    print(f"| `evaluate_reid`: distance matrix -> report (protocol) | {t_loop:.2f}* | "
          f"{t_eval:.3f} | {speedup_eval:.1f}x | >= 20x: "
          f"{'met' if speedup_eval >= 20 else 'MISSED'} |")
    print(f"| `reid_distances`: features -> distance matrix | {t_np_dist:.2f} (NumPy) | "
          f"{t_dist:.3f} | {t_np_dist / t_dist:.1f}x | |")
    print(f"| `evaluate_features`: features -> report | {t_np_dist + t_loop:.2f}* | "
          f"{t_feat:.3f} | {speedup_feat:.1f}x | <= 3 s: "
          f"{'met' if t_feat <= 3 else 'MISSED'} |")
    print()
    print(f"* the loop ran on {n_loop} of the {n_query} queries ({t_loop_sub:.2f} s), "
          f"extrapolated linearly (x {scale:.2f}). Medians of {args.repeats} runs "
          f"for the package, {max(1, args.repeats // 2)} for the baseline. "
          f"Load average after: {os.getloadavg()[0]:.2f}.")

    if args.rerank:
        qt, gt = torch.from_numpy(qf), torch.from_numpy(gf)
        q_q, g_g = self_distances(qt).numpy(), self_distances(gt).numpy()
        t0 = time.perf_counter()
        reranked = k_reciprocal_rerank(distmat, q_q, g_g)
        t_rr = time.perf_counter() - t0
        rr = evaluate_reid(reranked, *labels)
        print(f"\nk_reciprocal_rerank (k1=20, k2=6, lambda=0.3), one run: {t_rr:.1f} s; "
              f"mAP {res['mAP']:.4f} -> {rr['mAP']:.4f}, "
              f"rank-1 {res['rank1']:.4f} -> {rr['rank1']:.4f}")


if __name__ == "__main__":
    main()
