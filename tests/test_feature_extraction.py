"""ReIDFeatureExtractor: inputs, network, weights, fine-tuning, persistence, contract.

Everything runs on the CPU with random initialisation (nothing is downloaded):
tiny images written here (32 x 16), a tiny convolutional backbone, and
torchvision's resnet18 where torchvision's own models are the point. Torch runs
on one thread here: on such small tensors more threads only add overhead (and
on a machine shared with other jobs, a lot of it).
"""

import copy
import os
import pickle
import re
import subprocess
import sys
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
import torchvision
from _tolerances import TF32_RTOL, assert_allclose_float32
from PIL import Image
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import average_precision_score
from sklearn.utils.estimator_checks import (
    check_do_not_raise_errors_in_init_or_set_params,
    check_estimator_cloneable,
    check_estimator_repr,
    check_estimator_tags_renamed,
    check_get_params_invariance,
    check_mixin_order,
    check_no_attributes_set_in_init,
    check_param_validation,
    check_parameters_default_constructible,
    check_set_params,
    check_valid_tag_types,
)
from torch import nn

from sklearn_ecluster.datasets import ReIDImageDataset
from sklearn_ecluster.feature_extraction import (
    ReIDFeatureExtractor,
    init_memory,
    memory_loss,
    update_memory,
)

SIZE = (32, 16)
# ImageNet's statistics, written out: the reference below does not use the package
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_backbone(channels=8, batch_norm=False, seed=0):
    """A two-layer CNN returning a feature map (averaged by the network).

    Its initial weights come from ``seed`` (the global RNG is forked, so left
    alone): ``random_state`` does not re-initialise a user's module.
    """
    def block(c_in, stride):
        conv = nn.Conv2d(c_in, channels, 3, padding=1 if stride == 1 else 0, stride=stride)
        return [conv, nn.BatchNorm2d(channels), nn.ReLU()] if batch_norm else [conv, nn.ReLU()]

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Sequential(*block(3, 1), *block(channels, 2))


def extractor(backbone=None, **params):
    params = {"image_size": SIZE, "device": "cpu", "random_state": 0,
              "embedding_dim": 64, "epochs": 1, **params}
    return ReIDFeatureExtractor(tiny_backbone() if backbone is None else backbone,
                                **params)


