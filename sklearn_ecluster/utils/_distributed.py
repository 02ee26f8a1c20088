"""Data-parallel runs with ``torch.distributed``: the process group and its collectives.

The package starts no process itself: ``torchrun`` (``python -m
torch.distributed.run``) launches one process per GPU and sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`init_distributed` joins them into a process group (gloo for CPU
tensors, NCCL for CUDA tensors, each rank on ``cuda:LOCAL_RANK``) whose
collectives fail after a timeout instead of waiting forever for a rank that
died.

The estimators see the group through a :class:`World`: its rank and size, and
the few collectives the training and the self-training loop need
(``broadcast``, ``gather_rows``, ``all_sum``, ``on_main``). :data:`SINGLE`, the
world of a single process, has the same methods as no-ops, so that the code
of the estimators reads the same with one process or many.

A global batch of the training samplers is split by :class:`ShardedBatchSampler`:
rank ``r`` takes the ``r``-th contiguous slice of each global batch, so that
the slices of one step, concatenated in rank order, are exactly the batch a
single process would draw with the same seed.
"""

import dataclasses
import datetime
import os
import pickle

import numpy as np
import torch
from torch.utils.data import Sampler

#: Environment variable: the timeout of every collective, in seconds.
TIMEOUT_ENV = "SKLEARN_ECLUSTER_DIST_TIMEOUT"
#: The default timeout (torch's own default for gloo and NCCL: 30 minutes).
DEFAULT_TIMEOUT = 1800.0
_TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun():
    """True when this process is one of several started by ``torchrun``.

    Examples
    --------
    >>> from sklearn_ecluster.utils import launched_by_torchrun
    >>> launched_by_torchrun()  # a plain ``python`` process
    False
    """
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return True  # a malformed value: init_distributed reports it


def collective_timeout(timeout=None):
    """The timeout of collectives in seconds: ``timeout``, else the environment's."""
    source = "timeout"
    if timeout is None:
        text = os.environ.get(TIMEOUT_ENV)
        if text is None:
            return DEFAULT_TIMEOUT
        source = f"the environment variable {TIMEOUT_ENV}"
        try:
            timeout = float(text)
        except ValueError:
            raise ValueError(
                f"{source} must be a positive number of seconds, got {text!r}."
            ) from None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number of seconds or None, got "
                        f"{type(timeout).__name__}.")
    if not np.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"{source} must be a positive number of seconds, got {timeout!r}.")
    return float(timeout)


def _env_int(name):
    text = os.environ.get(name)
    try:
        return int(text)
    except (TypeError, ValueError):
        raise ValueError(
            f"the environment variable {name}={text!r} is not an integer; launch the "
            "processes with torchrun (python -m torch.distributed.run), which sets "
            f"{', '.join(_TORCHRUN_ENV)} and LOCAL_RANK."
        ) from None


def init_distributed(device="auto", timeout=None):
    """Join the process group that ``torchrun`` set up; return its :class:`World`.

    Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and ``MASTER_ADDR`` /
    ``MASTER_PORT``) from the environment. On a machine with CUDA (unless
    ``device`` is ``"cpu"``) the rank's device is ``cuda:LOCAL_RANK``
    (made the current device) and the group has two backends: NCCL for CUDA
    tensors and gloo for CPU tensors; without CUDA it is gloo alone. A group
    that is already initialised (by the user's own code) is used as it is.

    Parameters
    ----------
    device : str or torch.device, default="auto"
        ``"cpu"`` keeps every rank on the CPU (gloo only) even where CUDA is
        available.
    timeout : float or None, default=None
        Seconds a collective may wait for the other ranks before it fails (a
        rank that died or hangs). None: the environment variable
        ``SKLEARN_ECLUSTER_DIST_TIMEOUT``, else 1800.

    Returns
    -------
    world : World

    Raises
    ------
    ValueError
        If the environment does not describe a torchrun process, or the
        timeout is not a positive number.
    """
    import torch.distributed as dist

    if not dist.is_available():
        raise ValueError("this torch build has no torch.distributed support.")
    if dist.is_initialized():
        return get_world(True)
    seconds = collective_timeout(timeout)
    missing = [name for name in _TORCHRUN_ENV if name not in os.environ]
    if missing:
        raise ValueError(
            f"the environment lacks {', '.join(missing)}: launch the processes with "
            "torchrun (python -m torch.distributed.run --nproc_per_node G ...)."
        )
    rank, size = _env_int("RANK"), _env_int("WORLD_SIZE")
    local_rank = _env_int("LOCAL_RANK") if "LOCAL_RANK" in os.environ else rank
    use_cuda = torch.cuda.is_available() and str(device) != "cpu"
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"LOCAL_RANK={local_rank} but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s): start at most that many "
                "processes per node (--nproc_per_node)."
            )
        torch.cuda.set_device(local_rank)
    backend = "cpu:gloo,cuda:nccl" if use_cuda else "gloo"
    dist.init_process_group(backend, rank=rank, world_size=size,
                            timeout=datetime.timedelta(seconds=seconds))
    return World(rank=rank, size=size, local_rank=local_rank)


