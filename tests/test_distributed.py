"""Data-parallel runs (torch.distributed, 2 ranks on gloo) against the single process.

The multi-process tests launch real jobs: ``torchrun`` (``python -m
torch.distributed.run``) on 2 CPU processes, and plain processes for the
killed-rank case. Tolerances: a data-parallel step sums the same float32
terms in another order (each rank's half of the batch, then the all-reduce;
BatchNorm statistics in float64), a relative difference of about 1e-7 per
step; over the few (6-10) SGD / Adam steps of these fits at small learning
rates the measured weight difference is below 1e-5 (about 1e-6 for SGD,
5e-6 for Adam), hence ``atol=5e-5``. Ranks agree with each other bit for bit.
"""

import json
import os
import pickle
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import BatchSampler, RandomSampler

from sklearn_ecluster import ReIDFeatureExtractor
from sklearn_ecluster.cli import main
from sklearn_ecluster.feature_extraction._samplers import PKBatchSampler
from sklearn_ecluster.feature_extraction._sync_batchnorm import (
    SyncBatchNorm,
    synchronized_batchnorm,
)
from sklearn_ecluster.utils import get_world, init_distributed, launched_by_torchrun
from sklearn_ecluster.utils._distributed import (
    SINGLE,
    TIMEOUT_ENV,
    ShardedBatchSampler,
    World,
    collective_timeout,
)

WORKER = Path(__file__).with_name("_ddp_worker.py")
ATOL = 5e-5  # see the module docstring
# The loop's round loss (memory softmax of the worker's 8-d unit embeddings,
# temperature T) from features and memory rows that differ by at most ATOL a
# component: each logit moves by at most 2 sqrt(8) ATOL / T and the mean
# cross-entropy by at most twice that (its gradient in the logits has an L1
# norm <= 2). Measured: 1.2e-4 on one Xeon, below 1e-5 on another.
LOSS_ATOL = 4 * np.sqrt(8) * ATOL / ReIDFeatureExtractor().temperature


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", **extra)
    return env


def _torchrun(*args, timeout=240, **kw):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), *args]
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True,
                          timeout=timeout, **kw)


# --------------------------------------------------------------- one process
def _pk_sampler():
    labels = np.repeat(np.arange(6), 5)
    return PKBatchSampler(labels, n_instances=4, batch_size=12, n_batches=5, seed=3)


def _random_sampler():
    gen = torch.Generator().manual_seed(3)
    return BatchSampler(RandomSampler(range(23), generator=gen), 8, drop_last=False)


@pytest.mark.parametrize("make", [_pk_sampler, _random_sampler])
@pytest.mark.parametrize("size", [2, 3])
def test_sharded_sampler_slices_are_the_single_process_batches(make, size):
    single = [list(b) for b in make()]
    ranks = [list(ShardedBatchSampler(make(), World(rank=r, size=size)))
             for r in range(size)]
    assert all(len(r) == len(single) for r in ranks)
    for step, batch in enumerate(single):
        # in rank order, the slices are the global batch, in its order
        assert sum((r[step] for r in ranks), []) == batch
        assert max(len(r[step]) for r in ranks) - min(len(r[step]) for r in ranks) <= 1
    assert [len(ShardedBatchSampler(make(), World(0, size)))] == [len(single)]


def test_sharded_sampler_skips_a_batch_smaller_than_the_world():
    gen = torch.Generator().manual_seed(0)
    batches = BatchSampler(RandomSampler(range(9), generator=gen), 4, drop_last=False)
    sharded = ShardedBatchSampler(batches, World(rank=1, size=2))
    assert len(sharded) == 2 and len(list(sharded)) == 2  # the last batch of 1: skipped


def test_shards_cover_the_items_in_order():
    for n, size in [(10, 3), (2, 4), (0, 2), (43, 2)]:
        bounds = [World(rank=r, size=size).shard(n) for r in range(size)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))


def test_single_world_collectives_do_nothing():
    assert get_world() is SINGLE and get_world(False) is SINGLE
    t = torch.arange(3)
    assert SINGLE.gather_rows(t) is t and SINGLE.all_sum(t) is t
    assert SINGLE.broadcast({"a": 1}) == {"a": 1}
    assert SINGLE.on_main(lambda x: x + 1, 1) == 2
    assert not launched_by_torchrun()


def test_errors_name_what_is_wrong(monkeypatch):
    with pytest.raises(ValueError, match="distributed=True"):
        get_world(True)
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ValueError, match="torchrun"):
        init_distributed()
    monkeypatch.setenv(TIMEOUT_ENV, "soon")
    with pytest.raises(ValueError, match=TIMEOUT_ENV):
        collective_timeout()
    monkeypatch.setenv(TIMEOUT_ENV, "-1")
    with pytest.raises(ValueError, match="positive"):
        collective_timeout()
    monkeypatch.delenv(TIMEOUT_ENV)
    assert collective_timeout() == 1800.0 and collective_timeout(20) == 20.0
    with pytest.raises(TypeError, match="timeout"):
        collective_timeout("20")
    with pytest.raises(ValueError, match="positive"):
        init_distributed(timeout=0)
    for bad in ("yes", 2):
        with pytest.raises(ValueError, match="distributed"):
            ReIDFeatureExtractor(distributed=bad).fit(np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="sync_bn"):
        ReIDFeatureExtractor(sync_bn="no").fit(np.zeros((2, 8, 8, 3), np.uint8))


