import os
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seed_and_restore_rng():
    """Tests must not depend on, nor leak, the global RNG state."""
    np_state = np.random.get_state()  # noqa: NPY002 (the global state is saved to be restored)
    torch_state = torch.get_rng_state()
    yield
    np.random.set_state(np_state)  # noqa: NPY002
    torch.set_rng_state(torch_state)


@pytest.fixture
def shared_data():
    """Path of ../shared/data; the test is skipped when it is absent."""
    root = Path(os.environ.get("SKLEARN_ECLUSTER_SHARED_DATA", SHARED_DATA))
    if not root.is_dir():
        pytest.skip(f"shared data folder {root} not present")
    return root
