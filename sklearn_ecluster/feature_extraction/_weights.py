"""Weights on disk and in pickles: hub cache look-up, state_dict files, CPU copies.

Nothing here downloads: a torchvision weight name is used only when its file
is already in the torch hub cache, and the error for a missing file says where
to put it.
"""

import copy
import itertools
import os
import re
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

# Checkpoints of other frameworks often wrap the state_dict in one of these keys.
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net")


def hub_checkpoint_path(url):
    """Where :func:`torch.hub.load_state_dict_from_url` keeps the file of ``url``."""
    filename = os.path.basename(urlparse(url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def torchvision_weights(backbone, weights):
    """The torchvision weights entry of ``backbone`` named ``weights``, or None.

    ``weights`` may be ``"IMAGENET1K_V2"``, ``"DEFAULT"`` or the full
    ``"ResNet50_Weights.IMAGENET1K_V2"``. Returns None when the name is not one
    of the backbone's weights.
    """
    from torchvision.models import get_model_weights

    enum = get_model_weights(backbone)
    try:
        return enum.verify(weights)
    except KeyError:
        return None


def weight_names(backbone):
    """The weight names torchvision knows for ``backbone``."""
    from torchvision.models import get_model_weights

    return [w.name for w in get_model_weights(backbone)] + ["DEFAULT"]


def check_cached(backbone, entry):
    """Raise FileNotFoundError, naming the expected path, if ``entry`` is not cached."""
    path = hub_checkpoint_path(entry.url)
    if not path.is_file():
        raise FileNotFoundError(
            f"Pretrained weights {backbone} {entry!r} are not in the torch hub cache: "
            f"expected the file {path}. Nothing is downloaded by sklearn-ecluster: "
            f"download {entry.url} on a machine with internet access and copy it to "
            f"{path} (the folder is torch.hub.get_dir()/checkpoints; set TORCH_HOME to "
            "move it), or pass weights='/path/to/state_dict.pth'."
        )
    return path


def strip_prefix(state_dict, prefix="module."):
    """Remove ``prefix`` (DataParallel's ``module.``) from every key that has it."""
    if not any(k.startswith(prefix) for k in state_dict):
        return dict(state_dict)
    return {(k[len(prefix):] if k.startswith(prefix) else k): v
            for k, v in state_dict.items()}


def read_state_dict(path):
    """Read a state_dict file safely (``weights_only=True``) onto the CPU.

    Tolerates a checkpoint dictionary that wraps the state_dict under a usual
    key (``"state_dict"``, ``"model"``, ...) and DataParallel's ``module.``
    prefix. Raises FileNotFoundError when there is no file, and ValueError
    when the file does not hold a state_dict (another format, a truncated
    file, a whole pickled model, a dict of other values).
    """
    path = Path(os.fspath(path)).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"No weights file at {path}: pass the path of a state_dict saved with "
            "torch.save(model.state_dict(), path) or with save_weights."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise  # the file itself cannot be read (permissions, ...): names it
    except Exception as exc:  # a file of other content: errors come in many types
        # torch's messages run over many lines; their first sentence says what failed
        first = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().split(". ")[0]
        reason = type(exc).__name__ + (f": {first.splitlines()[0][:200]}" if first else "")
        raise ValueError(
            f"{path} is not a state_dict file that torch.load(weights_only=True) "
            f"reads ({reason}). Pass a file written by "
            "torch.save(model.state_dict(), path) or save_weights; a whole pickled "
            "model is not read, since unpickling it could run any code."
        ) from exc
    for key in _WRAPPER_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ValueError(
            f"{path} does not hold a state_dict (a dict of parameter names to tensors)."
        )
    return strip_prefix(state)


def write_state_dict(state_dict, path):
    """Write ``state_dict`` atomically: a temporary file in the same folder, renamed.

    A crash mid-write leaves the previous file (if any) intact.
    """
    path = Path(os.fspath(path)).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state_dict, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def cpu_copy(module):
    """``module`` with every parameter and buffer on the CPU, for pickling.

    Returns ``module`` itself when it is on the CPU already. Otherwise the copy
    is made tensor by tensor straight to the CPU (no second copy on the GPU),
    so a model fitted on CUDA unpickles on a machine without CUDA.
    """
    tensors = list(itertools.chain(module.parameters(), module.buffers()))
    if _all_on_cpu(tensors):
        return module
    memo = {}
    for t in tensors:
        cpu = t.detach().to("cpu", copy=True)
        memo[id(t)] = (nn.Parameter(cpu, requires_grad=t.requires_grad)
                       if isinstance(t, nn.Parameter) else cpu)
    return copy.deepcopy(module, memo)


def _all_on_cpu(tensors):
    return all(t.device.type == "cpu" for t in tensors)
