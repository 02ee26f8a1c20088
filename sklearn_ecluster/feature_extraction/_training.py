"""Fine-tuning on (pseudo) labels: optimiser, schedule, RNG handling, the epoch loop.

SPEC 7 (BUC's recipe): SGD with Nesterov momentum 0.9 and weight decay 5e-4;
the backbone's learning rate is the head's times ``backbone_lr_mult`` (0.1);
the learning rate is divided by 10 every ``lr_step`` epochs. The loss and the
memory update are in :mod:`._memory_loss`.
"""

import contextlib
import logging
import time

import numpy as np
import torch

from ..utils._distributed import SINGLE
from ._cluster_memory import LOSSES

logger = logging.getLogger("sklearn_ecluster")


def make_seeds(random_state):
    """Two 32-bit seeds (data order, global torch RNG) from ``random_state``.

    None draws fresh entropy from the OS, leaving NumPy's global RNG alone; an
    int gives the same seeds every time; a RandomState instance is drawn from.
    """
    if random_state is None:
        entropy = None
    elif isinstance(random_state, np.random.RandomState):
        entropy = int(random_state.randint(np.iinfo(np.int32).max))
    else:
        entropy = int(random_state)
    order, rng = np.random.SeedSequence(entropy).generate_state(2)
    return int(order), int(rng)


@contextlib.contextmanager
def local_torch_rng(seed, device):
    """Seed torch's global RNG (CPU and ``device``) and restore it on exit.

    Dropout, torchvision's random augmentations and the random initialisation
    of the modules draw from the global RNG (they take no generator); forking
    it makes them reproducible without changing the caller's RNG state.
    """
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.default_generator.manual_seed(seed)
        for index in devices:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        yield


OPTIMIZERS = ("sgd", "adam")


def make_optimizer(network, *, lr, backbone_lr_mult, momentum, weight_decay,
                   kind="sgd"):
    """SGD (or Adam) over two groups: the backbone (lr x mult) and the head (lr).

    Frozen parameters (``requires_grad`` False) are left out. ``momentum`` is
    SGD's (Nesterov when > 0); Adam keeps its default betas (Cluster-Contrast).
    """
    groups = [
        {"params": [p for p in network.backbone.parameters() if p.requires_grad],
         "lr_mult": backbone_lr_mult},
        {"params": [p for p in network.head.parameters() if p.requires_grad],
         "lr_mult": 1.0},
    ]
    groups = [g for g in groups if g["params"]]
    if kind == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
    optimizer = torch.optim.SGD(groups, lr=lr, momentum=momentum,
                                nesterov=momentum > 0, weight_decay=weight_decay)
    return optimizer


def learning_rate(epoch, lr, lr_step):
    """The head's learning rate at ``epoch`` (0-based): step decay by 10."""
    return lr if lr_step is None else lr * 0.1 ** (epoch // lr_step)


def progress_bar(verbose, total, desc, world=SINGLE):
    if verbose < 2 or not world.is_main:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is an optional extra
        return None
    return tqdm(total=total, desc=desc, unit="batch", leave=False)


def train_epochs(network, loader, memory, optimizer, *, epochs, lr, lr_step,
                 temperature, memory_momentum, device, amp=False, verbose=0,
                 name="ReIDFeatureExtractor", loss="memory_softmax", world=SINGLE):
    """Run ``epochs`` epochs of the memory ``loss``; return per-epoch mean losses.

    Per batch: embeddings in train mode (dropout on), loss against the memory
    as it is, one SGD step, then the memory update with the batch's detached
    embeddings. With ``amp`` on CUDA, the forward pass runs under float16
    autocast with gradient scaling; the loss and the memory stay float32.

    Data-parallel (``world.size > 1``, ``network`` wrapped in
    DistributedDataParallel, ``loader`` yielding this rank's slice of each
    global batch): the embeddings and labels of the step are gathered in
    rank order (the global batch, in its order) and every rank applies the
    same memory update, the single-process one. The local mean loss is
    weighted by ``world.size * local / global`` batch sizes, so that the
    gradients that DistributedDataParallel averages are those of the mean
    over the global batch even when the slices differ in size. The epoch's
    mean loss is summed over the ranks.
    """
    loss_fn, update_fn = LOSSES[loss]
    use_amp = bool(amp) and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    history = []
    for epoch in range(epochs):
        rate = learning_rate(epoch, lr, lr_step)
        for group in optimizer.param_groups:
            group["lr"] = rate * group["lr_mult"]
        network.train()
        start = time.perf_counter()
        total = torch.zeros((), device=device)  # summed on the device: no sync per batch
        count = 0
        bar = progress_bar(verbose, len(loader), f"epoch {epoch + 1}/{epochs}", world)
        for images, labels in loader:
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                features = network(images, output="embedding")
            features = features.float()
            value = loss_fn(features, labels, memory, temperature)
            objective = value
            batch_features, batch_labels = features.detach(), labels
            if world.size > 1:  # the global batch, in order, for the memory update
                batch_features = world.gather_rows(batch_features)
                batch_labels = world.gather_rows(labels)
                objective = value * (world.size * labels.shape[0] / batch_labels.shape[0])
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(objective).backward()
            scaler.step(optimizer)
            scaler.update()
            update_fn(memory, batch_features, batch_labels, memory_momentum)
            total += value.detach() * labels.shape[0]
            count += labels.shape[0]
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        if world.size > 1:
            sums = world.all_sum(torch.stack([total.double(),
                                              total.new_tensor(count, dtype=torch.float64)]))
            total, count = sums[0], int(sums[1])
        mean_loss = float(total) / max(count, 1)
        history.append(mean_loss)
        seconds = time.perf_counter() - start
        logger.debug("%s epoch %d/%d: loss %.4f, lr %.3g, %.2f s", name, epoch + 1,
                     epochs, mean_loss, rate, seconds)
        if verbose and world.is_main:
            print(f"[{name}] epoch {epoch + 1}/{epochs}: loss {mean_loss:.4f}, "
                  f"lr {rate:.3g}, {seconds:.2f} s")
    network.eval()
    return history
