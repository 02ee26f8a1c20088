"""The fully unsupervised re-ID loop: :class:`SelfTrainingReID` (paper Algorithm 1)."""

from ._diagnostics import pseudo_label_scores
from ._loop import SelfTrainingReID

__all__ = ["SelfTrainingReID", "pseudo_label_scores"]
