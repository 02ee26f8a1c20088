"""Re-ID evaluation: the Market-1501 protocol (CMC, mAP, mINP) and re-ranking."""

from ._distances import reid_distances
from ._evaluate import evaluate_features
from ._jaccard import jaccard_distance
from ._ranking import (
    cmc_curve,
    evaluate_reid,
    mean_average_precision_score,
    mean_inp_score,
    rank_k_score,
)
from ._rerank import k_reciprocal_rerank

__all__ = [
    "cmc_curve",
    "evaluate_features",
    "evaluate_reid",
    "jaccard_distance",
    "k_reciprocal_rerank",
    "mean_average_precision_score",
    "mean_inp_score",
    "rank_k_score",
    "reid_distances",
]