@pytest.fixture(scope="module")
def arrays():
    """Six random RGB images, uint8 (N, H, W, 3), at the network's input size."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(6, *SIZE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def paths(arrays, tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    out = []
    for i, a in enumerate(arrays):
        path = folder / f"{i:04d}_c1s1_000001_00.png"  # PNG: lossless, same pixels
        Image.fromarray(a).save(path)
        out.append(str(path))
    return out


def hand_tensor(arrays):
    """ImageNet-normalised (N, 3, H, W) float tensor of uint8 images at SIZE, by hand."""
    x = (np.asarray(arrays) / 255.0 - MEAN) / STD
    return torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32))


# ------------------------------------------------------------------ outputs
@pytest.mark.parametrize("backbone, output, dim", [
    (None, "pool5", 8), (None, "embedding", 64), ("resnet18", "pool5", 512),
])
def test_output_shape_dtype_and_unit_norm(arrays, backbone, output, dim):
    model = extractor(backbone, output=output).fit(arrays)
    features = model.transform(arrays)
    assert features.shape == (6, dim) and features.dtype == np.float32
    assert model.n_features_out_ == dim
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, rtol=1e-5)
    raw = model.set_params(normalize=False).transform(arrays)
    if output == "pool5":  # plain ReLU features: not unit norm, and positive
        assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
        assert (raw >= 0).all()
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True),
                               features, rtol=1e-5, atol=1e-6)


def test_input_forms_give_the_same_features(arrays, paths):
    model = extractor().fit(arrays)
    reference = model.transform(list(arrays))
    with torch.no_grad():  # the network on images normalised by hand
        by_hand = torch.nn.functional.normalize(
            model.model_(hand_tensor(arrays), output="pool5"), dim=1).numpy()
    # float32 inputs normalised two ways (last bits differ), then float32 convolutions
    assert_allclose_float32(reference, by_hand)
    pil = [Image.fromarray(a) for a in arrays]
    forms = {
        "str paths": paths,
        "Path paths": [Path(p) for p in paths],
        "array of paths": np.array(paths),
        "PIL": pil,
        "NHWC array": arrays,
        "tuple of arrays": tuple(arrays),
        "tensor": hand_tensor(arrays),
        "list of CHW tensors": list(hand_tensor(arrays)),
        "mixed": [paths[0], pil[1], arrays[2], hand_tensor(arrays)[3], Path(paths[4]),
                  pil[5].convert("RGBA")],
        # its own transform is not used: the extractor's is
        "ReIDImageDataset": ReIDImageDataset(paths, transform=lambda im: None),
    }
    for name, X in forms.items():
        assert_allclose_float32(model.transform(X), reference, err_msg=name)


def test_images_of_another_size_are_resized(arrays, tmp_path):
    model = extractor().fit(arrays)
    big = [np.array(Image.fromarray(a).resize((24, 48))) for a in arrays]
    path = tmp_path / "big.png"
    Image.fromarray(big[0]).save(path)
    by_array = model.transform(big)
    assert_allclose_float32(model.transform([path]), by_array[:1])  # batch of 1 vs 6
    # a tensor is resized too (bilinear on the tensor: close, not equal, to PIL's)
    big_tensor = torch.stack([torchvision.transforms.functional.to_tensor(b) for b in big])
    assert model.transform(big_tensor).shape == (6, model.n_features_out_)
    gray = model.transform([big[0][..., 0]])  # (H, W) uint8: grayscale, made RGB
    np.testing.assert_allclose(gray, model.transform([np.repeat(big[0][..., :1], 3, 2)]),
                               atol=1e-6)


@pytest.mark.parametrize("output", ["pool5", "embedding"])
def test_batch_size_invariance(arrays, output):
    model = extractor(output=output).fit(arrays)
    reference = model.set_params(batch_size=64).transform(arrays)
    for batch_size in (1, 4):  # the batch changes the kernels' summation order
        assert_allclose_float32(model.set_params(batch_size=batch_size).transform(arrays),
                                reference)


def test_flip_is_the_normalised_mean_with_the_mirror_image(arrays):
    model = extractor(flip=True).fit(arrays)
    x = hand_tensor(arrays)
    with torch.no_grad():
        network = model.model_.eval()
        by_hand = (network(x, output="pool5") + network(x.flip(3), output="pool5")) / 2
        by_hand = torch.nn.functional.normalize(by_hand, dim=1).numpy()
        plain = torch.nn.functional.normalize(network(x, output="pool5"), dim=1).numpy()
    flipped = model.transform(arrays)
    assert_allclose_float32(flipped, by_hand)
    assert not np.allclose(flipped, plain, atol=1e-3)
    # the mirror image's features with flip are the same (the mean is symmetric)
    assert_allclose_float32(model.transform(arrays[:, :, ::-1].copy()), flipped)


def test_module_backbone_is_copied_and_its_dimension_inferred(arrays):
    backbone = tiny_backbone()
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    model = extractor(backbone, epochs=2).fit(arrays, [0, 0, 0, 1, 1, 1])
    assert model.transform(arrays).shape == (6, 8)
    assert model.model_.backbone is not backbone
    for k, v in backbone.state_dict().items():  # the parameter is never modified
        assert torch.equal(v, before[k]), k
    assert model.backbone is backbone


# ------------------------------------------------------------------ weights
@pytest.fixture
def torchvision_resnet18(tmp_path):
    """A resnet18 built by torchvision itself (fixed seed) and its state_dict file."""
    with torch.random.fork_rng():
        torch.manual_seed(123)
        model = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18_state.pth"
    torch.save(model.state_dict(), path)
    return model, path


def _pool5_by_hand(model, arrays):
    model.fc = nn.Identity()
    with torch.no_grad():
        return model.eval()(hand_tensor(arrays)).numpy()


def assert_loaded_torchvision_weights(model, tv_model, arrays):
    """The extractor's backbone holds ``tv_model``'s tensors and computes its function.

    Loading is checked exactly (tensor by tensor) and in float64, where the two
    networks agree to ~1e-12 whatever the CPU; the float32 features of
    ``transform`` then agree to float32 convolution precision.
    """
    expected_state = {k: v for k, v in tv_model.state_dict().items()
                      if not k.startswith("fc.")}
    got_state = model.model_.backbone.state_dict()
    assert got_state.keys() == expected_state.keys()
    for key, value in expected_state.items():
        assert torch.equal(got_state[key], value), key
    x = hand_tensor(arrays).double()
    with torch.no_grad():
        backbone = copy.deepcopy(model.model_).double().eval()
        reference = copy.deepcopy(tv_model).double().eval()
        reference.fc = nn.Identity()
        np.testing.assert_allclose(backbone(x, output="pool5").numpy(),
                                   reference(x).numpy(), rtol=1e-10, atol=1e-12)
    assert_allclose_float32(model.transform(arrays), _pool5_by_hand(tv_model, arrays))


def test_torchvision_state_dict_loads_by_path(arrays, torchvision_resnet18):
    tv_model, path = torchvision_resnet18
    model = extractor("resnet18", weights=str(path), normalize=False).fit(arrays)
    assert_loaded_torchvision_weights(model, tv_model, arrays)
    # a DataParallel-style "module." prefix and a Path are fine too
    state = {f"module.{k}": v for k, v in torch.load(path, weights_only=True).items()}
    torch.save(state, path)
    model = extractor("resnet18", weights=path, normalize=False).fit(arrays)
    assert_loaded_torchvision_weights(model, tv_model, arrays)


def test_weight_name_in_the_hub_cache_is_used(arrays, torchvision_resnet18, monkeypatch,
                                              tmp_path):
    tv_model, path = torchvision_resnet18
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    cached = tmp_path / "hub" / "checkpoints" / url.rsplit("/", 1)[1]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(path.read_bytes())  # stands in for the real ImageNet file
    model = extractor("resnet18", weights="IMAGENET1K_V1", normalize=False).fit(arrays)
    assert_loaded_torchvision_weights(model, tv_model, arrays)


def test_weight_name_not_in_the_cache_names_the_path(arrays, monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    expected = tmp_path / "checkpoints" / url.rsplit("/", 1)[1]
    for name in ("IMAGENET1K_V1", "DEFAULT", "ResNet18_Weights.IMAGENET1K_V1"):
        with pytest.raises(FileNotFoundError, match=re.escape(str(expected))) as info:
            extractor("resnet18", weights=name).fit(arrays)
        assert url in str(info.value) and "TORCH_HOME" in str(info.value)
    assert not expected.exists()  # nothing was downloaded
    with pytest.raises(ValueError, match=r"weights='IMAGENET2K'.*IMAGENET1K_V1"):
        extractor("resnet18", weights="IMAGENET2K").fit(arrays)
    with pytest.raises(FileNotFoundError, match="No weights file at"):
        extractor(weights=str(tmp_path / "missing.pth")).fit(arrays)
    with pytest.raises(ValueError, match="With an nn.Module backbone, pass the path"):
        extractor(tiny_backbone(), weights="IMAGENET1K_V1").fit(arrays)


def test_save_and_load_weights_round_trip(arrays, tmp_path):
    y = [0, 0, 0, 1, 1, 1]
    model = extractor(output="embedding").fit(arrays, y)
    path = model.save_weights(tmp_path / "sub" / "weights.pth")
    assert path.is_file()
    assert sorted(p.name for p in path.parent.iterdir()) == ["weights.pth"]  # no temp file
    expected = model.transform(arrays)
    # into a differently initialised, fitted extractor; into an unfitted one
    other = extractor(output="embedding", random_state=1).fit(arrays)
    assert not np.allclose(other.transform(arrays), expected, atol=1e-3)
    assert_allclose_float32(other.load_weights(path).transform(arrays), expected)
    fresh = extractor(output="embedding").load_weights(path)
    assert_allclose_float32(fresh.transform(arrays), expected)
    # weights=path of a whole network works in the constructor
    by_param = extractor(output="embedding", weights=path).fit(arrays)
    assert_allclose_float32(by_param.transform(arrays), expected)
    for loaded in (other, fresh, by_param):  # the very same tensors
        assert_same_state(loaded.model_, model.model_)
    # overwriting an existing file, with the DataParallel prefix
    state = {f"module.{k}": v for k, v in model.model_.state_dict().items()}
    torch.save(state, path)
    assert_allclose_float32(fresh.load_weights(path).transform(arrays), expected)
    assert_same_state(fresh.model_, model.model_)


def assert_same_state(a, b):
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for key, value in state_a.items():
        assert torch.equal(value, state_b[key]), key


def test_load_weights_strict_flag(arrays, tmp_path):
    model = extractor().fit(arrays)
    state = model.model_.state_dict()
    state.pop("head.linear.bias")
    state["head.extra"] = torch.zeros(1)
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"missing keys \[head.linear.bias\].*"
                                         r"unexpected keys \[head.extra\]"):
        extractor().fit(arrays).load_weights(path)
    with pytest.warns(UserWarning, match="missing keys"):
        extractor().fit(arrays).load_weights(path, strict=False)
    torch.save(tiny_backbone().state_dict(), path)  # a backbone's own state_dict
    with pytest.raises(ValueError, match="weights=path"):
        extractor().fit(arrays).load_weights(path)


# ------------------------------------------------------------- memory loss
def test_memory_update_matches_a_hand_computation():
    memory = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    v = torch.tensor([[0.0, 0.0, 2.0], [0.6, 0.8, 0.0]])

    def normalise(a):
        return a / np.linalg.norm(a)

    # two samples of the same label: sequential, the second on top of the first
    m = memory.clone()
    update_memory(m, v, torch.tensor([0, 0]), momentum=0.5)
    first = normalise(0.5 * np.array([1.0, 0, 0]) + 0.5 * np.array([0, 0, 2.0]))
    second = normalise(0.5 * first + 0.5 * np.array([0.6, 0.8, 0]))
    np.testing.assert_allclose(m[0].numpy(), second, rtol=1e-6)
    np.testing.assert_allclose(m[1].numpy(), [0, 1, 0])
    # two labels: one update each; momentum 0.8
    m = memory.clone()
    update_memory(m, v, torch.tensor([1, 0]), momentum=0.8)
    np.testing.assert_allclose(m[1].numpy(), normalise(0.8 * np.array([0, 1.0, 0])
                                                       + 0.2 * np.array([0, 0, 2.0])),
                               rtol=1e-6)
    np.testing.assert_allclose(m[0].numpy(), normalise(0.8 * np.array([1.0, 0, 0])
                                                       + 0.2 * np.array([0.6, 0.8, 0])),
                               rtol=1e-6)


def test_memory_update_equals_a_sequential_loop_on_a_larger_batch():
    gen = torch.Generator().manual_seed(0)
    memory = torch.nn.functional.normalize(torch.randn(5, 4, generator=gen), dim=1)
    v = torch.randn(16, 4, generator=gen)
    labels = torch.randint(0, 5, (16,), generator=gen)
    expected = memory.clone()
    for x, y in zip(v, labels):  # BUC's loop
        expected[y] = 0.3 * expected[y] + 0.7 * x
        expected[y] /= expected[y].norm()
    torch.testing.assert_close(update_memory(memory.clone(), v, labels, 0.3), expected)


def test_memory_loss_and_init_by_hand():
    features = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    memory = init_memory(features, labels, 2, mode="mean")
    np.testing.assert_allclose(memory.numpy(),
                               [[1.8 / np.hypot(1.8, 0.6), 0.6 / np.hypot(1.8, 0.6)],
                                [0.0, 1.0]], rtol=1e-6)
    assert torch.equal(init_memory(features, labels, 2, mode="zeros"), torch.zeros(2, 2))
    logits = (features @ memory.T / 0.1).numpy()
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = -log_p[[0, 1, 2], [0, 0, 1]].mean()
    assert float(memory_loss(features, labels, memory, 0.1)) == pytest.approx(expected,
                                                                              abs=1e-6)


# ------------------------------------------------------------ fine-tuning
def two_identities(n_per_id, seed):
    """Two well-separated identities: a shirt with horizontal or vertical stripes.

    Each image draws its own two colours, stripe period (4 to 6 pixels) and
    phase, plus pixel noise. The orientation tells the identities apart; the
    colours, which dominate a random network's pooled features, do not (a
    random tiny network gives mAP about 0.55, chance being 0.5).
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:SIZE[0], :SIZE[1]]
    images, labels = [], []
    for i in range(2 * n_per_id):
        identity = i % 2
        period = rng.integers(4, 7)
        stripes = ((rows if identity == 0 else cols) + rng.integers(period)) % period
        colours = rng.uniform(0, 255, size=(2, 3))
        image = np.where((stripes < period / 2)[..., None], colours[0], colours[1])
        image += rng.normal(0, 20, image.shape)
        images.append(np.clip(image, 0, 255).astype(np.uint8))
        labels.append(identity)
    return np.stack(images), np.array(labels)


