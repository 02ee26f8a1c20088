"""The fully unsupervised re-ID loop: :class:`SelfTrainingReID` (paper Algorithm 1)
and the contrastive cluster-memory recipe beside it (:func:`make_recipe`)."""

from ._association import (
    CrossCameraAssociation,
    cross_camera_nearest,
    mutual_cross_camera_pairs,
)
from ._camera import center_per_camera
from ._dbscan import AutoEpsDBSCAN
from ._diagnostics import pseudo_label_scores
from ._loop import SelfTrainingReID
from ._recipes import RECIPES, make_recipe

__all__ = [
    "RECIPES",
    "AutoEpsDBSCAN",
    "CrossCameraAssociation",
    "SelfTrainingReID",
    "center_per_camera",
    "cross_camera_nearest",
    "make_recipe",
    "mutual_cross_camera_pairs",
    "pseudo_label_scores",
]
