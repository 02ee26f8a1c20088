"""One job, run alone (``python _ddp_worker.py OUT``) or by torchrun on 2 ranks.

tests/test_distributed.py compares the two. The random augmentations are made
deterministic here (no padding, no flip): each rank draws its own augmentation
stream (the single-process stream cannot be split by rank), so only with a
deterministic augmentation can a data-parallel step be compared with the
single-process step on the same global batch. Dropout is 0 for the same reason.

Every rank writes ``OUT/rank{r}.pkl``; ``OUT/writes.txt`` logs the rank of each
checkpoint write.
"""

import functools
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.base import clone
from torch import nn

torch.set_num_threads(1)  # the same float32 sums in both runs

import sklearn_ecluster.feature_extraction._extractor as extractor_module  # noqa: E402
import sklearn_ecluster.self_training._loop as loop_module  # noqa: E402
from sklearn_ecluster import (  # noqa: E402
    EnergyAgglomerative,
    ReIDFeatureExtractor,
    SelfTrainingReID,
)
from sklearn_ecluster.datasets import build_transforms  # noqa: E402
from sklearn_ecluster.utils import get_world, init_distributed  # noqa: E402
from sklearn_ecluster.utils._distributed import close_distributed  # noqa: E402

SIZE = (32, 16)


class Interrupted(Exception):
    """Raised by a callback to stop a run after its first round's checkpoint."""


def _images(n, seed=0, n_ids=5):
    rng = np.random.default_rng(seed)
    ids = np.arange(n) % n_ids
    base = rng.integers(0, 256, size=(n_ids, 1, 1, 3))
    noise = rng.normal(0, 40, size=(n, *SIZE, 3))
    return np.clip(base[ids] + noise, 0, 255).astype(np.uint8), ids


def _backbone(bias=True):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 8, 3, bias=bias), nn.BatchNorm2d(8), nn.ReLU())


def _state(extractor):
    return {k: v.detach().clone() for k, v in extractor.model_.state_dict().items()}


def _fit_extractors(X, y):
    out = {}
    # BUC's recipe (SGD, random batches): 43 images in batches of 8, the last
    # one of 3 split 2 + 1 over the ranks
    random = ReIDFeatureExtractor(
        _backbone(), image_size=SIZE, embedding_dim=8, dropout=0.0, epochs=2,
        train_batch_size=8, batch_size=7, lr=0.01, device="cpu", random_state=0,
    ).fit(X, y)
    out["random"] = (_state(random), random.loss_history_, random.transform(X),
                     random.world_size_)
    # the contrastive recipe (P x K batches, InfoNCE, Adam, BatchNorm head)
    pk = ReIDFeatureExtractor(
        _backbone(bias=False), image_size=SIZE, embedding_dim=None, dropout=0.0,
        epochs=2, loss="cluster_contrast", temperature=0.05, memory_momentum=0.1,
        sampler="pk", train_batch_size=8, num_instances=4, iters_per_epoch=3,
        optimizer="adam", lr=3.5e-4, backbone_lr_mult=1.0, output="embedding",
        device="cpu", random_state=0,
    ).fit(X, y)
    out["pk"] = (_state(pk), pk.loss_history_, pk.transform(X), pk.world_size_)
    # the same with the backbone's BatchNorm statistics kept and the head's
    # recomputed on all 43 images: each rank reads its part, the sums added
    kept = clone(pk).set_params(bn_statistics="pretrained", batch_size=7).fit(X, y)
    out["pretrained_bn"] = (_state(kept), kept.loss_history_, kept.transform(X),
                            kept.world_size_)
    return out


def _loop(checkpoint_dir, callback=None):
    extractor = ReIDFeatureExtractor(
        _backbone(), image_size=SIZE, embedding_dim=8, dropout=0.0, epochs=1,
        train_batch_size=8, batch_size=16, lr=0.01, device="cpu")
    return SelfTrainingReID(extractor, EnergyAgglomerative(device="cpu"),
                            merge_percent=0.2, n_rounds=3, later_lr=0.01,
                            random_state=0, checkpoint_dir=checkpoint_dir,
                            callback=callback)


def _loop_result(loop, X):
    history = [{k: v for k, v in h.items() if not k.endswith("seconds")}
               for h in loop.history_]
    return {"history": history, "labels": loop.labels_,
            "state": _state(loop.feature_extractor_), "features": loop.transform(X),
            "world_size": loop.world_size_}


def run(out):
    out = Path(out)
    world = get_world()
    X, y = _images(43)
    result = {"rank": world.rank, "size": world.size}
    result["extractors"] = _fit_extractors(X, y)
    # gather_rows: rows of each rank in rank order, ranks of other sizes
    start, stop = world.shard(7)
    result["gathered"] = world.gather_rows(torch.arange(start, stop)).tolist()

    evaluation = (list(X[:10]), y[:10], np.zeros(10, int), list(X[10:30]), y[10:30],
                  np.ones(20, int))
    Xl = X[:30]
    result["loop"] = _loop_result(
        _loop(out / "ckpt_full").fit(Xl, y[:30], eval_set=evaluation), Xl)

    def stop_at_round_1(loop, record, labels):
        if record["round"] == 1:
            raise Interrupted("stopped after round 1")

    try:
        _loop(out / "ckpt_resumed", stop_at_round_1).fit(Xl, y[:30], eval_set=evaluation)
        result["interrupted"] = None
    except Interrupted as exc:  # every rank: rank 0's callback raised it
        result["interrupted"] = str(exc)
    result["resumed"] = _loop_result(
        _loop(out / "ckpt_resumed").fit(Xl, y[:30], eval_set=evaluation), Xl)
    with open(out / f"rank{world.rank}.pkl", "wb") as fh:
        pickle.dump(result, fh)


def _log_writes(out, write):
    @functools.wraps(write)
    def logged(*args, **kwargs):
        with open(Path(out) / "writes.txt", "a") as fh:
            fh.write(f"{get_world().rank}\n")
        return write(*args, **kwargs)

    return logged


if __name__ == "__main__":
    target = sys.argv[1]
    extractor_module.build_transforms = functools.partial(build_transforms, pad=0,
                                                          flip_prob=0.0)
    loop_module.write_checkpoint = _log_writes(target, loop_module.write_checkpoint)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        init_distributed(device="cpu", timeout=60)
    try:
        run(target)
        get_world().barrier()  # both ranks' results written
    finally:
        # leave the group before exiting: a rank that exits with gloo's threads
        # still running can abort ("terminate called without an active
        # exception"), and torchrun then stops the other one mid-write
        close_distributed()