def retrieval_map(features, labels):
    """Mean average precision of each image as a query against all the others.

    Written out (not sklearn_ecluster.metrics): rank the others by cosine
    similarity; AP = mean over the matches of (matches so far / rank).
    """
    similarity = features @ features.T
    aps = []
    for i in range(len(labels)):
        others = np.flatnonzero(np.arange(len(labels)) != i)
        ranked = others[np.argsort(-similarity[i, others], kind="stable")]
        hits = labels[ranked] == labels[i]
        precision_at_hits = np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)
        aps.append(precision_at_hits.mean())
    return float(np.mean(aps))


def test_retrieval_map_reference():
    labels = np.array([0, 0, 1, 1])
    features = np.array([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9]])
    assert retrieval_map(features, labels) == 1.0
    # one match per query: AP = 1 / the match's rank
    features = np.array([[1.0, 0], [0, 1.0], [0.6, 0.8], [0.8, 0.6]])
    similarity = features @ features.T
    expected = []
    for i in range(4):
        others = [j for j in np.argsort(-similarity[i], kind="stable") if j != i]
        rank = 1 + [labels[j] == labels[i] for j in others].index(True)
        expected.append(1 / rank)
    assert retrieval_map(features, labels) == pytest.approx(np.mean(expected))
    sk = [average_precision_score(labels[np.arange(4) != i] == labels[i],
                                  similarity[i, np.arange(4) != i]) for i in range(4)]
    assert retrieval_map(features, labels) == pytest.approx(np.mean(sk))