@pytest.mark.parametrize("momentum", [0.1, None])
def test_sync_batchnorm_of_one_rank_is_batchnorm(momentum):
    """The CPU SyncBatchNorm's forward, backward and running statistics."""
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(6, 4, 5, 3, generator=gen) * 3 + 2).requires_grad_()
    weights = torch.randn(6, 4, 5, 3, generator=gen)
    ref = nn.BatchNorm2d(4, momentum=momentum)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5, generator=gen)
        ref.bias.uniform_(-1, 1, generator=gen)
    sync = SyncBatchNorm(4, momentum=momentum, world=SINGLE)
    sync.load_state_dict(ref.state_dict())
    outs = []
    for module in (ref, sync):
        x.grad = None
        for _ in range(2):
            y = module(x)
        (y * weights).sum().backward()
        outs.append((y.detach(), x.grad.clone(), module.weight.grad, module.bias.grad,
                     module.running_mean.clone(), module.running_var.clone()))
    for a, b in zip(*outs):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    sync.eval()
    torch.testing.assert_close(sync(x), ref.eval()(x))


def test_synchronized_batchnorm_swaps_and_restores_the_layers():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4),
                        nn.Sequential(nn.Flatten(), nn.BatchNorm1d(4 * 6 * 6)))
    originals = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with synchronized_batchnorm(net, World(rank=0, size=2), torch.device("cpu")):
        swapped = [m for m in net.modules() if isinstance(m, SyncBatchNorm)]
        assert len(swapped) == 2
        assert swapped[0].weight is originals[0].weight  # shared, not copied
        assert swapped[0].running_mean is originals[0].running_mean
    assert [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)] \
        == originals
    with synchronized_batchnorm(net, SINGLE, torch.device("cpu")):
        assert net[1] is originals[0]  # one rank: nothing to synchronise


def test_commands_that_do_not_run_data_parallel_refuse_torchrun(monkeypatch, capsys,
                                                                tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    np.save(tmp_path / "X.npy", np.zeros((4, 2)))
    assert main(["cluster", str(tmp_path / "X.npy")]) == 2
    assert "single process" in capsys.readouterr().err
    monkeypatch.setenv(TIMEOUT_ENV, "soon")
    assert main(["train", str(tmp_path / "nowhere")]) == 2
    assert TIMEOUT_ENV in capsys.readouterr().err


# ------------------------------------------------------------ two processes
@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """The worker's job alone and on 2 ranks (rank 0's and rank 1's results)."""
    single, parallel = tmp_path_factory.mktemp("single"), tmp_path_factory.mktemp("ddp")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(WORKER), str(single)], env=_env(),
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    mid = time.perf_counter()
    done = _torchrun(str(WORKER), str(parallel))
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"single {mid - start:.1f} s, 2 ranks {time.perf_counter() - mid:.1f} s")
    results = [pickle.loads((parallel / f"rank{r}.pkl").read_bytes()) for r in (0, 1)]
    return pickle.loads((single / "rank0.pkl").read_bytes()), results, parallel


def _max_difference(a, b):
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["random", "pk", "pretrained_bn"])
def test_one_fit_gives_the_single_process_weights(two_ranks, recipe):
    single, ranks, _ = two_ranks
    state, losses, features, world_size = single["extractors"][recipe]
    for result in ranks:
        d_state, d_losses, d_features, d_world_size = result["extractors"][recipe]
        assert (world_size, d_world_size) == (1, 2)
        assert set(d_state) == set(state)  # plain BatchNorm layers again
        assert _max_difference(state, d_state) < ATOL
        np.testing.assert_allclose(d_losses, losses, rtol=1e-5)
        np.testing.assert_allclose(d_features, features, atol=ATOL)
    # the ranks hold the same network, bit for bit
    assert _max_difference(ranks[0]["extractors"][recipe][0],
                           ranks[1]["extractors"][recipe][0]) == 0


@pytest.mark.slow
def test_extraction_and_gathering_keep_the_original_order(two_ranks):
    single, ranks, _ = two_ranks
    assert [r["gathered"] for r in ranks] == [list(range(7))] * 2
    # 43 images, 22 + 21 over the ranks: the gathered features in input order
    for recipe in ("random", "pk"):
        np.testing.assert_array_equal(ranks[0]["extractors"][recipe][2],
                                      ranks[1]["extractors"][recipe][2])


def _strip(history):
    return [{k: v for k, v in h.items() if k != "world_size"} for h in history]


