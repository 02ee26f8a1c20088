"""The estimator: :class:`ReIDFeatureExtractor` validates, builds, trains, extracts."""

import contextlib
import copy
import logging
import os
import warnings
from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, TransformerMixin
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..datasets import build_transforms
from ..utils import get_device
from ..utils._determinism import deterministic_algorithms
from ..utils._distributed import SINGLE, get_world
from ..utils._sklearn import Interval, StrOptions, _fit_context, check_is_fitted
from ..utils._validation import check_int_pair, check_label_vector
from ._batchnorm_statistics import (
    batchnorm_layers,
    recompute_batchnorm_statistics,
    statistics_kept,
)
from ._cluster_memory import LOSSES, init_cluster_memory
from ._inputs import check_images, eval_batches, n_images, train_loader
from ._memory_loss import MEMORY_INITS, init_memory
from ._network import OUTPUTS, build_network, load_into
from ._samplers import PKBatchSampler
from ._stages import freeze
from ._sync_batchnorm import synchronized_batchnorm
from ._training import (
    OPTIMIZERS,
    local_torch_rng,
    make_optimizer,
    make_seeds,
    progress_bar,
    train_epochs,
)
from ._weights import cpu_copy, read_state_dict, write_state_dict

logger = logging.getLogger("sklearn_ecluster")


def _check_labels(y, n):
    """(classes, codes): the distinct labels of ``y`` and each one's index."""
    y = check_label_vector(y, "y", n, what="X", integer=False)
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(
            f"y has a single class ({classes[0].tolist()!r}): the memory softmax loss needs "
            "at least 2 classes (clusters)."
        )
    return classes, codes.astype(np.int64).ravel()


def _drop_outliers(data, y, n, camids):
    """Leave out the images labelled ``-1`` (outliers: trained on by no loss)."""
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n or y.dtype.kind not in "iuf":
        return data, y, camids  # _check_labels reports shape errors
    keep = y != -1
    if keep.all():
        return data, y, camids
    if keep.sum() < 2:
        raise ValueError(f"y labels {int((~keep).sum())} of {n} images -1 (outliers): "
                         "fewer than 2 images are left to train on.")
    index = np.flatnonzero(keep)
    if isinstance(data, torch.Tensor):
        data = data[torch.from_numpy(index)]
    else:
        data = [data[i] for i in index]
    return data, y[keep], None if camids is None else camids[keep]


def _rank_device(device, world):
    """Data-parallel on CUDA: this rank's own GPU (``cuda:LOCAL_RANK``, the current one)."""
    if world.size > 1 and device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


