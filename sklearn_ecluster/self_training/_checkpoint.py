"""Checkpoints of the self-training loop: written atomically, matched to their run.

A checkpoint holds everything the next round needs (the fitted extractor,
the pseudo labels, the history, the best round so far). It is written to a
temporary file in the same folder, flushed to disk and renamed over the old
one, so a run killed at any moment leaves either the previous or the new
checkpoint, never a torn one.
"""

import os
import tempfile
from pathlib import Path

import joblib
import numpy as np
import torch
from PIL import Image
from sklearn.base import BaseEstimator
from torch import nn

CHECKPOINT_NAME = "self_training_checkpoint.joblib"
FORMAT_VERSION = 1


def checkpoint_path(checkpoint_dir):
    return Path(checkpoint_dir) / CHECKPOINT_NAME


def _canonical(obj):
    """A picklable form of ``obj`` whose hash depends only on its values.

    Pickles of torch tensors and modules differ between equal objects, so
    tensors become NumPy arrays and modules their structure and weights.
    """
    if isinstance(obj, torch.Tensor):
        return ("tensor", obj.detach().cpu().numpy())
    if isinstance(obj, nn.Module):
        return ("module", repr(obj), _canonical(dict(obj.state_dict())))
    if isinstance(obj, BaseEstimator):
        return ("estimator", type(obj).__qualname__, _canonical(obj.get_params(deep=False)))
    if isinstance(obj, Image.Image):
        return ("image", np.asarray(obj))
    if isinstance(obj, dict):
        return ("dict", [(k, _canonical(v)) for k, v in sorted(obj.items(), key=repr)])
    if isinstance(obj, list | tuple):
        return (type(obj).__name__, [_canonical(v) for v in obj])
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def run_fingerprint(params, X, y, eval_set):
    """A hash of everything that determines the run, to refuse a foreign checkpoint."""
    return joblib.hash(_canonical((FORMAT_VERSION, params, X, y, eval_set)))


def write_checkpoint(checkpoint_dir, state):
    folder = Path(checkpoint_dir)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".joblib", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            joblib.dump(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, checkpoint_path(folder))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_checkpoint_dir(checkpoint_dir):
    """Create ``checkpoint_dir`` if needed; ValueError if it cannot hold checkpoints.

    Checked before the first round, so that a run does not train for hours and
    then fail to write its first checkpoint.
    """
    folder = Path(checkpoint_dir).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"checkpoint_dir={str(checkpoint_dir)!r} is a file, not a folder.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(
            f"checkpoint_dir={str(checkpoint_dir)!r} cannot be created ({exc})."
        ) from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"checkpoint_dir={str(checkpoint_dir)!r} is not writable.")


def read_checkpoint(checkpoint_dir, fingerprint):
    """The saved state of this run, or None when the folder holds no checkpoint.

    A checkpoint that cannot be read, or that belongs to another run, raises
    ValueError: it is never overwritten, since it may hold hours of work.
    """
    path = checkpoint_path(checkpoint_dir)
    if not path.is_file():
        return None
    try:
        state = joblib.load(path)
    except Exception as exc:  # truncated or foreign files fail in many ways
        raise ValueError(
            f"checkpoint_dir={str(checkpoint_dir)!r} holds a checkpoint that cannot be "
            f"read ({type(exc).__name__}: {str(exc)[:200]}): truncated, damaged or "
            "written by another version. It is left as it is, not overwritten: delete "
            f"{str(path)!r} to start this run from scratch, or use another folder."
        ) from exc
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        raise ValueError(
            f"checkpoint_dir={str(checkpoint_dir)!r} holds a checkpoint of another run "
            "(different parameters or data). Use another folder, or delete "
            f"{str(path)!r} to start this run from scratch."
        )
    return state
