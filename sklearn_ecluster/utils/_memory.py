"""Memory accounting: how much is free, how large a block may be.

Blocks are sized from ``sklearn.get_config()["working_memory"]`` on the CPU and
from ``torch.cuda.mem_get_info`` on CUDA, so kernels never allocate more than a
bounded temporary beside the buffers they must keep.
"""

import os

import torch
from sklearn import get_config


def available_memory(device):
    """Bytes that can still be allocated on ``device`` (best effort)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: do not block the user


def _fmt(nbytes):
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


def check_memory(nbytes, device, what):
    """Raise ``MemoryError`` at once when ``nbytes`` cannot fit on ``device``.

    Failing before the allocation (with the figure) beats an out-of-memory
    kill after minutes of work.
    """
    avail = available_memory(device)
    if nbytes > avail:
        raise MemoryError(
            f"{what} needs {_fmt(nbytes)} on {device}, but only {_fmt(avail)} is "
            "available. Use fewer samples, float32 input, or a device with more memory."
        )


def rows_per_block(n_cols, itemsize, device, working_memory=None, n_buffers=2):
    """Rows of an ``(rows, n_cols)`` temporary that fit the working memory.

    Parameters
    ----------
    n_cols : int
        Width of the block.
    itemsize : int
        Bytes per element.
    device : torch.device
    working_memory : float, default=None
        Budget in MiB; ``None`` uses scikit-learn's ``working_memory`` setting
        on the CPU and a quarter of the free memory on CUDA.
    n_buffers : int, default=2
        How many temporaries of that shape the caller keeps at once.
    """
    device = torch.device(device)
    if working_memory is None:
        if device.type == "cuda":
            budget = available_memory(device) // 4
        else:
            budget = int(get_config()["working_memory"]) * 2**20
    else:
        budget = int(working_memory * 2**20)
    per_row = max(1, n_cols * itemsize * n_buffers)
    return max(1, int(budget // per_row))