def test_fine_tuning_lowers_the_loss_and_raises_map():
    X, y = two_identities(48, seed=0)
    X_test, y_test = two_identities(16, seed=1)  # held back: never trained on
    # the recipe's optimiser and loss; no dropout and a constant rate, so that
    # 12 short epochs (72 steps) are enough for a 32-channel two-layer CNN
    model = extractor(tiny_backbone(32, batch_norm=True), epochs=12, lr_step=None,
                      dropout=0.0, embedding_dim=32)
    before = retrieval_map(model.fit(X).transform(X_test), y_test)
    model.fit(X, y + 10)  # any labels: remapped to 0..K-1
    after = retrieval_map(model.transform(X_test), y_test)
    losses = model.loss_history_
    assert model.n_iter_ == 12 and len(losses) == 12
    # measured here (pool5 features, the default output): mAP 0.58 -> 0.79, mean loss
    # of the first / last two epochs 2.25 -> 0.17; with the backbone's seed and
    # random_state both 0..5 the gain was 0.21 to 0.32 and the loss ratio at most
    # 0.17, hence these margins
    assert np.mean(losses[-2:]) < 0.5 * np.mean(losses[:2]), losses
    assert before < 0.65, before
    assert after > before + 0.1, (before, after)
    np.testing.assert_array_equal(model.classes_, [10, 11])


