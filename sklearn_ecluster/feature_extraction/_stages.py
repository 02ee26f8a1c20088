"""Stages of a backbone, and freezing its first ones (``frozen_stages``).

A frozen stage keeps its weights (``requires_grad`` False) and its BatchNorm
statistics (the network puts it in eval mode whenever it trains). Since no
parameter before the first trained one needs a gradient, autograd records
nothing for the frozen prefix: no activations are kept and no backward pass
runs through it, which is what makes fine-tuning on a CPU 30-50x faster with
most of a MobileNetV2 frozen.

Stage boundaries, in forward order:

- ResNet family (``resnet*``, ``resnext*``, ``wide_resnet*``: a module with
  ``conv1`` and ``layer1``..``layer4``): ``"conv1"`` (the stem: ``conv1``,
  ``bn1``, ``relu``, ``maxpool``), then ``"layer1"`` .. ``"layer4"``;
- models whose body is a ``features`` (MobileNet, EfficientNet, DenseNet,
  VGG, ConvNeXt, ...) or ``layers`` (MNASNet) sequence: its children,
  ``"features.0"``, ``"features.1"``, ...;
- any other module: its children in order (for an ``nn.Sequential``:
  ``"0"``, ``"1"``, ...).
"""

from numbers import Integral

from torch import nn

_RESNET_STEM = ("conv1", "bn1", "relu", "maxpool")


def backbone_stages(backbone):
    """The stages of ``backbone``: a list of ``(name, [module paths])``, in order.

    Examples
    --------
    >>> from torch import nn
    >>> from sklearn_ecluster.feature_extraction._stages import backbone_stages
    >>> [name for name, _ in backbone_stages(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))]
    ['0', '1']
    """
    children = dict(backbone.named_children())
    if all(k in children for k in ("conv1", "layer1", "layer4")):
        stem = [k for k in _RESNET_STEM if k in children]
        return [("conv1", stem)] + [(k, [k]) for k in ("layer1", "layer2", "layer3",
                                                       "layer4") if k in children]
    for body in ("features", "layers"):
        if isinstance(children.get(body), nn.Sequential):
            return [(f"{body}.{k}", [f"{body}.{k}"])
                    for k, _ in children[body].named_children()]
    return [(k, [k]) for k in children]


def frozen_paths(backbone, frozen_stages):
    """Module paths (inside ``backbone``) of the stages ``frozen_stages`` freezes.

    ``None`` or ``0``: none; an int ``n``: the first ``n`` stages; a stage
    name: the stages up to and including it.
    """
    if frozen_stages is None or (isinstance(frozen_stages, Integral)
                                 and frozen_stages == 0):
        return []
    stages = backbone_stages(backbone)
    names = [name for name, _ in stages]
    if isinstance(frozen_stages, str):
        if frozen_stages not in names:
            raise ValueError(
                f"frozen_stages={frozen_stages!r} is not a stage of this backbone; "
                f"its stages are {names}."
            )
        count = names.index(frozen_stages) + 1
    else:
        count = int(frozen_stages)
        if count > len(stages):
            raise ValueError(
                f"frozen_stages={frozen_stages!r}: this backbone has only {len(stages)} "
                f"stages ({names})."
            )
    return [path for _, paths in stages[:count] for path in paths]


def freeze(network, frozen_stages):
    """Freeze the first stages of ``network.backbone``; unfreeze earlier choices.

    Records the frozen modules' paths in ``network.frozen`` (the network keeps
    them in eval mode when it trains) and returns them.
    """
    paths = ["backbone." + p if p else "backbone"
             for p in frozen_paths(network.backbone, frozen_stages)]
    for path in set(getattr(network, "frozen", ())) - set(paths):
        for p in network.get_submodule(path).parameters():
            p.requires_grad_(True)  # a warm fit that freezes fewer stages
    for path in paths:
        for p in network.get_submodule(path).parameters():
            p.requires_grad_(False)
    network.frozen = paths
    network.train(network.training)
    return paths
