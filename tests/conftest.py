"""Shared fixtures: every test starts from the same random state; runs are sealed with a key of
the test session's own, never the user's (``core.trusted.seal_key``)."""

import os
import random
import tempfile

import numpy as np
import pytest

# Set before anything seals a run; worker processes and Ray actors inherit it.
os.environ.setdefault("TRAINBOARD_SEAL_KEY", os.path.join(tempfile.mkdtemp(prefix="trainboard-test-key-"), "seal.key"))
# Contest folds one after another, in this process: tests spy on fits and register families of their
# own, which helper processes would not see. tests/core/test_fold_pool.py turns the helpers on.
os.environ.setdefault("TRAINBOARD_FOLD_PROCESSES", "1")


@pytest.fixture(autouse=True)
def _seeded():
    random.seed(0)
    np.random.seed(0)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard requirement, but keep fixtures light
        return
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray cluster for the Ray backend's tests: a head and two worker nodes of one CPU each,
    the last with a logical GPU, 100 MB object stores, no dashboard (``core.jobs.ray_local``)."""
    pytest.importorskip("ray", reason="Ray is not installed: pip install -r requirements-ray.txt to run "
                                      "the Ray backend's tests (.ci/run does)")
    from core.jobs.ray_local import start_cluster

    cluster = start_cluster(workers=2, cpus=1, gpu_node=True)
    yield cluster
    cluster.shutdown()