def test_fit_is_reproducible_and_leaves_the_global_rng_alone(arrays):
    y = [3, 3, 5, 5, 7, 7]
    backbone = tiny_backbone(batch_norm=True)
    np_state, torch_state = np.random.get_state(), torch.get_rng_state()  # noqa: NPY002
    params = {"output": "embedding", "epochs": 2, "memory_init": "zeros"}
    a = extractor(backbone, **params).fit(arrays, y)
    features = a.transform(arrays)
    assert torch.equal(torch_state, torch.get_rng_state())
    np.testing.assert_array_equal(np_state[1], np.random.get_state()[1])  # noqa: NPY002
    b = extractor(backbone, **params).fit(arrays, y)
    assert a.loss_history_ == b.loss_history_
    np.testing.assert_array_equal(b.transform(arrays), features)
    c = extractor(backbone, random_state=1, **params).fit(arrays, y)
    assert not np.allclose(c.transform(arrays), features, atol=1e-4)
    # random_state=None draws OS entropy, not the global RNG; so does a name backbone
    extractor(backbone, random_state=None).fit(arrays, y).transform(arrays)
    extractor("resnet18", random_state=None).fit(arrays, y)
    assert torch.equal(torch_state, torch.get_rng_state())
    np.testing.assert_array_equal(np_state[1], np.random.get_state()[1])  # noqa: NPY002


def test_warm_start_continues_and_a_cold_fit_rebuilds(arrays):
    y = [0, 0, 0, 1, 1, 1]
    model = extractor(output="embedding").fit(arrays, y)
    once = model.transform(arrays)
    network = model.model_
    model.fit(arrays, y)  # cold: rebuilt with the same seed -> same as the first fit
    assert model.model_ is not network
    np.testing.assert_allclose(model.transform(arrays), once, atol=1e-6)
    model.set_params(warm_start=True)
    network = model.model_
    model.fit(arrays, y)  # continues training the same network
    assert model.model_ is network
    assert not np.allclose(model.transform(arrays), once, atol=1e-4)
    model.fit(arrays)  # warm, no labels: nothing changes except the labels are gone
    assert not hasattr(model, "classes_") and model.n_iter_ == 0
    assert model.loss_history_ == []


def test_fit_without_labels_only_builds(arrays):
    model = extractor().fit(arrays)
    assert model.n_iter_ == 0 and model.loss_history_ == []
    assert not hasattr(model, "classes_")
    assert not model.model_.training
    assert model.device_ == torch.device("cpu")


