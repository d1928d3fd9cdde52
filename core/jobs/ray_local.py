"""A local Ray cluster on this machine: a head and worker nodes, small object stores, no
dashboard (``make cluster``, the Ray tests, the classroom bench). Ray's ``cluster_utils.Cluster``
starts each node as its own raylet, so jobs really land on, and can lose, separate nodes.

``python -m core.jobs.ray_local [--workers 2] [--gpu]`` starts one, prints its address and waits
until interrupted; set ``TRAINBOARD_RAY_ADDRESS`` to that address for ``make run`` or the CLI.
"""

from __future__ import annotations

import argparse
import signal
import time
from typing import Any

OBJECT_STORE = 100 * 2**20  # bytes per node: enough for a small upload, little of the machine's memory


def start_cluster(workers: int = 2, *, cpus: int = 1, gpu_node: bool = True) -> Any:
    """A head plus ``workers`` nodes of ``cpus`` CPUs each; the last has a *logical* GPU when
    ``gpu_node`` (Ray schedules on it; torch there sees no CUDA unless the machine has one)."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": cpus, "object_store_memory": OBJECT_STORE, "include_dashboard": False})
    for i in range(workers):
        gpus = 1 if gpu_node and i == workers - 1 else 0
        cluster.add_node(num_cpus=cpus, num_gpus=gpus, object_store_memory=OBJECT_STORE)
    cluster.wait_for_nodes()
    return cluster


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m core.jobs.ray_local", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="worker nodes besides the head (default 2)")
    parser.add_argument("--cpus", type=int, default=1, help="CPUs per node (default 1)")
    parser.add_argument("--no-gpu", action="store_true", help="no logical GPU on the last worker node")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops it as cleanly as Ctrl-C
    cluster = start_cluster(args.workers, cpus=args.cpus, gpu_node=not args.no_gpu)
    print(f"Ray cluster up: TRAINBOARD_RAY_ADDRESS={cluster.address}  (Ctrl-C stops it)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        cluster.shutdown()


if __name__ == "__main__":
    main()
