"""Energy clustering (E-cluster) for unsupervised person re-identification.

scikit-learn compatible estimators backed by torch:

- :class:`~sklearn_ecluster.cluster.EnergyAgglomerative`: bottom-up clustering with the
  energy distance plus a sum-of-squares regulariser (and the BUC / DBC baselines);
- :class:`~sklearn_ecluster.feature_extraction.ReIDFeatureExtractor`: person images to
  CNN features, fine-tuned on (pseudo) labels;
- :mod:`~sklearn_ecluster.metrics`: the re-ID evaluation protocol (CMC, mAP, mINP);
- :mod:`~sklearn_ecluster.datasets`: loaders for Market-1501-like layouts and a
  synthetic person dataset.

Sub-packages are imported lazily so that ``import sklearn_ecluster`` stays cheap.
"""

import importlib
import logging

__version__ = "0.1.0.dev0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

_SUBMODULES = [
    "cluster",
    "datasets",
    "feature_extraction",
    "metrics",
    "plotting",
    "self_training",
    "utils",
]

# public name -> sub-package that defines it
_LAZY_NAMES = {
    "EnergyAgglomerative": "cluster",
    "ReIDFeatureExtractor": "feature_extraction",
    "SelfTrainingReID": "self_training",
}

__all__ = sorted([*_SUBMODULES, *_LAZY_NAMES, "__version__"])


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY_NAMES:
        module = importlib.import_module(f"{__name__}.{_LAZY_NAMES[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