def test_tensor_input_and_workers(arrays):
    x = hand_tensor(arrays)
    model = ReIDFeatureExtractor(tiny_backbone(), image_size=SIZE, epochs=1,
                                 random_state=0, device="auto").fit(x, [0, 1, 0, 1, 0, 1])
    assert model.device_ == x.device  # "auto" follows a tensor
    reference = model.transform(arrays)
    np.testing.assert_allclose(model.set_params(num_workers=2).transform(arrays),
                               reference, atol=1e-6)
    assert_allclose_float32(model.transform(x), reference)  # normalised by hand


def test_verbose_output(arrays, capsys):
    extractor(epochs=2).fit(arrays, [0, 0, 0, 1, 1, 1]).transform(arrays)
    assert capsys.readouterr().out == ""
    extractor(epochs=2, verbose=1).fit(arrays, [0, 0, 0, 1, 1, 1])
    out = capsys.readouterr().out
    assert "[ReIDFeatureExtractor] epoch 1/2: loss" in out and "epoch 2/2" in out
    pytest.importorskip("tqdm")
    extractor(epochs=1, verbose=2).fit(arrays, [0, 0, 0, 1, 1, 1]).transform(arrays)
    assert "features" in capsys.readouterr().err  # the tqdm bar


# ------------------------------------------------------------ persistence
def test_pickle_and_joblib_round_trip(arrays, tmp_path):
    model = extractor(output="embedding", epochs=2).fit(arrays, [0, 0, 0, 1, 1, 1])
    expected = model.transform(arrays)
    joblib.dump(model, tmp_path / "model.joblib")
    for loaded in (pickle.loads(pickle.dumps(model)), joblib.load(tmp_path / "model.joblib")):
        np.testing.assert_array_equal(loaded.transform(arrays), expected)
        assert loaded.get_params().keys() == model.get_params().keys()
        assert loaded.loss_history_ == model.loss_history_
        np.testing.assert_array_equal(loaded.classes_, model.classes_)
    assert model.transform(arrays).shape == expected.shape  # the original still works


def test_pickled_state_holds_cpu_tensors_and_loads_without_cuda(arrays):
    """Fake a CUDA-fitted extractor: its pickle must load on a CPU-only machine."""
    model = extractor(tiny_backbone()).fit(arrays)
    state = model.__getstate__()
    assert state is not model.__dict__
    tensors = [t for value in state.values() if isinstance(value, nn.Module)
               for t in (*value.parameters(), *value.buffers())]
    assert tensors and all(t.device.type == "cpu" for t in tensors)
    state["device_"] = torch.device("cuda", 0)
    clone_ = ReIDFeatureExtractor.__new__(ReIDFeatureExtractor)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.cuda, "is_available", lambda: False)
        with pytest.warns(UserWarning, match="fitted on CUDA"):
            clone_.__setstate__(state)
    assert clone_.device_ == torch.device("cpu")
    np.testing.assert_array_equal(clone_.transform(arrays), model.transform(arrays))


def test_cpu_copy_copies_tensor_by_tensor(monkeypatch):
    from sklearn_ecluster.feature_extraction import _weights

    module = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    module[0].bias.requires_grad_(False)
    assert _weights.cpu_copy(module) is module  # already on the CPU: nothing to copy
    # pretend the tensors live elsewhere: the copy is then made tensor by tensor
    monkeypatch.setattr(_weights, "_all_on_cpu", lambda tensors: False)
    copy = _weights.cpu_copy(module)
    assert copy is not module
    for (name, a), b in zip(module.state_dict().items(), copy.state_dict().values()):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr(), name
    assert isinstance(copy[0].weight, nn.Parameter) and copy[0].weight.requires_grad
    assert not copy[0].bias.requires_grad


# -------------------------------------------------- scikit-learn contract
@pytest.mark.parametrize("check", [
    check_estimator_tags_renamed,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_get_params_invariance,
    check_set_params,
    check_estimator_cloneable,
    check_estimator_repr,
    check_mixin_order,
    check_do_not_raise_errors_in_init_or_set_params,
    check_valid_tag_types,
    check_param_validation,
])
def test_data_independent_sklearn_checks(check):
    check("ReIDFeatureExtractor", ReIDFeatureExtractor(device="cpu"))


def test_defaults_are_the_papers():
    model = ReIDFeatureExtractor()
    assert (model.backbone, model.image_size, model.embedding_dim, model.dropout,
            model.output, model.normalize, model.batch_size, model.train_batch_size,
            model.epochs, model.lr, model.backbone_lr_mult, model.lr_step, model.momentum,
            model.weight_decay, model.temperature, model.memory_momentum) == (
        "resnet50", (256, 128), 2048, 0.5, "pool5", True, 64, 16, 20, 0.1, 0.1, 15, 0.9,
        5e-4, 0.1, 0.5)