def close_distributed():
    """Leave the process group, if one is initialised (at the end of a job)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def get_world(distributed="auto"):
    """The :class:`World` an estimator runs in.

    Parameters
    ----------
    distributed : "auto" or bool, default="auto"
        ``"auto"``: the initialised process group when there is one with more
        than one rank, else :data:`SINGLE`; True: the process group (a
        ValueError when none is initialised); False: :data:`SINGLE` (every
        process works alone).

    Examples
    --------
    >>> from sklearn_ecluster.utils import get_world
    >>> world = get_world()
    >>> world.size, world.is_main
    (1, True)
    """
    if distributed is False:
        return SINGLE
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        if distributed is True:
            raise ValueError(
                "distributed=True but no torch.distributed process group is initialised; "
                "launch with torchrun and call sklearn_ecluster.utils.init_distributed() "
                "(the command line does), or use distributed='auto'."
            )
        return SINGLE
    size = dist.get_world_size()
    if size == 1 and distributed == "auto":
        return SINGLE
    local_rank = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return World(rank=dist.get_rank(), size=size, local_rank=local_rank)


def _comm_device(device):
    """Where a tensor of ``device`` travels: CUDA over NCCL, everything else over gloo."""
    import torch.distributed as dist

    backend = str(dist.get_backend())
    if device.type == "cuda" and "nccl" in backend:
        return device
    if "gloo" in backend or "mpi" in backend:
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device())  # an NCCL-only group


@dataclasses.dataclass(frozen=True)
class World:
    """The ranks of a data-parallel run, and the collectives the estimators use.

    Every method is a collective (all ranks call it, in the same order) except
    :meth:`shard`. In :data:`SINGLE` (``size == 1``) they do nothing.

    Attributes
    ----------
    rank : int
        This process's rank, ``0 .. size-1``; rank 0 clusters, evaluates and
        writes files.
    size : int
        The number of processes (the world size).
    local_rank : int
        The rank on this machine: the CUDA device index.
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self):
        """True on rank 0."""
        return self.rank == 0

    def shard(self, n):
        """``(start, stop)``: this rank's contiguous part of ``n`` items (in order).

        Examples
        --------
        >>> from sklearn_ecluster.utils._distributed import World
        >>> [World(rank=r, size=3).shard(10) for r in range(3)]
        [(0, 4), (4, 7), (7, 10)]
        """
        bounds = np.cumsum([0] + [len(part) for part in
                                  np.array_split(np.arange(n), self.size)])
        return int(bounds[self.rank]), int(bounds[self.rank + 1])

    def barrier(self):
        """Wait for every rank."""
        if self.size > 1:
            import torch.distributed as dist

            dist.barrier()

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank (pickled; any picklable object)."""
        if self.size == 1:
            return obj
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def on_main(self, fn, *args, **kwargs):
        """Run ``fn`` on rank 0 only; its result, or its exception, on every rank.

        An exception raised by ``fn`` on rank 0 is raised on every rank (as
        the same exception), so that no rank waits for a rank that failed.
        """
        if self.size == 1:
            return fn(*args, **kwargs)
        outcome = None
        error = None
        if self.is_main:
            try:
                outcome = ("ok", fn(*args, **kwargs))
            except Exception as exc:
                error = exc
                outcome = ("error", _portable(exc))
        outcome = self.broadcast(outcome)
        if error is not None:
            raise error
        kind, value = outcome
        if kind == "error":
            raise value
        return value

    def gather_rows(self, tensor):
        """The ``tensor`` of every rank, concatenated along dim 0 in rank order.

        The ranks may hold different numbers of rows (the same trailing
        shape and dtype). The result is on ``tensor``'s device.
        """
        if self.size == 1:
            return tensor
        import torch.distributed as dist

        device = tensor.device
        comm = _comm_device(device)
        local = tensor.detach().to(comm).contiguous()
        count = torch.tensor([local.shape[0]], device=comm, dtype=torch.int64)
        counts = [torch.zeros_like(count) for _ in range(self.size)]
        dist.all_gather(counts, count)
        counts = [int(c) for c in counts]
        rows = max(counts)
        if local.shape[0] < rows:
            pad = local.new_zeros((rows - local.shape[0], *local.shape[1:]))
            local = torch.cat([local, pad])
        parts = [torch.empty_like(local) for _ in range(self.size)]
        dist.all_gather(parts, local)
        return torch.cat([p[:c] for p, c in zip(parts, counts)]).to(device)

    def all_sum(self, tensor):
        """The sum over ranks of ``tensor`` (a new tensor, on its device)."""
        if self.size == 1:
            return tensor
        import torch.distributed as dist

        out = tensor.detach().to(_comm_device(tensor.device)).clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out.to(tensor.device)


def _portable(exc):
    """``exc``, or a built-in exception of its kind with its message if it won't unpickle."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        pass
    message = f"on rank 0: {exc}"
    for cls in type(exc).__mro__:
        if cls.__module__ == "builtins" and issubclass(cls, Exception):
            try:
                return pickle.loads(pickle.dumps(cls(message)))
            except Exception:
                continue
    return RuntimeError(message)


