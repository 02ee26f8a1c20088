"""The network of SPEC 7: a backbone to pooled features ("pool5") + an embedding head.

The backbone is a torchvision classification model whose last ``Linear`` layer
(the classifier) is replaced by an identity, so that it returns the globally
pooled features (for a ResNet: the 2048-d global average pool, BUC's "pool5"),
or any ``nn.Module`` that returns ``(N, D)`` features or an ``(N, C, h, w)``
feature map (averaged here). The head is BUC's: Linear(D -> 2048) + BatchNorm1d,
L2-normalised, then Dropout(0.5).
"""

import difflib
import os
import warnings
from numbers import Integral, Real

import torch
import torch.nn.functional as F
from torch import nn

from ..utils._sklearn import Interval, validate_params
from ..utils._validation import check_int_pair
from ._weights import (
    check_cached,
    read_state_dict,
    torchvision_weights,
    weight_names,
)

OUTPUTS = ("pool5", "embedding")

_DIM = [Interval(Integral, 1, None, closed="left")]
_EMBEDDING_DIM = [Interval(Integral, 1, None, closed="left"), None]
_DROPOUT = [Interval(Real, 0, 1, closed="left")]


def pooled(out):
    """Global features of a backbone output: a tensor ``(N, D)``.

    Takes the first element of a tuple (the logits of Inception's
    ``InceptionOutputs``) and averages a feature map over its spatial axes.
    """
    if isinstance(out, tuple | list):
        out = out[0]
    if out.ndim == 4:
        return out.mean(dim=(2, 3))
    if out.ndim == 2:
        return out
    raise ValueError(
        "The backbone must return (N, D) features or an (N, C, h, w) feature map; "
        f"it returned a tensor of shape {tuple(out.shape)}."
    )


class EmbeddingHead(nn.Module):
    """Linear + BatchNorm1d, L2-normalised, then Dropout (BUC's embedding head).

    Initialised as BUC's code does: Kaiming-normal weights (fan out), zero
    bias, BatchNorm weight 1 and bias 0. With ``embedding_dim=None`` there is
    no Linear layer: BatchNorm1d over the pooled features themselves
    (Cluster-Contrast's head), so no randomly initialised projection sends
    its gradients into the pretrained backbone.

    Parameters
    ----------
    in_features : int
        Dimension of the backbone's pooled features.
    embedding_dim : int or None, default=2048
        Output dimension; None: ``in_features``, without a Linear layer.
    dropout : float, default=0.5
        Dropout rate after the normalisation (train mode only).

    Examples
    --------
    >>> import torch
    >>> from sklearn_ecluster.feature_extraction import EmbeddingHead
    >>> head = EmbeddingHead(16, embedding_dim=4).eval()
    >>> out = head(torch.randn(3, 16, generator=torch.Generator().manual_seed(0)))
    >>> out.shape, bool(torch.allclose(out.norm(dim=1), torch.ones(3)))
    (torch.Size([3, 4]), True)
    """

    @validate_params(
        {"in_features": _DIM, "embedding_dim": _EMBEDDING_DIM, "dropout": _DROPOUT},
        prefer_skip_nested_validation=True,
    )
    def __init__(self, in_features, embedding_dim=2048, dropout=0.5):
        super().__init__()
        if embedding_dim is None:
            self.linear = nn.Identity()
            self.out_features = int(in_features)
        else:
            self.linear = nn.Linear(in_features, embedding_dim)
            self.out_features = int(embedding_dim)
            nn.init.kaiming_normal_(self.linear.weight, mode="fan_out")
            nn.init.zeros_(self.linear.bias)
        self.bn = nn.BatchNorm1d(self.out_features)
        self.dropout = nn.Dropout(dropout)
        nn.init.ones_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)

    def forward(self, x):
        """The normalised (and, in train mode, dropped-out) embedding of ``x``."""
        return self.dropout(F.normalize(self.bn(self.linear(x)), dim=1))