def test_clone_fit_does_not_overwrite_params_and_not_fitted_errors(arrays):
    backbone = tiny_backbone()
    model = extractor(backbone, epochs=1)
    params = model.get_params()
    assert model.fit(arrays, [0, 1, 0, 1, 0, 1]) is model
    after = model.get_params()
    assert after.keys() == params.keys() and all(after[k] is params[k] for k in params)
    copy = clone(model)
    assert not hasattr(copy, "model_")
    assert copy.get_params()["backbone"] is not backbone  # deep-copied by clone
    for call in (lambda m: m.transform(arrays), lambda m: m.save_weights("x.pth")):
        with pytest.raises(NotFittedError):
            call(copy)


@pytest.mark.parametrize("params, error, match", [
    ({"output": "fc7"}, ValueError, "'output' parameter"),
    ({"image_size": (32,)}, ValueError, r"image_size must be a pair of ints >= 1.*\(32,\)"),
    ({"image_size": (32, True)}, TypeError, r"image_size must be a pair of ints.*True"),
    ({"image_size": 32}, TypeError, "'image_size' parameter"),
    ({"image_size": (32, 0)}, ValueError, "image_size"),
    ({"train_batch_size": 1}, ValueError, "'train_batch_size' parameter"),
    ({"memory_momentum": 1.5}, ValueError, "'memory_momentum' parameter"),
    ({"memory_init": "random"}, ValueError, "'memory_init' parameter"),
    ({"backbone": "resnet5"}, ValueError, r"backbone='resnet5'.*'resnet50'"),
    ({"backbone": "not_a_model"}, ValueError, r"not a torchvision classification model.*"
                                              "resnet18"),
    ({"device": "gpu"}, ValueError, "device='gpu'"),
    ({"weights": 3}, TypeError, "'weights' parameter"),
])
def test_bad_parameters(arrays, params, error, match):
    with pytest.raises(error, match=match):
        extractor(**params).fit(arrays)


@pytest.mark.parametrize("X, y, error, match", [
    (lambda a: a, [0, 1], ValueError, "y has 2 entries but X has 6"),
    (lambda a: a, [4] * 6, ValueError, r"single class \(4\).*at least 2"),
    (lambda a: a, np.zeros((6, 2)), ValueError, r"y must be 1-D, got shape \(6, 2\)"),
    (lambda a: a, [0.0, 1, np.nan, 0, 1, 0], ValueError, "NaN"),
    (lambda a: [a[0], a[1], {"img": 1}], None, TypeError, r"X\[2\] has type dict"),
    (lambda a: [a[0], 3.5], None, TypeError, r"X\[1\] has type float"),
    (lambda a: [a[0], a[1].astype(np.float32)], None, ValueError,
     r"X\[1\] is an array of dtype float32"),
    (lambda a: "image.png", None, TypeError, "single str; wrap it in a list"),
    (lambda a: [], None, ValueError, "X is empty"),
    (lambda a: a.astype(np.float32), None, ValueError, "uint8 of shape"),
    (lambda a: torch.zeros(2, 32, 16, 3), None, ValueError, r"\(N, 3, H, W\)"),
    (lambda a: ["/no/such/image.png"], None, FileNotFoundError,
     r"X\[0\]: no image file at '/no/such/image.png'"),
    (lambda a: 42, None, TypeError, "sequence of images or a tensor, got int"),
])
def test_bad_inputs(arrays, X, y, error, match):
    with pytest.raises(error, match=match):
        extractor().fit(X(arrays), y)


def test_transform_rejects_bad_inputs_too(arrays):
    model = extractor().fit(arrays)
    with pytest.raises(TypeError, match=r"X\[1\] has type NoneType"):
        model.transform([arrays[0], None])


def test_other_torchvision_backbones_lose_their_classifier():
    from sklearn_ecluster.feature_extraction import build_network

    with torch.random.fork_rng():
        for name, dim in (("mobilenet_v3_small", 1024), ("squeezenet1_0", None)):
            if dim is None:
                with pytest.raises(ValueError, match="no Linear classifier"):
                    build_network(name, embedding_dim=8)
                continue
            network = build_network(name, embedding_dim=8).eval()
            with torch.no_grad():
                out = network(torch.zeros(2, 3, 64, 32), output="pool5")
            assert out.shape == (2, dim)