class ReIDFeatureExtractor(TransformerMixin, BaseEstimator):
    """Person images to CNN features, fine-tuned on (pseudo) labels.

    The network of E-cluster and BUC (SPEC 7): a backbone (ResNet-50 by
    default) with its classifier removed, whose global average pool is the
    ``"pool5"`` feature, followed by an embedding head
    ``Linear(D -> embedding_dim) + BatchNorm1d``, L2-normalised, then
    ``Dropout``. :meth:`fit` with labels fine-tunes it with the memory-based
    softmax loss (paper Eq. 2); :meth:`transform` returns features as a NumPy
    array.

    Read more in the :doc:`user guide </user_guide/feature_extraction>`.

    Parameters
    ----------
    backbone : str or torch.nn.Module, default="resnet50"
        A torchvision classification model name (``"resnet18"``,
        ``"resnet50"``, ...; its last ``Linear`` layer is removed), or a module
        that maps ``(N, 3, H, W)`` images to ``(N, D)`` features or to an
        ``(N, C, h, w)`` feature map (averaged). A module is copied in
        :meth:`fit`, never modified.
    weights : str, path-like or None, default=None
        None: random initialisation. A torchvision weight name of the backbone
        (``"IMAGENET1K_V2"``, ``"DEFAULT"``), used only when its file is already
        in the torch hub cache (``torch.hub.get_dir()/checkpoints``; nothing is
        downloaded: a missing file raises :class:`FileNotFoundError` naming the
        path where to put it). Or the path of a state_dict: the backbone's own
        (torchvision layout; the classifier's keys are ignored) or a whole
        network written by :meth:`save_weights`.
    image_size : tuple of (int, int), default=(256, 128)
        Input (height, width); images and tensors are resized to it.
    embedding_dim : int or None, default=2048
        Output size of the head's Linear layer. None: no Linear layer, the
        head is BatchNorm1d over the backbone's pooled features
        (Cluster-Contrast's; the contrastive recipes' choice: a randomly
        initialised projection's gradients degrade the pretrained backbone
        before it learns anything, see the recipes guide).
    dropout : float in [0, 1), default=0.5
        Dropout rate after the L2-normalisation of the head (training only).
    output : {"pool5", "embedding"}, default="pool5"
        The features :meth:`transform` returns: the backbone's global pool
        (what BUC clusters) or the head's normalised embedding.
    normalize : bool, default=True
        L2-normalise the returned features.
    flip : bool, default=False
        Average each image's features with those of its mirror image (before
        normalising).
    batch_size : int, default=64
        Batch size of :meth:`transform` (and of the memory's initial pass).
    train_batch_size : int >= 2, default=16
        Batch size of training.
    epochs : int, default=20
        Training epochs of :meth:`fit` with labels (0: no training).
    lr : float, default=0.1
        Learning rate of the head.
    backbone_lr_mult : float, default=0.1
        The backbone's learning rate is ``lr * backbone_lr_mult``.
    lr_step : int or None, default=15
        Divide the learning rates by 10 every ``lr_step`` epochs; None keeps
        them constant.
    momentum : float, default=0.9
        SGD momentum (Nesterov when > 0).
    weight_decay : float, default=5e-4
        SGD weight decay.
    temperature : float, default=0.1
        Temperature ``tau`` of the memory softmax.
    memory_momentum : float in [0, 1], default=0.5
        ``m`` in the memory update ``V_y <- normalise(m V_y + (1 - m) v)``.
    memory_init : {"mean", "zeros"}, default="mean"
        Initial memory: each cluster's mean embedding (one extraction pass in
        eval mode, L2-normalised), or zeros (BUC's fixed code).
    amp : bool, default=False
        Mixed precision (float16 autocast, gradient scaling) on CUDA; ignored
        on the CPU.
    warm_start : bool, default=False
        When True, a new :meth:`fit` continues from the current network instead
        of building a new one (the memory and the optimiser are always new).
    num_workers : int, default=0
        Worker processes that read and transform images.
    device : str or torch.device, default="auto"
        ``"auto"`` follows a tensor input, else CUDA when available, else CPU.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation, the data order, the augmentation and dropout.
        An int gives the same result on the CPU every time; torch's global RNG
        state is left unchanged.
    verbose : int, default=0
        0 silent; 1 one line per epoch; 2 progress bars (tqdm).
    deterministic : bool, default=False
        Run :meth:`fit` and :meth:`transform` under torch's deterministic mode:
        ``torch.use_deterministic_algorithms(True)``, cuDNN's
        ``deterministic=True`` and ``benchmark=False`` (and
        ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` when unset), the previous global
        settings being restored afterwards. Needed for repeatable runs on CUDA
        (slower there); on the CPU, runs with the same ``random_state`` and
        thread count repeat without it. See the :doc:`reproducibility guide
        </user_guide/reproducibility>`.
    loss : {"memory_softmax", "cluster_contrast"}, default="memory_softmax"
        ``"memory_softmax"``: the paper's Eq. 2 (SPEC 7). ``"cluster_contrast"``:
        Cluster-Contrast's InfoNCE over a memory of cluster centroids
        (:mod:`~sklearn_ecluster.feature_extraction._cluster_memory`): the
        embedding is L2-normalised after the dropout; its own constants are
        ``temperature=0.05`` and ``memory_momentum=0.1`` (set them, or use
        :func:`~sklearn_ecluster.self_training.make_recipe`). Both read
        ``temperature``, ``memory_momentum`` and ``memory_init``.
    sampler : {"random", "pk"}, default="random"
        ``"random"``: shuffled batches of ``train_batch_size`` (SPEC 7).
        ``"pk"``: ``P = train_batch_size // num_instances`` distinct labels x
        ``K = num_instances`` images a batch (camera-balanced when :meth:`fit`
        gets ``camids``), ``iters_per_epoch`` batches an epoch.
    num_instances : int, default=4
        ``K`` of the ``"pk"`` sampler; must divide ``train_batch_size``.
    iters_per_epoch : int or None, default=None
        Batches per epoch of the ``"pk"`` sampler (Cluster-Contrast: 200-400);
        None: ``n_train // train_batch_size``.
    optimizer : {"sgd", "adam"}, default="sgd"
        ``"sgd"``: SGD with ``momentum`` (SPEC 7); ``"adam"``: Adam
        (Cluster-Contrast: ``lr=3.5e-4``, ``weight_decay=5e-4``,
        ``backbone_lr_mult=1``). Both use ``weight_decay`` and the two
        learning-rate groups.
    frozen_stages : int, str or None, default=None
        Freeze the first stages of the backbone: an int ``n`` (the first
        ``n``), a stage name (up to and including it: ``"layer2"`` of a
        ResNet, ``"features.13"`` of a MobileNetV2), or None. Frozen stages
        keep their weights and BatchNorm statistics and need no backward pass
        (much faster training on a CPU). Stage boundaries: ResNets
        ``"conv1"`` (the stem), ``"layer1"``..``"layer4"``; models with a
        ``features`` sequence (MobileNet, EfficientNet, DenseNet, VGG) its
        children ``"features.0"``, ...; any other module its children
        (``"0"``, ``"1"``, ... for an ``nn.Sequential``).
    random_erasing : float in [0, 1], default=0.0
        Probability of random erasing of each training image (after the pad +
        crop and flip; :func:`~sklearn_ecluster.datasets.build_transforms`).
        0 keeps BUC's augmentation (SPEC 7); the contrastive recipes use 0.5
        (SPEC 11).
    distributed : "auto" or bool, default="auto"
        Data-parallel training and extraction over the ranks of a
        ``torch.distributed`` process group (launched by ``torchrun``, see the
        :doc:`multi-GPU guide </user_guide/multi_gpu>`). ``"auto"``: when a
        process group with more than one rank is initialised; True: always
        (a ValueError without a process group); False: never (each process
        works alone). Data-parallel, :meth:`fit` and :meth:`transform` are
        collective: every rank calls them with the same arguments. Each rank
        trains on its slice of every global batch of ``train_batch_size``
        images (DistributedDataParallel) and extracts a contiguous part of
        the images, gathered in order on every rank. A single process is
        unaffected.
    sync_bn : bool, default=True
        Data-parallel only: BatchNorm layers in train mode normalise with the
        statistics of the global batch (synchronised BatchNorm), so that a
        step equals the single-process step on the same global batch; False
        keeps each rank's own batch statistics (faster; the running
        statistics are then rank 0's).
    bn_statistics : {"running", "recomputed", "pretrained"}, default="running"
        The mean and variance the BatchNorm layers outside the frozen stages
        normalise with. ``"running"``: torch's exponential average over the
        training batches (and, without training, the weights' own).
        ``"recomputed"``: at the end of every :meth:`fit`, set to the mean
        and unbiased variance of each layer's inputs over *all* the images
        ``X`` (outliers labelled -1 included), read with the evaluation
        transform (precise BN; without labels, AdaBN): the statistics of the
        images the features are extracted from, not of the augmented subset
        that was trained on. ``"pretrained"``: the backbone's BatchNorm
        layers keep the statistics of the weights they were loaded with
        (training still normalises each batch by its own statistics, but
        does not update them), and only the head's BatchNorm is recomputed
        on ``X`` as with ``"recomputed"``: for few training images of one
        domain, whose statistics normalise a pretrained backbone worse than
        those of its pretraining set (measured in the recipes guide; meant
        for pretrained ``weights``). The last two need at least two images
        and make one more pass over ``X``.

    Attributes
    ----------
    model_ : torch.nn.Module
        The network (a ``ReIDNetwork``: ``backbone`` + ``head``), in eval mode,
        on ``device_``.
    device_ : torch.device
        Where the network lives.
    n_features_out_ : int
        Dimension of the features :meth:`transform` returns.
    loss_history_ : list of float
        Mean loss of each training epoch (empty without labels).
    n_iter_ : int
        Epochs run by the last :meth:`fit`.
    classes_ : ndarray of shape (n_classes,)
        The distinct labels of the last :meth:`fit` with labels; label
        ``classes_[k]`` is row ``k`` of the memory.
    world_size_ : int
        Processes that ran the last :meth:`fit` together (1 in a single
        process; the ``torch.distributed`` world size when data-parallel).

    See Also
    --------
    sklearn_ecluster.cluster.EnergyAgglomerative : clusters the features.
    sklearn_ecluster.datasets.build_transforms : the image transforms used.

    Notes
    -----
    **Which features.** BUC clusters the L2-normalised pool5 output computed
    in eval mode, hence ``output="pool5"`` and ``normalize=True`` by default;
    training always uses the embedding (the memory loss is defined on it).

    **Memory updates.** The logits of a batch use the memory as it was before
    the batch; then each sample updates its label's row in batch order, so
    two samples of one label in a batch update it twice, the second on top of
    the first (as BUC's code does). The memory is rebuilt at every :meth:`fit`.

    **Inputs.** ``X`` is a sequence of image paths, PIL images, uint8 arrays
    ``(H, W, 3)`` or float tensors ``(3, H, W)`` (types may be mixed), a uint8
    array ``(N, H, W, 3)``, or a float tensor ``(N, 3, H, W)`` already
    normalised with ImageNet's mean and std (only resized), or a
    :class:`~sklearn_ecluster.datasets.ReIDImageDataset` (its image files, read
    with this extractor's transforms; its labels are not read). Features are
    float32 NumPy arrays whatever the input.

    **Persistence.** Pickling (and :func:`joblib.dump`) stores the network on
    the CPU: an extractor fitted on CUDA unpickles on a machine without CUDA,
    with ``device_`` set to the CPU (and a warning). :meth:`save_weights` /
    :meth:`load_weights` write and read a plain state_dict.

    **Reproducibility.** With an int ``random_state`` two fits on the CPU
    with the same thread count give the same network, bit for bit, whatever
    ``num_workers`` (the workers are seeded from ``random_state``; a run with
    workers draws other augmentations than one without). On CUDA, cuDNN and
    atomic additions may be non-deterministic: set ``deterministic=True``.
    Another CPU kind or thread count rounds float32 sums differently, and
    training amplifies the difference (see the reproducibility guide).

    Examples
    --------
    >>> import numpy as np
    >>> from torch import nn
    >>> from sklearn_ecluster.feature_extraction import ReIDFeatureExtractor
    >>> rng = np.random.default_rng(0)
    >>> images = rng.integers(0, 256, size=(6, 32, 16, 3), dtype=np.uint8)
    >>> tiny = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    >>> extractor = ReIDFeatureExtractor(tiny, image_size=(32, 16), embedding_dim=16,
    ...                                  epochs=2, device="cpu", random_state=0)
    >>> features = extractor.fit(images, [0, 0, 0, 1, 1, 1]).transform(images)
    >>> features.shape, features.dtype
    ((6, 8), dtype('float32'))
    >>> bool(np.allclose(np.linalg.norm(features, axis=1), 1.0))
    True
    >>> len(extractor.loss_history_), extractor.classes_
    (2, array([0, 1]))
    """

    _parameter_constraints = {
        "backbone": [str, nn.Module],
        "weights": [str, os.PathLike, None],
        "image_size": [tuple, list],
        "embedding_dim": [Interval(Integral, 1, None, closed="left"), None],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "output": [StrOptions(set(OUTPUTS))],
        "normalize": ["boolean"],
        "flip": ["boolean"],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "train_batch_size": [Interval(Integral, 2, None, closed="left")],
        "epochs": [Interval(Integral, 0, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "backbone_lr_mult": [Interval(Real, 0, None, closed="left")],
        "lr_step": [Interval(Integral, 1, None, closed="left"), None],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "memory_momentum": [Interval(Real, 0, 1, closed="both")],
        "memory_init": [StrOptions(set(MEMORY_INITS))],
        "amp": ["boolean"],
        "warm_start": ["boolean"],
        "num_workers": [Interval(Integral, 0, None, closed="left")],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "deterministic": ["boolean"],
        "loss": [StrOptions(set(LOSSES))],
        "sampler": [StrOptions({"random", "pk"})],
        "num_instances": [Interval(Integral, 1, None, closed="left")],
        "iters_per_epoch": [Interval(Integral, 1, None, closed="left"), None],
        "optimizer": [StrOptions(set(OPTIMIZERS))],
        "frozen_stages": [Interval(Integral, 0, None, closed="left"), str, None],
        "random_erasing": [Interval(Real, 0, 1, closed="both")],
        "distributed": [StrOptions({"auto"}), "boolean"],
        "sync_bn": ["boolean"],
        "bn_statistics": [StrOptions({"running", "recomputed", "pretrained"})],
    }

    def __init__(
        self,
        backbone="resnet50",
        *,
        weights=None,
        image_size=(256, 128),
        embedding_dim=2048,
        dropout=0.5,
        output="pool5",
        normalize=True,
        flip=False,
        batch_size=64,
        train_batch_size=16,
        epochs=20,
        lr=0.1,
        backbone_lr_mult=0.1,
        lr_step=15,
        momentum=0.9,
        weight_decay=5e-4,
        temperature=0.1,
        memory_momentum=0.5,
        memory_init="mean",
        amp=False,
        warm_start=False,
        num_workers=0,
        device="auto",
        random_state=None,
        verbose=0,
        deterministic=False,
        loss="memory_softmax",
        sampler="random",
        num_instances=4,
        iters_per_epoch=None,
        optimizer="sgd",
        frozen_stages=None,
        random_erasing=0.0,
        distributed="auto",
        sync_bn=True,
        bn_statistics="running",
    ):
        self.backbone = backbone
        self.weights = weights
        self.image_size = image_size
        self.embedding_dim = embedding_dim
        self.dropout = dropout
        self.output = output
        self.normalize = normalize
        self.flip = flip
        self.batch_size = batch_size
        self.train_batch_size = train_batch_size
        self.epochs = epochs
        self.lr = lr
        self.backbone_lr_mult = backbone_lr_mult
        self.lr_step = lr_step
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.temperature = temperature
        self.memory_momentum = memory_momentum
        self.memory_init = memory_init
        self.amp = amp
        self.warm_start = warm_start
        self.num_workers = num_workers
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.deterministic = deterministic
        self.loss = loss
        self.sampler = sampler
        self.num_instances = num_instances
        self.iters_per_epoch = iters_per_epoch
        self.optimizer = optimizer
        self.frozen_stages = frozen_stages
        self.random_erasing = random_erasing
        self.distributed = distributed
        self.sync_bn = sync_bn
        self.bn_statistics = bn_statistics

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, *, camids=None):
        """Build the network and, given labels, fine-tune it on them.

        Parameters
        ----------
        X : sequence of images, uint8 array (N, H, W, 3) or tensor (N, 3, H, W)
            Training images; see the Notes of the class for the accepted forms.
        y : array-like of shape (n_images,), default=None
            (Pseudo) labels: any values, at least two distinct ones; remapped
            to ``0..K-1`` internally (``classes_``). The label ``-1`` marks an
            outlier: that image is not trained on. None only builds the
            network (no training; with ``bn_statistics`` other than
            ``"running"`` its BatchNorm statistics are then set from ``X``).
        camids : array-like of shape (n_images,), default=None
            Camera ids; the ``"pk"`` sampler then balances each label's images
            over its cameras. Ignored by the ``"random"`` sampler.

        Returns
        -------
        self : ReIDFeatureExtractor
        """
        image_size = check_int_pair(self.image_size, "image_size")
        data = check_images(X)
        n = n_images(data)
        if camids is not None:
            camids = check_label_vector(camids, "camids", n, what="X")
        if self.bn_statistics != "running" and n < 2:
            raise ValueError(f"bn_statistics={self.bn_statistics!r} needs at least 2 "
                             f"images in X, got {n}: one image has no variance.")
        all_data = data
        if y is not None:
            data, y, camids = _drop_outliers(data, y, n, camids)
        labels = None if y is None else _check_labels(y, n_images(data))
        if self.sampler == "pk" and self.train_batch_size % self.num_instances:
            raise ValueError(
                f"train_batch_size={self.train_batch_size} must be a multiple of "
                f"num_instances={self.num_instances} with sampler='pk' (P x K batches)."
            )
        world = get_world(self.distributed)
        device = _rank_device(get_device(self.device, X), world)
        # one data order for all ranks: rank 0's seeds (None draws OS entropy)
        order_seed, rng_seed = world.broadcast(make_seeds(self.random_state))
        with deterministic_algorithms(self.deterministic), local_torch_rng(rng_seed, device):
            if not (self.warm_start and hasattr(self, "model_")):
                self.model_ = self._build_network(image_size)
            freeze(self.model_, self.frozen_stages)
            self.model_.to(device).eval()
            self.device_ = device
            self.n_features_out_ = self.model_.out_features(self.output)
            self.world_size_ = world.size
            history = []
            if labels is None:
                if hasattr(self, "classes_"):
                    del self.classes_  # a second fit overwrites the first
            else:
                self.classes_, codes = labels
                kept = batchnorm_layers(self.model_) if self.bn_statistics == "pretrained" \
                    else []
                if self.epochs > 0:
                    with statistics_kept(kept):
                        history = self._train(data, codes, image_size, order_seed, camids,
                                              world=world, rng_seed=rng_seed)
            if self.bn_statistics != "running":
                layers = batchnorm_layers(self.model_,
                                          backbone=self.bn_statistics == "recomputed")
                recompute_batchnorm_statistics(
                    layers, self.model_, all_data, build_transforms(image_size),
                    image_size, batch_size=self.batch_size, device=device,
                    num_workers=self.num_workers, world=world)
        self.loss_history_ = history
        self.n_iter_ = len(history)
        return self

    def _build_network(self, image_size):
        backbone = self.backbone
        if isinstance(backbone, nn.Module):
            backbone = copy.deepcopy(backbone)  # the parameter itself stays untouched
        network = build_network(backbone, weights=self.weights,
                                embedding_dim=self.embedding_dim, dropout=self.dropout,
                                image_size=image_size)
        if self.weights is not None:
            logger.info("ReIDFeatureExtractor: loaded weights %s", self.weights)
        return network

    def _train(self, data, codes, image_size, order_seed, camids=None, *, world,
               rng_seed):
        device = self.device_
        n_classes = int(codes.max()) + 1
        labels = torch.from_numpy(codes).to(device)
        if self.memory_init == "mean":
            features = self._extract(data, image_size, output="embedding",
                                     normalize=False, flip=False, world=world)
            init = init_cluster_memory if self.loss == "cluster_contrast" else init_memory
            memory = init(torch.from_numpy(features).to(device), labels, n_classes)
        else:
            memory = torch.zeros(n_classes, self.model_.out_features("embedding"),
                                 device=device)
        generator = torch.Generator().manual_seed(order_seed)
        batch_sampler = None
        if self.sampler == "pk":
            batch_sampler = PKBatchSampler(codes, self.num_instances, self.train_batch_size,
                                           self.iters_per_epoch, camids, seed=order_seed)
        loader = train_loader(
            data, codes, build_transforms(image_size, train=True,
                                          erasing_prob=self.random_erasing),
            batch_size=self.train_batch_size, generator=generator, device=device,
            num_workers=self.num_workers, batch_sampler=batch_sampler, world=world,
        )
        optimizer = make_optimizer(self.model_, lr=self.lr,
                                   backbone_lr_mult=self.backbone_lr_mult,
                                   momentum=self.momentum, weight_decay=self.weight_decay,
                                   kind=self.optimizer)
        if world.size == 1:
            return train_epochs(
                self.model_, loader, memory, optimizer, epochs=self.epochs, lr=self.lr,
                lr_step=self.lr_step, temperature=self.temperature,
                memory_momentum=self.memory_momentum, device=device, amp=self.amp,
                verbose=self.verbose, loss=self.loss,
            )
        if world.rank > 0:
            # augmentation and dropout: each rank its own stream (rank 0 keeps the
            # single-process one); the initial weights were drawn alike on all ranks
            seed = int(np.random.SeedSequence([rng_seed, world.rank]).generate_state(1)[0])
            torch.default_generator.manual_seed(seed)
            if device.type == "cuda":
                torch.cuda.manual_seed(seed)
        bn = synchronized_batchnorm(self.model_, world, device) if self.sync_bn else \
            contextlib.nullcontext(self.model_)
        with bn as network:
            ids = [device.index] if device.type == "cuda" else None
            parallel = DistributedDataParallel(network, device_ids=ids)
            try:
                return train_epochs(
                    parallel, loader, memory, optimizer, epochs=self.epochs, lr=self.lr,
                    lr_step=self.lr_step, temperature=self.temperature,
                    memory_momentum=self.memory_momentum, device=device, amp=self.amp,
                    verbose=self.verbose, loss=self.loss, world=world,
                )
            finally:
                del parallel  # its hooks and buckets; the module itself is kept

    # ------------------------------------------------------------ transform
    def transform(self, X):
        """Extract features of images with the network in eval mode.

        Parameters
        ----------
        X : sequence of images, uint8 array (N, H, W, 3) or tensor (N, 3, H, W)
            See the Notes of the class for the accepted forms.

        Returns
        -------
        features : ndarray of shape (n_images, n_features), dtype float32
            ``output`` features (``n_features = n_features_out_``), averaged
            with the mirror image's when ``flip``, L2-normalised when
            ``normalize``.
        """
        check_is_fitted(self)
        image_size = check_int_pair(self.image_size, "image_size")
        data = check_images(X)
        world = get_world(self.distributed)
        with deterministic_algorithms(self.deterministic):
            return self._extract(data, image_size, output=self.output,
                                 normalize=self.normalize, flip=self.flip, world=world)

    def _extract(self, data, image_size, *, output, normalize, flip, world):
        """Features of ``data``; data-parallel, each rank's contiguous part, gathered."""
        model, device = self.model_, self.device_
        if world.size > 1:
            start, stop = world.shard(n_images(data))
            part = self._extract(data[start:stop], image_size, output=output,
                                 normalize=normalize, flip=flip, world=SINGLE)
            gathered = world.gather_rows(torch.from_numpy(part).to(device))
            return gathered.cpu().numpy()
        use_amp = self.amp and device.type == "cuda"
        n = n_images(data)
        out = np.empty((n, model.out_features(output)), dtype=np.float32)
        batches = eval_batches(data, build_transforms(image_size), image_size,
                               batch_size=self.batch_size, device=device,
                               num_workers=self.num_workers)
        bar = progress_bar(self.verbose, -(-n // self.batch_size), "features",
                           get_world(self.distributed))
        was_training = model.training
        model.eval()
        start = 0
        try:
            with torch.inference_mode(), torch.autocast(
                    device.type, dtype=torch.float16, enabled=use_amp):
                for x in batches:
                    f = model(x, output=output).float()
                    if flip:
                        f = (f + model(x.flip(3), output=output).float()) / 2
                    if normalize:
                        f = F.normalize(f, dim=1)
                    out[start:start + len(f)] = f.cpu().numpy()
                    start += len(f)
                    if bar is not None:
                        bar.update(1)
        finally:
            model.train(was_training)
            if bar is not None:
                bar.close()
        return out

    # ---------------------------------------------------------- persistence
    def save_weights(self, path):
        """Write the network's state_dict to ``path`` (atomically, CPU tensors).

        Parameters
        ----------
        path : str or path-like
            Destination file; a temporary file in the same folder is written
            and renamed over it, so an interrupted save leaves the old file.

        Returns
        -------
        path : pathlib.Path
            The file written.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> from torch import nn
        >>> from sklearn_ecluster.feature_extraction import ReIDFeatureExtractor
        >>> images = np.zeros((2, 32, 16, 3), dtype=np.uint8)
        >>> def make(seed):
        ...     return ReIDFeatureExtractor(nn.Conv2d(3, 4, 3), image_size=(32, 16),
        ...                                 embedding_dim=8, device="cpu",
        ...                                 random_state=seed)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = make(0).fit(images).save_weights(os.path.join(tmp, "w.pth"))
        ...     loaded = make(1).load_weights(path)  # built, then overwritten
        >>> sorted(loaded.model_.state_dict())[:2]
        ['backbone.bias', 'backbone.weight']
        """
        check_is_fitted(self)
        state = {k: v.detach().cpu() for k, v in self.model_.state_dict().items()}
        return write_state_dict(state, path)

    def load_weights(self, path, *, strict=True):
        """Load a state_dict written by :meth:`save_weights` into the network.

        An unfitted extractor first builds its network (as :meth:`fit` without
        labels does). Keys with DataParallel's ``module.`` prefix are accepted.
        The file is read with ``torch.load(weights_only=True)``.

        Parameters
        ----------
        path : str or path-like
            The state_dict file.
        strict : bool, default=True
            Missing or unexpected keys raise :class:`ValueError` when True and
            give a :class:`UserWarning` (the matching keys are loaded) when
            False.

        Returns
        -------
        self : ReIDFeatureExtractor
        """
        state = read_state_dict(path)
        if not any(k.startswith(("backbone.", "head.")) for k in state):
            raise ValueError(
                f"{path} holds no network state_dict (no 'backbone.' or 'head.' keys); "
                "a backbone's own state_dict is loaded with weights=path instead."
            )
        if not hasattr(self, "model_"):
            self._validate_params()
            image_size = check_int_pair(self.image_size, "image_size")
            device = get_device(self.device)
            with local_torch_rng(make_seeds(self.random_state)[1], device):
                self.model_ = self._build_network(image_size).to(device).eval()
            self.device_ = device
            self.n_features_out_ = self.model_.out_features(self.output)
            self.loss_history_, self.n_iter_, self.world_size_ = [], 0, 1
        load_into(self.model_, state, strict=strict, source=f"weights file {path}")
        return self

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: never touch self.__dict__
        for key, value in state.items():
            if isinstance(value, nn.Module):
                state[key] = cpu_copy(value)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "model_" not in self.__dict__:
            return
        device = self.device_
        if device.type == "cuda" and not torch.cuda.is_available():
            warnings.warn(
                "This ReIDFeatureExtractor was fitted on CUDA, which is not available "
                "here: its network is loaded on the CPU.", UserWarning, stacklevel=2,
            )
            self.device_ = torch.device("cpu")
        self.model_.to(self.device_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.input_tags.string = True
        tags.target_tags.required = False
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