class ReIDNetwork(nn.Module):
    """Backbone + :class:`EmbeddingHead`; ``forward(x, output)`` picks the features.

    ``forward(x, output="pool5")`` returns the backbone's pooled features (not
    normalised); ``forward(x, output="embedding")`` the head's output (unit
    norm in eval mode; with dropout applied in train mode, which is what the
    memory loss sees).

    Parameters
    ----------
    backbone : torch.nn.Module
        Maps ``(N, 3, H, W)`` images to ``(N, D)`` features or an
        ``(N, C, h, w)`` feature map (averaged over its spatial axes).
    in_features : int
        ``D`` (or ``C``).
    embedding_dim : int or None, default=2048
        Output dimension of the head; None: no Linear layer (BatchNorm1d over
        the pooled features).
    dropout : float, default=0.5
        Dropout rate of the head.

    See Also
    --------
    build_network : Builds one from a torchvision name, with weights.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from sklearn_ecluster.feature_extraction import ReIDNetwork
    >>> network = ReIDNetwork(nn.Conv2d(3, 8, 3), 8, embedding_dim=4).eval()
    >>> x = torch.zeros(2, 3, 32, 16)
    >>> network(x, output="pool5").shape, network(x, output="embedding").shape
    (torch.Size([2, 8]), torch.Size([2, 4]))
    """

    @validate_params(
        {"backbone": [nn.Module], "in_features": _DIM, "embedding_dim": _EMBEDDING_DIM,
         "dropout": _DROPOUT},
        prefer_skip_nested_validation=True,
    )
    def __init__(self, backbone, in_features, embedding_dim=2048, dropout=0.5):
        super().__init__()
        self.backbone = backbone
        self.head = EmbeddingHead(in_features, embedding_dim, dropout)
        self.in_features = int(in_features)

    def forward(self, x, output="embedding"):
        """Features of the images ``x``: ``"pool5"`` or ``"embedding"``."""
        features = pooled(self.backbone(x))
        if output == "pool5":
            return features
        return self.head(features)

    def train(self, mode=True):
        """Train mode, except the frozen stages (``frozen``): they stay in eval mode."""
        super().train(mode)
        for path in getattr(self, "frozen", ()):
            self.get_submodule(path).eval()  # BatchNorm statistics stay fixed
        return self

    def out_features(self, output):
        """Dimension of the features returned for ``output``."""
        return self.in_features if output == "pool5" else self.head.out_features