# ------------------------------------------------------------------ GPU
@pytest.mark.gpu
@pytest.mark.parametrize("amp", [False, True])
def test_cuda_fit_transform_and_pickle(arrays, amp, tmp_path):
    model = extractor(device="cuda", amp=amp, epochs=2).fit(arrays, [0, 0, 0, 1, 1, 1])
    assert model.device_.type == "cuda"
    features = model.transform(arrays)
    assert features.dtype == np.float32 and np.isfinite(features).all()
    state = model.__getstate__()
    assert all(t.device.type == "cpu" for t in state["model_"].parameters())
    assert next(model.model_.parameters()).device.type == "cuda"  # original untouched
    loaded = pickle.loads(pickle.dumps(model))
    assert_allclose_float32(loaded.transform(arrays), features,
                            rtol=1e-2 if amp else TF32_RTOL)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cpu = extractor(device="cpu").load_weights(model.save_weights(tmp_path / "w.pth"))
    assert cpu.transform(arrays).shape == features.shape


_LOAD_WITHOUT_CUDA = """
import sys, joblib, numpy as np, torch, warnings
assert not torch.cuda.is_available()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    model = joblib.load(sys.argv[1])
assert any("fitted on CUDA" in str(w.message) for w in caught), caught
assert model.device_ == torch.device("cpu")
np.save(sys.argv[3], model.transform(np.load(sys.argv[2])))
"""


@pytest.mark.gpu
def test_cuda_fitted_extractor_loads_in_a_process_without_cuda(arrays, tmp_path):
    model = extractor(device="cuda", epochs=2).fit(arrays, [0, 0, 0, 1, 1, 1])
    expected = model.transform(arrays)
    joblib.dump(model, tmp_path / "model.joblib")
    np.save(tmp_path / "images.npy", arrays)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run([sys.executable, "-c", _LOAD_WITHOUT_CUDA, str(tmp_path / "model.joblib"),
                    str(tmp_path / "images.npy"), str(tmp_path / "features.npy")],
                   env=env, check=True, timeout=300)
    # CPU float32 against cuDNN's TF32 convolutions (its default)
    assert_allclose_float32(np.load(tmp_path / "features.npy"), expected, rtol=TF32_RTOL)


# ----------------------------------------------------------------------------
# embedding_dim=None: BatchNorm1d over the pooled features, no Linear layer


def test_head_without_linear_is_batchnorm_over_pool5(arrays):
    model = extractor(embedding_dim=None, output="embedding").fit(arrays)
    head = model.model_.head
    assert isinstance(head.linear, nn.Identity)
    assert [name for name, _ in head.named_parameters()] == ["bn.weight", "bn.bias"]
    assert model.n_features_out_ == model.model_.in_features
    pool5 = model.set_params(output="pool5").transform(arrays)
    embedding = model.set_params(output="embedding").transform(arrays)
    # eval-mode BatchNorm with its initial statistics (mean 0, var 1, weight 1,
    # bias 0) is x / sqrt(1 + eps): the normalised embedding is the normalised pool5
    expected = pool5 / np.linalg.norm(pool5, axis=1, keepdims=True)
    np.testing.assert_allclose(embedding, expected, rtol=1e-5, atol=1e-6)


def test_head_without_linear_trains_and_uses_its_statistics(arrays):
    y = np.array([0, 0, 1, 1, 2, 2])
    model = extractor(embedding_dim=None, output="embedding", epochs=2,
                      train_batch_size=6, lr=0.01).fit(arrays, y)
    assert np.isfinite(model.loss_history_).all()
    bn = model.model_.head.bn
    assert int(bn.num_batches_tracked) > 0
    raw = model.set_params(output="pool5", normalize=False).transform(arrays)
    pool5 = raw.astype(np.float64)
    model.set_params(normalize=True)
    # by hand: eval-mode BatchNorm1d with the running statistics, then L2
    mean, var = bn.running_mean.double().numpy(), bn.running_var.double().numpy()
    z = (pool5 - mean) / np.sqrt(var + bn.eps) * bn.weight.detach().double().numpy() \
        + bn.bias.detach().double().numpy()
    expected = z / np.linalg.norm(z, axis=1, keepdims=True)
    embedding = model.set_params(output="embedding").transform(arrays)
    np.testing.assert_allclose(embedding, expected, rtol=1e-4, atol=1e-5)


def test_embedding_dim_none_is_the_contrastive_recipes_head():
    from sklearn_ecluster.self_training import make_recipe

    for name in ("contrastive_dbscan", "contrastive_energy"):
        loop = make_recipe(name)
        assert loop.feature_extractor.embedding_dim is None
        assert loop.feature_extractor.output == "embedding"
    assert make_recipe("ecluster").feature_extractor is None  # the paper's: unchanged
