"""Job bodies (``kind="call"``) for the Ray backend's tests: each says which Ray node it runs on."""

from core.events import Message
from tests.core.job_bodies import counting


def counting_where(emit, stop):
    """``counting``, after a first message naming its Ray node."""
    import ray

    emit(Message("info", f"node {ray.get_runtime_context().get_node_id()}"))
    counting(emit, stop)


def worker_settings(emit, stop):
    """Says the thread settings its job computes under: OpenMP's wait policy and torch's threads."""
    import os

    import torch

    emit(Message("info", f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} threads={torch.get_num_threads()}"))