def classification_models():
    """Names of torchvision's classification models."""
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def _check_backbone_name(name):
    names = classification_models()
    if name in names:
        return
    close = difflib.get_close_matches(name, names, n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(
        f"backbone={name!r} is not a torchvision classification model.{hint} Valid "
        "names include 'resnet18', 'resnet50', 'resnet101', 'resnext50_32x4d', "
        "'densenet121', 'mobilenet_v3_large', 'efficientnet_b0' "
        f"({len(names)} in all: torchvision.models.list_models(module="
        "torchvision.models)); or pass an nn.Module."
    )


def _strip_classifier(model, name):
    """Replace the last ``Linear`` by an identity; return its in_features and key prefix."""
    linears = [(path, m) for path, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(
            f"backbone={name!r} has no Linear classifier to remove; pass an nn.Module "
            "that returns pooled features instead."
        )
    path, layer = linears[-1]
    parent_path, _, attr = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, attr, nn.Identity())
    return layer.in_features, path + "."


def _infer_in_features(module, image_size):
    """Feature dimension of a user backbone, from one forward pass on a blank image."""
    param = next(iter(module.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = pooled(module(torch.zeros(1, 3, *image_size, device=device)))
    finally:
        module.train(was_training)
    return int(out.shape[1])


def load_into(module, state_dict, *, strict, source):
    """Load ``state_dict`` into ``module``; missing/unexpected keys raise or warn.

    ``strict=True`` raises ValueError on missing or unexpected keys;
    ``strict=False`` warns. Shape mismatches always raise, naming a few.
    """
    # checked here: torch's own message lists every mismatched tensor on its line
    own = module.state_dict()
    mismatched = [f"{k} {tuple(v.shape)} in the file, {tuple(own[k].shape)} in the network"
                  for k, v in state_dict.items() if k in own and own[k].shape != v.shape]
    if mismatched:
        raise ValueError(
            f"The weights of {source} do not fit the network: {len(mismatched)} "
            f"tensor(s) of another shape ({'; '.join(mismatched[:3])}"
            f"{'; ...' if len(mismatched) > 3 else ''}). Weights of another backbone "
            "or embedding_dim?"
        )
    try:
        result = module.load_state_dict(state_dict, strict=False)
    except RuntimeError as exc:  # size mismatch
        raise ValueError(f"The weights of {source} do not fit the network: {exc}") from exc
    problems = []
    if result.missing_keys:
        problems.append(f"missing keys {_few(result.missing_keys)}")
    if result.unexpected_keys:
        problems.append(f"unexpected keys {_few(result.unexpected_keys)}")
    if problems:
        message = f"Loading {source}: " + "; ".join(problems) + "."
        if strict:
            raise ValueError(message + " Weights of another backbone? Use strict=False "
                             "to load only the matching keys.")
        warnings.warn(message, UserWarning, stacklevel=3)


def _few(keys, n=5):
    shown = ", ".join(keys[:n])
    return f"[{shown}{', ...' if len(keys) > n else ''}] ({len(keys)} in all)"


def _is_network_state(state):
    return any(k.startswith(("backbone.", "head.")) for k in state)


@validate_params(
    {
        "backbone": [str, nn.Module],
        "weights": [str, os.PathLike, None],
        "embedding_dim": _EMBEDDING_DIM,
        "dropout": _DROPOUT,
        "image_size": [tuple, list],
    },
    prefer_skip_nested_validation=True,
)
def build_network(backbone, *, weights=None, embedding_dim=2048, dropout=0.5,
                  image_size=(256, 128)):
    """Build the :class:`ReIDNetwork`, with the requested weights, on the CPU.

    Parameters
    ----------
    backbone : str or nn.Module
        A torchvision classification model name, or a module (used as is: the
        caller copies it first when the user's object must stay untouched).
    weights : None, str or path-like
        None: random initialisation. A torchvision weight name of the backbone
        (used only when the file is in the torch hub cache). A path to a
        state_dict: either the backbone's own (torchvision layout, the
        classifier's keys ignored) or a whole network saved by
        ``save_weights``.
    embedding_dim, dropout : int or None, float
        The head's size and dropout rate.
    image_size : tuple of (int, int)
        Used to infer the feature dimension of a module backbone.

    Returns
    -------
    network : ReIDNetwork

    Raises
    ------
    ValueError
        If the name is not a torchvision classification model (close names are
        suggested), the weight name is not one of the model's, or a state_dict
        file does not fit (missing keys, shapes).
    FileNotFoundError
        If a weight name's file is not in the torch hub cache (the message
        gives the path where to put it) or a weights path does not exist.

    Examples
    --------
    >>> import torch
    >>> from sklearn_ecluster.feature_extraction import build_network
    >>> network = build_network("resnet18", embedding_dim=128).eval()
    >>> x = torch.zeros(2, 3, 64, 32)
    >>> network(x, output="pool5").shape, network(x, output="embedding").shape
    (torch.Size([2, 512]), torch.Size([2, 128]))
    """
    import torchvision

    image_size = check_int_pair(image_size, "image_size")
    file_state = None
    if isinstance(weights, str) and not _looks_like_path(weights) and not isinstance(
            backbone, str):
        raise ValueError(
            f"weights={weights!r} is not a file; torchvision weight names need a "
            "torchvision backbone name. With an nn.Module backbone, pass the path of "
            "a state_dict."
        )
    if weights is not None and (not isinstance(weights, str) or _looks_like_path(weights)):
        file_state = read_state_dict(weights)
    if isinstance(backbone, str):
        _check_backbone_name(backbone)
        entry = None
        if weights is not None and file_state is None:
            entry = torchvision_weights(backbone, weights)
            if entry is None:
                raise ValueError(
                    f"weights={weights!r} is neither a state_dict file nor a weight "
                    f"name of {backbone} (one of {weight_names(backbone)})."
                )
            check_cached(backbone, entry)  # before torchvision, so nothing downloads
        # Inception-style nets: no auxiliary classifiers (unused, and slower to train)
        kwargs = {"aux_logits": False} if backbone in ("googlenet", "inception_v3") else {}
        model = torchvision.models.get_model(backbone, weights=entry, **kwargs)
        in_features, classifier = _strip_classifier(model, backbone)
    else:
        model, classifier = backbone, None
        in_features = _infer_in_features(model, image_size)
    network = ReIDNetwork(model, in_features, embedding_dim, dropout)
    if file_state is not None:
        source = f"weights file {weights}"
        if _is_network_state(file_state):
            load_into(network, file_state, strict=True, source=source)
        else:
            if classifier is not None:  # the classifier was removed: its keys are not used
                file_state = {k: v for k, v in file_state.items()
                              if not k.startswith(classifier)}
            load_into(model, file_state, strict=True, source=source)
    return network


def _looks_like_path(weights):
    """A string that names a file rather than a torchvision weight name."""
    return (os.path.exists(os.path.expanduser(weights)) or os.sep in weights
            or "/" in weights or weights.endswith((".pt", ".pth", ".bin", ".tar", ".ckpt")))