#: The world of a single process: collectives do nothing.
SINGLE = World()


class ShardedBatchSampler(Sampler):
    """This rank's slice of every global batch of ``batch_sampler``.

    Every rank builds the same ``batch_sampler`` with the same seed, so all
    draw the same global batches; rank ``r`` yields the ``r``-th of
    ``world.size`` contiguous slices of each (sizes differing by at most one),
    and the slices of one step, in rank order, are the global batch. A
    global batch with fewer samples than ranks (possible only as the last,
    short batch of the random sampler) is skipped by every rank, since a rank
    cannot train on nothing.

    Parameters
    ----------
    batch_sampler : iterable of lists of int
        The single-process batch sampler of the recipe (a ``BatchSampler``
        over a seeded ``RandomSampler``, or the P x K sampler).
    world : World

    Examples
    --------
    >>> from sklearn_ecluster.utils._distributed import ShardedBatchSampler, World
    >>> batches = [[5, 3, 1, 0], [2, 4, 6]]
    >>> [list(ShardedBatchSampler(batches, World(rank=r, size=2))) for r in (0, 1)]
    [[[5, 3], [2, 4]], [[1, 0], [6]]]
    """

    def __init__(self, batch_sampler, world):
        self.batch_sampler = batch_sampler
        self.world = world

    def __len__(self):
        last = _last_batch_size(self.batch_sampler)
        return len(self.batch_sampler) - (last is not None and last < self.world.size)

    def __iter__(self):
        for batch in self.batch_sampler:
            if len(batch) < self.world.size:
                continue
            start, stop = self.world.shard(len(batch))
            yield list(batch)[start:stop]


def _last_batch_size(batch_sampler):
    """The size of a ``BatchSampler``'s last batch, or None when unknown."""
    sampler = getattr(batch_sampler, "sampler", None)
    size = getattr(batch_sampler, "batch_size", None)
    if sampler is None or size is None or getattr(batch_sampler, "drop_last", True):
        return None
    return len(sampler) % size or None


def failure_message(exc, world):
    """One line on a failed collective: which rank, what torch said, what to check."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (
        f"rank {world.rank} of {world.size}: the distributed job failed "
        f"({type(exc).__name__}: {first[:300]}). Another rank stopped or crashed (see "
        "its own message), or a collective waited longer than the timeout "
        f"({collective_timeout():g} s; set {TIMEOUT_ENV} to change it)."
    )


def is_distributed_failure(exc):
    """Whether ``exc`` comes from torch.distributed (a peer gone, a timeout)."""
    import torch.distributed as dist

    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    if not isinstance(exc, RuntimeError):
        return False
    text = str(exc).lower()
    return any(word in text for word in ("gloo", "nccl", "timed out", "timeout",
                                         "connection", "peer", "process group",
                                         "store"))