@pytest.mark.slow
def test_rounds_of_the_loop_match_the_single_process(two_ranks):
    single, ranks, _ = two_ranks
    ref = single["loop"]
    for result in ranks:
        loop = result["loop"]
        assert loop["world_size"] == 2
        assert [h["world_size"] for h in loop["history"]] == [2, 2, 2]
        assert [h["world_size"] for h in ref["history"]] == [1, 1, 1]
        np.testing.assert_array_equal(loop["labels"], ref["labels"])
        assert _max_difference(ref["state"], loop["state"]) < ATOL
        np.testing.assert_allclose(loop["features"], ref["features"], atol=ATOL)
        for h, r in zip(_strip(loop["history"]), _strip(ref["history"])):
            assert h.keys() == r.keys() and h["n_clusters"] == r["n_clusters"]
            for key in h:
                if key == "loss":
                    assert h[key] == pytest.approx(r[key], abs=LOSS_ATOL), key
                elif isinstance(r[key], float):
                    assert h[key] == pytest.approx(r[key], rel=1e-5), key
    assert ranks[0]["loop"]["history"] == ranks[1]["loop"]["history"]


@pytest.mark.slow
def test_rank_0_alone_writes_checkpoints_and_a_resumed_run_ends_the_same(two_ranks):
    _, ranks, folder = two_ranks
    # 3 rounds + 1 (interrupted after round 1: its checkpoint is not written) + 2
    assert (folder / "writes.txt").read_text().split() == ["0"] * 6
    for name in ("ckpt_full", "ckpt_resumed"):
        assert [p.name for p in (folder / name).iterdir()] == [
            "self_training_checkpoint.joblib"]  # no temporary file left
    for result in ranks:
        # the callback's exception on rank 0 stopped every rank
        assert result["interrupted"] == "stopped after round 1"
        full, resumed = result["loop"], result["resumed"]
        assert resumed["history"] == full["history"]
        np.testing.assert_array_equal(resumed["labels"], full["labels"])
        assert _max_difference(full["state"], resumed["state"]) == 0


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    from sklearn_ecluster.datasets import make_synthetic_reid

    return make_synthetic_reid(tmp_path_factory.mktemp("data"), n_identities=6,
                               images_per_identity=(4, 5), image_size=(32, 16),
                               random_state=0)


TRAIN = ["--backbone", "mobilenet_v3_small", "--image-size", "32", "16",
         "--embedding-dim", "16", "--device", "cpu", "--eval-batch-size", "32",
         "--epochs", "1", "--rounds", "2", "--merge-percent", "0.2", "--batch-size", "8"]


@pytest.mark.slow
def test_train_command_under_torchrun(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    done = _torchrun("-m", "sklearn_ecluster", "train", str(tiny_dataset), "--method",
                     "ecluster", "--output-dir", str(out),
                     "--checkpoint-dir", str(tmp_path / "ckpt"), *TRAIN)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("selected round") == 1  # rank 0 prints, once
    history = json.loads((out / "history.json").read_text())
    assert [h["world_size"] for h in history] == [2, 2]
    assert (out / "history.csv").read_text().splitlines()[0].endswith("world_size")
    assert (out / "weights.pt").is_file() and (out / "labels.npy").is_file()
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


_DYING = textwrap.dedent("""
    import os, sys
    import sklearn_ecluster.feature_extraction._extractor as module
    from sklearn_ecluster.cli import main

    if os.environ["RANK"] == "1":
        def die(*args, **kwargs):
            os._exit(3)  # killed in the middle of the first round's training
        module.train_epochs = die
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.slow
def test_a_killed_rank_fails_the_job_with_a_message_instead_of_a_hang(tiny_dataset,
                                                                      tmp_path):
    script = tmp_path / "dying.py"
    script.write_text(_DYING)
    port = str(_free_port())
    procs = []
    for rank in ("0", "1"):
        env = _env(RANK=rank, LOCAL_RANK=rank, WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=port, **{TIMEOUT_ENV: "20"})
        procs.append(subprocess.Popen(
            [sys.executable, str(script), "train", str(tiny_dataset), "--output-dir",
             str(tmp_path / "run"), *TRAIN], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    start = time.perf_counter()
    _, err = procs[0].communicate(timeout=120)
    seconds = time.perf_counter() - start
    assert procs[1].wait(60) == 3
    assert procs[0].returncode == 1, err[-3000:]
    assert "rank 0 of 2: the distributed job failed" in err
    assert TIMEOUT_ENV in err and "Traceback" not in err
    assert seconds < 90
    assert not (tmp_path / "run" / "history.json").exists()


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices")
def test_train_command_on_two_gpus(tiny_dataset, tmp_path):
    """NCCL for CUDA tensors, gloo for the rest, each rank on cuda:LOCAL_RANK."""
    out = tmp_path / "run"
    argv = [a if a != "cpu" else "cuda" for a in TRAIN]
    done = _torchrun("-m", "sklearn_ecluster", "train", str(tiny_dataset), "--method",
                     "ecluster", "--output-dir", str(out), *argv)
    assert done.returncode == 0, done.stderr[-3000:]
    history = json.loads((out / "history.json").read_text())
    assert [h["world_size"] for h in history] == [2] * len(history)
