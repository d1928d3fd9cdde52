"""Jobs on a Ray cluster: the backend for when one server is outgrown (ARCHITECTURE.md, "Job backends").

Chosen by ``TRAINBOARD_RAY_ADDRESS`` in ``core.jobs.make_job_manager``; Ray is imported only here,
and only once this backend is made. One Ray *actor per job* (``_JobActor``, threaded): one thread
runs the job (``core.jobs.backend.run_one``), another answers ``drain()`` (the events so far, in
order) and ``stop()`` (the job's stop flag: the trainer stops and saves its best model). A hard
stop is ``ray.kill``. A job whose actor dies (its node lost, the actor killed) fails alone, in words.

Ray inside Streamlit: ``ray.init`` and every Ray call happen in one *driver process* of the server
(``_Driver``, spawned), never in a page thread or under the manager's lock: the manager's calls only
put commands on a queue and read reports from another. A process, not a thread, because Ray ends
the process of a driver whose local raylet dies (measured: the head node stopped, the driver exited
with status 1), which must not take the web server with it. One connection per server process;
when the cluster goes away the running jobs fail in words, ``status`` says so (the sidebar shows
it) and a new driver reconnects every ``reconnect_s``.

Data: without a shared folder the job's input (the uploaded file or image folder, and for a
prediction the run it applies) travels as a tar through the object store, the job runs in a
scratch folder on its node, and what it made (a run folder, a comparison, predictions) comes back
the same way and is renamed into place on the server, atomically. With ``TRAINBOARD_SHARED_DIR``
(a folder every node mounts at the same path) inputs are copied there once, and nothing more moves
when the runs folder is in it too. Either way the run's manifest gains a ``node`` field.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing as mp
import os
import queue
import shutil
import socket
import tarfile
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core.events import Event, Message, RunFinished, RunStarted
from core.jobs.backend import Emitted, Ended, Report, run_one
from core.jobs.process import WORKER_ENV, limit_threads
from core.types import DeviceInfo

LOST = ("The cluster node running this job went away (or its worker was stopped), so the job ended without "
        "saving. Other jobs were not affected; train again.")
CLUSTER_GONE = ("The connection to the Ray cluster was lost while this job ran, so it ended without saving. "
                "Train again once the sidebar says the cluster is back.")
NO_GPU = "No GPU in the Ray cluster: this model trains on a CPU node instead (slower, same result)."
GPU_UNUSABLE = ("This job was given a GPU node, but torch there cannot use a GPU (a CPU-only torch, or no "
                "CUDA driver): it trains on that node's CPU.")
#: Tables with at least this many rows send the MLP to a GPU node (below it a GPU barely helps).
MLP_GPU_ROWS = 100_000
RECONNECT_S = 5.0
CALL_TIMEOUT_S = 60.0  # any one blocking Ray call; past it the cluster counts as unreachable
CAPACITY_EVERY_S = 2.0  # how often the slots follow the cluster's CPUs (nodes come and go)


# ---------------------------------------------------------------- the same code on every node


def code_version() -> str:
    """Trainboard's version and a digest of its ``core`` sources: what must match on every node."""
    from core import __version__

    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:12]}"


def _node_here() -> dict[str, Any]:
    """Where this code runs, for the manifest's ``node`` field (the Ray node id tells apart nodes
    that share a host, as a local cluster's do)."""
    import ray

    return {"backend": "ray", "id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(),
            "ip": ray.util.get_node_ip_address(), "gpus": [str(g) for g in ray.get_gpu_ids()]}


def node_label(node: dict[str, Any]) -> str:
    """ "host · node 3f2a1b9c" (+ " · GPU 0"): short words for the badge and the messages."""
    label = f"{node['host']} · node {node['id'][:8]}"
    return label + (f" · GPU {','.join(node['gpus'])}" if node.get("gpus") else "")


@dataclass(frozen=True)
class NodeDevice(DeviceInfo):
    """A device on a named cluster node: the badge says both."""

    node: str = ""

    @property
    def badge(self) -> str:
        return f"{DeviceInfo.badge.fget(self)} on {self.node}"


def wants_gpu(spec: Any, kind: str) -> bool:
    """Whether the job's model would use a GPU: the CNN (images), the MLP on a large table."""
    plan = getattr(spec, "plan", None)
    if kind == "call" or getattr(spec, "mode", "train") != "train":
        return False
    model = plan.model if plan is not None else spec.overrides.model
    if model == "cnn":
        return True
    if model == "mlp":
        return plan is not None and (plan.n_rows or 0) >= MLP_GPU_ROWS
    return False


# ---------------------------------------------------------------- moving files as tar bytes


def pack(paths: dict[str, Path]) -> bytes:
    """A tar of files or folders, each under its given name."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, path in paths.items():
            tar.add(str(path), arcname=name)
    return buffer.getvalue()


def unpack(data: bytes, into: Path) -> None:
    """Extract a tar made by ``pack`` (the ``data`` filter: no absolute paths, links out or devices)."""
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        tar.extractall(into, filter="data")


def _reseal(staged: Path, names: list[str], runs_dir: Path) -> None:
    """The run folders a node made, sealed with this server's key before they appear (a node
    elsewhere seals with its own, which the server cannot check: ``core.trusted``)."""
    from core.run_record import MANIFEST_FILE
    from core.runs import reseal_run

    for name in names:
        if (staged / name / MANIFEST_FILE).is_file():
            reseal_run(staged / name, runs_dir)


def place(staged: Path, names: list[str], dest: Path) -> None:
    """Move what a job made from ``staged`` into ``dest``, each by one rename, so a reader sees
    nothing or the whole thing. ``staged`` must be on ``dest``'s file system."""
    for name in names:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged / name, target)


def _free_name(staged: Path, name: str, dest: Path) -> str:
    """Two nodes can name a run alike (ids are unique per second *within* one runs folder): a run
    whose name is taken on the server gets the next numeric suffix, as ``core.runs.new_run_id`` gives,
    in its folder's name and its manifest's ``run_id``."""
    if not (dest / name).exists():
        return name
    path, n = Path(name), 2

    def numbered(n: int) -> str:
        return f"{name}-{n}" if (staged / name).is_dir() else path.with_stem(f"{path.stem}-{n}").as_posix()

    while (dest / numbered(n)).exists():
        n += 1
    free = numbered(n)
    os.rename(staged / name, staged / free)
    manifest = staged / free / "manifest.json"
    if (staged / free).is_dir() and manifest.is_file():
        data = json.loads(manifest.read_text())
        data["run_id"] = Path(free).name
        manifest.write_text(json.dumps(data, indent=2))
    return free


def _add_node_to_manifest(run_dir: Path, node: dict[str, Any]) -> None:
    """Record where the run trained (rewritten atomically, as ``core.runs`` rewrites a manifest)."""
    manifest = run_dir / "manifest.json"
    if manifest.is_file():
        data = json.loads(manifest.read_text())
        data["node"] = node
        tmp = run_dir / ".manifest.json.node.tmp"
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, manifest)


# ---------------------------------------------------------------- one job, on a node


@dataclass(frozen=True)
class _Transfer:
    """How a job's files travel: ``inputs`` is a tar (``pack``) of ``source`` and, for a prediction,
    ``model``; or None when every path is already in the shared folder. ``gpu_note``: a message to
    send first."""

    inputs: bytes | None = None
    shared_staging: str | None = None  # shared mode: where the job writes when runs_dir is not shared
    gpu_note: str | None = None


@dataclass(frozen=True)
class _Outcome:
    """What ``_JobActor.run`` returns: how it ended, the events not drained yet, what it made."""

    ended: Ended
    rest: list[Event]
    node: dict[str, Any]
    products: bytes | None = None  # a tar of ``names``
    names: list[str] = field(default_factory=list)  # relative to the destination folder
    staged: str | None = None  # shared mode: the folder ``names`` are in


class _JobActor:
    """Runs one job (``run``, in one thread) and answers ``drain``/``stop`` on others.

    Its process starts with ``WORKER_ENV`` (Ray's ``runtime_env``, set before anything loads
    OpenMP) and its job computes on ``threads`` threads, the CPUs it asked Ray for: the same
    worker settings as a local worker process (bench section 12 measured why).
    """

    def __init__(self, threads: int) -> None:
        self._threads = threads
        self._events: list[Event] = []
        self._held: RunFinished | None = None  # sent once the products are back on the server
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._node: dict[str, Any] = {}

    def stop(self) -> None:
        self._stop.set()

    def drain(self, wait_s: float = 0.5) -> list[Event]:
        """The events sent since the last drain, waiting up to ``wait_s`` for one."""
        with self._cond:
            if not self._events:
                self._cond.wait(wait_s)
            events, self._events = self._events, []
        return events

    def run(self, job_id: str, spec: Any, kind: str, transfer: _Transfer) -> _Outcome:
        self._node = _node_here()
        if transfer.gpu_note:
            self._emit(Message("info", transfer.gpu_note))
        limit_threads(self._threads)
        with tempfile.TemporaryDirectory(prefix="trainboard-job-") as scratch:
            local, dest_kind = _localise(spec, kind, transfer, Path(scratch))
            ended = run_one(job_id, local, kind, self._emit, self._stop, catch=BaseException)
            outcome = self._collect(ended, local, dest_kind, transfer, Path(scratch))
        return outcome

    def where(self) -> dict[str, Any]:
        return _node_here()

    def warm(self, preload: bool) -> None:
        """Be ready before a job comes (the spare actor): the heavy imports once, as a worker process does."""
        if preload:
            import core.pipeline  # noqa: F401  (pandas, scikit-learn)

    def _emit(self, event: Event) -> None:
        with self._cond:
            if isinstance(event, RunFinished) and event.run is not None:
                self._held = event  # sent once the run is back on the server, with its path there
                return
            if isinstance(event, RunStarted):
                device, label = event.device, node_label(self._node)
                event = replace(event, device=NodeDevice(device.type, device.name, device.threads, label))
                self._events.append(event)
                self._events.append(Message("info", f"Training on the Ray node {label}: {device.badge}."))
                if self._node["gpus"] and device.type == "cpu":
                    self._events.append(Message("warning", GPU_UNUSABLE))
            else:
                self._events.append(event)
            self._cond.notify_all()

    def _collect(self, ended: Ended, local: Any, dest_kind: str, transfer: _Transfer, scratch: Path) -> _Outcome:
        names: list[str] = []
        products = staged = None
        if ended.run_dir is not None and kind_has_files(local):
            made = Path(ended.run_dir)
            if made.is_dir():
                _add_node_to_manifest(made, self._node)
            root = Path(local.runs_dir) if dest_kind == "runs" else made.parent
            if transfer.inputs is not None or transfer.shared_staging is not None:
                names = [made.relative_to(root).as_posix()]
                if dest_kind == "out":  # predictions: the CSV and the Parquet copy beside it
                    names = sorted(p.name for p in root.iterdir() if p.stem == made.stem)
                if transfer.inputs is not None:
                    products = pack({n: root / n for n in names})
                else:
                    staged = str(root)
        with self._cond:
            rest, self._events = self._events, []
            if self._held is not None:
                rest.append(self._held)
            self._cond.notify_all()  # a drain waiting now returns at once
        return _Outcome(ended, rest, self._node, products, names, staged)


def kind_has_files(spec: Any) -> bool:
    return hasattr(spec, "runs_dir")


def _localise(spec: Any, kind: str, transfer: _Transfer, scratch: Path) -> tuple[Any, str]:
    """The spec with paths that exist on this node; and where its product goes ("runs" or "out")."""
    if kind == "call":
        return spec, "runs"
    dest_kind = "out" if spec.mode == "predict" else "runs"
    if transfer.inputs is None:
        if transfer.shared_staging is None:
            return spec, dest_kind
        staging = Path(transfer.shared_staging)
        out = str(staging / "out" / Path(spec.out).name) if spec.out else None
        if out:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
        return replace(spec, runs_dir=str(staging / "runs"), out=out or spec.out), dest_kind
    unpack(transfer.inputs, scratch / "in")
    runs = scratch / "runs"
    runs.mkdir()
    local = replace(spec, source=str(scratch / "in" / "source" / Path(spec.source).name), runs_dir=str(runs))
    if spec.run_dir:  # the run a prediction applies lives in the (node's) runs folder, as it must
        shutil.move(str(scratch / "in" / "model"), runs / Path(spec.run_dir).name)
        local = replace(local, run_dir=str(runs / Path(spec.run_dir).name))
    if spec.mode == "predict":
        (scratch / "out").mkdir()
        local = replace(local, out=str(scratch / "out" / Path(spec.out or "predictions.csv").name))
    return local, dest_kind


# ---------------------------------------------------------------- the driver process: every Ray call


@dataclass(frozen=True)
class Settings:
    """How the driver uses the cluster (``RayBackend``'s arguments, sent to its process)."""

    address: str
    cpus_per_job: int = 1
    max_jobs: int | None = None
    shared_dir: str | None = None
    runtime_env: dict[str, Any] | None = None
    init_kwargs: dict[str, Any] = field(default_factory=dict)
    poll_s: float = 0.05
    reconnect_s: float = RECONNECT_S
    preload: bool = True


@dataclass(frozen=True)
class Status:
    """The driver's state, for the manager (``slots``) and the sidebar (``text``)."""

    text: str
    slots: int = 0
    connected: bool = False
    broken: str | None = None
    warm: bool = False  # the next job's actor is started and ready


@dataclass
class _Running:
    spec: Any  # as the server sent it: where its products go
    actor: Any
    run_ref: Any
    drain_ref: Any = None
    staged: list[Path] = field(default_factory=list)  # shared mode: copies made for this job


def _driver_main(settings: Settings, inbox, outbox) -> None:
    _Driver(settings, inbox, outbox).serve()


class _Driver:
    """The Ray connection: commands in (``start``, ``stop``, ``kill``, ``close``), reports and
    ``Status`` out, each job's reports in order and its ``Ended`` last."""

    def __init__(self, settings: Settings, inbox, outbox) -> None:
        self.settings = settings
        self.inbox, self.outbox = inbox, outbox
        self.running: dict[str, _Running] = {}
        self.gpus = 0.0
        self.slots = 0
        self.spare: Any = None  # the next CPU job's actor, started ahead (each actor still runs one job)
        self.spare_ref: Any = None  # its warm-up; None once it is ready
        self.text = ""
        self.capacity_at = 0.0
        self.closing = False
        self.shared = Path(settings.shared_dir).resolve() if settings.shared_dir else None

    def serve(self) -> None:
        import ray

        self.ray = ray
        while not self.closing and not self._connect():
            self._idle(self.settings.reconnect_s)
        try:
            while not self.closing:
                self._commands()
                self._follow_capacity()
                self._keep_spare()
                self._step()
        except Exception as err:  # noqa: BLE001 - the cluster went away: the server starts a new driver
            traceback.print_exc()
            self._say(f"Lost the Ray cluster at {self.settings.address} ({type(err).__name__}).")
            for job_id in list(self.running):
                self.outbox.put(Ended(job_id, error=CLUSTER_GONE))
            return
        for job_id in list(self.running):
            self._end(job_id, kill=True)
        self._drop_spare()
        ray.shutdown()

    # ------------------------------------------------------------ connecting

    def _say(self, text: str, **more: Any) -> None:
        self.outbox.put(Status(text, **more))

    def _connect(self) -> bool:
        address = self.settings.address
        try:
            self.ray.init(address=address, ignore_reinit_error=True, logging_level="ERROR",
                          runtime_env=self.settings.runtime_env, **self.settings.init_kwargs)
            mismatch = self._version_mismatch()
        except Exception as err:  # noqa: BLE001 - any failure to connect is words in the sidebar
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            self._say(f"The Ray cluster at {address} cannot be reached ({type(err).__name__}: {first}); "
                      f"trying again every {self.settings.reconnect_s:g} s. Jobs wait in the queue.")
            self._shutdown_quietly()
            return False
        if mismatch:
            self._say(mismatch, broken=mismatch)
            self.closing = True
            return False
        self._follow_capacity()
        return True

    def _version_mismatch(self) -> str | None:
        """Words when a node runs other Trainboard code than this server (None when all match)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray, address = self.ray, self.settings.address
        ours = code_version()
        probe = ray.remote(_probe_version)
        refs = [probe.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
                for n in ray.nodes() if n.get("Alive")]
        try:
            theirs = ray.get(refs, timeout=CALL_TIMEOUT_S * 2)
        except ray.exceptions.RayTaskError as err:  # Trainboard cannot even be imported there
            return (f"The Ray cluster at {address} cannot run Trainboard ({str(err).strip().splitlines()[-1]}). "
                    "Install this Trainboard on every node, or ship it with TRAINBOARD_RAY_SHIP_CODE=1 "
                    "(README, \"A Ray cluster\").")
        wrong = sorted({v for v in theirs if v != ours})
        if wrong:
            return (f"The Ray cluster at {address} runs Trainboard {', '.join(wrong)} and this server {ours}: "
                    "its jobs would train with other code, so none is sent. Install this version on every "
                    "node (or set TRAINBOARD_RAY_SHIP_CODE=1) and restart the server.")
        return None

    def _follow_capacity(self) -> None:
        """The slots follow the cluster's CPUs (nodes come and go); the sidebar says what is there."""
        now = time.time()
        if now - self.capacity_at < CAPACITY_EVERY_S:
            return
        self.capacity_at = now
        resources = self.ray.cluster_resources()
        cpus, self.gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
        slots = max(1, int(cpus // self.settings.cpus_per_job))
        slots = self.slots = min(slots, self.settings.max_jobs or slots)
        nodes = sum(1 for n in self.ray.nodes() if n.get("Alive"))
        gpus = f"{self.gpus:g} GPU{'s' if self.gpus != 1 else ''}" if self.gpus else "no GPU"
        self.text = (f"Ray cluster {self.settings.address}: {nodes} node{'s' if nodes != 1 else ''}, "
                     f"{cpus:g} CPUs, {gpus}; {slots} job{'s' if slots != 1 else ''} at once.")
        self._connected_status()

    def _connected_status(self) -> None:
        warm = self.spare is not None and self.spare_ref is None
        self._say(self.text, slots=self.slots, connected=True, warm=warm)

    def _idle(self, seconds: float) -> None:
        """Not connected: no job can start; a close still ends the driver."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            try:
                command = self.inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            if command[0] == "start":
                self.outbox.put(Ended(command[1], error=CLUSTER_GONE))
            elif command[0] == "close":
                self.closing = True
                return

    def _shutdown_quietly(self) -> None:
        try:
            self.ray.shutdown()
        except Exception:  # noqa: BLE001, S110 - nothing to shut
            pass

    # ------------------------------------------------------------ jobs

    def _commands(self) -> None:
        while True:
            try:
                what, *args = self.inbox.get_nowait()
            except queue.Empty:
                return
            if what == "start":
                self._start(*args)
            elif what == "stop" and args[0] in self.running:
                self.running[args[0]].actor.stop.remote()
            elif what == "kill" and args[0] in self.running:
                self._end(args[0], kill=True)
            elif what == "close":
                self.closing = True
                return

    def _start(self, job_id: str, spec: Any, kind: str) -> None:
        gpu = wants_gpu(spec, kind)
        staged: list[Path] = []
        try:
            sent, transfer = self._transfer(job_id, spec, kind, NO_GPU if gpu and not self.gpus else None, staged)
        except OSError as err:
            self.outbox.put(Ended(job_id, error=f"The job's data could not be sent to the cluster ({err})."))
            return
        if gpu and self.gpus:
            self._drop_spare()  # its CPU may be the one the GPU job needs
            actor = self._new_actor(gpus=1)
        else:
            actor, self.spare, self.spare_ref = self.spare or self._new_actor(), None, None
        self.running[job_id] = _Running(spec, actor, actor.run.remote(job_id, sent, kind, transfer), staged=staged)

    def _new_actor(self, gpus: int = 0) -> Any:
        return self.ray.remote(_JobActor).options(
            num_cpus=self.settings.cpus_per_job, num_gpus=gpus,
            max_concurrency=3,  # run, drain and stop at once
            max_restarts=0,
            runtime_env={"env_vars": dict(WORKER_ENV)},  # merged with the server's own runtime_env
        ).remote(self.settings.cpus_per_job)

    def _keep_spare(self) -> None:
        """While a slot is free, keep the next job's actor started and warm: a job then starts at once
        instead of after a worker process's start and imports (over a second on a busy machine)."""
        if self.spare is None and len(self.running) < self.slots:
            self.spare = self._new_actor()
            self.spare_ref = self.spare.warm.remote(self.settings.preload)
        elif self.spare_ref is not None and self.ray.wait([self.spare_ref], timeout=0)[0]:
            try:
                self.ray.get(self.spare_ref)
            except self.ray.exceptions.RayError:  # its node went away: start another
                self._drop_spare()
                return
            self.spare_ref = None
            self._connected_status()

    def _drop_spare(self) -> None:
        if self.spare is not None:
            try:
                self.ray.kill(self.spare, no_restart=True)
            except Exception:  # noqa: BLE001, S110 - gone already
                pass
            self.spare = self.spare_ref = None

    def _transfer(self, job_id: str, spec: Any, kind: str, note: str | None,
                  staged: list[Path]) -> tuple[Any, _Transfer]:
        """The spec as the node will get it, and how its files travel."""
        if kind == "call":
            return spec, _Transfer(gpu_note=note)
        if self.shared is None:
            paths = {"source/" + Path(spec.source).name: Path(spec.source)}
            if spec.run_dir:
                paths["model"] = Path(spec.run_dir)
            return spec, _Transfer(inputs=pack(paths), gpu_note=note)
        return self._shared_transfer(job_id, spec, note, staged)

    def _shared_transfer(self, job_id: str, spec: Any, note: str | None,
                         staged: list[Path]) -> tuple[Any, _Transfer]:
        """Shared mode: what is outside the shared folder is copied into it once; the job writes into
        the runs folder itself when that is shared, into a staging folder of the shared one if not."""
        def into_shared(path: str, folder: Path) -> str:
            if Path(path).resolve().is_relative_to(self.shared):
                return path
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / Path(path).name
            (shutil.copytree if Path(path).is_dir() else shutil.copy2)(path, target)
            return str(target)

        job_dir = self.shared / ".trainboard-jobs" / job_id
        staged.append(job_dir)
        sent = replace(spec, source=into_shared(spec.source, job_dir / "in"))
        runs_shared = Path(spec.runs_dir).resolve().is_relative_to(self.shared)
        out_shared = spec.out is None or Path(spec.out).resolve().is_relative_to(self.shared)
        if runs_shared and out_shared:
            return sent, _Transfer(gpu_note=note)
        if spec.run_dir:  # the run a prediction applies must sit in the runs folder the job gets
            sent = replace(sent, run_dir=into_shared(spec.run_dir, job_dir / "stage" / "runs"))
        return sent, _Transfer(shared_staging=str(job_dir / "stage"), gpu_note=note)

    def _step(self) -> None:
        ray = self.ray
        for running in self.running.values():
            if running.drain_ref is None:
                running.drain_ref = running.actor.drain.remote(0.5)
        refs = [r.drain_ref for r in self.running.values()] + [r.run_ref for r in self.running.values()]
        if not refs:
            time.sleep(self.settings.poll_s)
            return
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=self.settings.poll_s)
        done = set(ready)
        for job_id, running in list(self.running.items()):
            try:
                if running.drain_ref in done or running.run_ref in done:  # a finished job: drain first
                    for event in ray.get(running.drain_ref, timeout=CALL_TIMEOUT_S):
                        self.outbox.put(Emitted(job_id, event))
                    running.drain_ref = None
                if running.run_ref in done:
                    self._finish(job_id, ray.get(running.run_ref, timeout=CALL_TIMEOUT_S))
            except (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError):
                self.outbox.put(Ended(job_id, error=LOST))
                self._end(job_id, kill=True)
            except ray.exceptions.RayTaskError as err:  # the node could not set the job up
                traceback.print_exc()
                self.outbox.put(Ended(job_id, error=f"The job could not be set up on its cluster node "
                                                    f"({str(err).strip().splitlines()[-1]}). The server log has details."))
                self._end(job_id, kill=True)

    def _finish(self, job_id: str, outcome: _Outcome) -> None:
        spec = self.running[job_id].spec
        ended, here = outcome.ended, None
        try:
            if outcome.names:
                here = self._bring_back(spec, outcome)
        except OSError as err:
            ended = Ended(job_id, error=f"The finished run could not be copied back from the cluster ({err}).")
        for event in outcome.rest:
            if isinstance(event, RunFinished) and event.run is not None and outcome.names:
                if here is None:
                    continue  # it could not be placed: the Ended says why
                event = replace(event, run=str(here))
            self.outbox.put(Emitted(job_id, event))
        if here is not None:
            ended = replace(ended, run_dir=str(here))
        self.outbox.put(replace(ended, job_id=job_id))
        self.outbox.put(("node", job_id, outcome.node))
        self._end(job_id, kill=False)

    def _bring_back(self, spec: Any, outcome: _Outcome) -> Path:
        """Place what the job made where the server would have written it; returns the main path."""
        predicting = spec.mode == "predict" and spec.out
        dest = Path(spec.out).parent if predicting else Path(spec.runs_dir)
        dest.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=".tmp-ray-", dir=dest))
        try:
            if outcome.products is not None:
                unpack(outcome.products, staged)
            else:  # shared mode: copy onto this file system first, then rename
                for name in outcome.names:
                    source = Path(outcome.staged) / name
                    (staged / name).parent.mkdir(parents=True, exist_ok=True)
                    (shutil.copytree if source.is_dir() else shutil.copy2)(source, staged / name)
            # Predictions overwrite their --out file, as they do here; runs and comparisons never do.
            names = outcome.names if predicting else [_free_name(staged, name, dest) for name in outcome.names]
            if not predicting:
                _reseal(staged, names, dest)
            place(staged, names, dest)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        return dest / Path(outcome.ended.run_dir).name if predicting else dest / names[0]

    def _end(self, job_id: str, *, kill: bool) -> None:
        running = self.running.pop(job_id, None)
        if running is None:
            return
        if kill:
            try:
                self.ray.kill(running.actor, no_restart=True)
            except Exception:  # noqa: BLE001, S110 - dead already
                pass
        for folder in running.staged:
            shutil.rmtree(folder, ignore_errors=True)


def _probe_version() -> str:
    from core.jobs.ray_backend import code_version as there

    return there()


# ---------------------------------------------------------------- the backend, in the server


class RayBackend:
    """Jobs on the Ray cluster at ``address`` ("auto", "host:port" or "ray://…"), through one
    driver process (``_Driver``).

    cpus_per_job: the CPUs each job asks for (its threads); the slots follow the cluster's CPUs.
    max_jobs: at most this many jobs at once (a cluster shared with others); None: as the CPUs allow.
    shared_dir: a folder every node sees at the same path (``TRAINBOARD_SHARED_DIR``), or None.
    runtime_env: Ray's ``runtime_env`` for this server's Ray job (``{"working_dir": …}`` ships this
        code to the nodes); None when the nodes have Trainboard installed.
    init_kwargs: more ``ray.init`` arguments (tests: ``log_to_driver=False``).
    preload: the spare actor imports the training libraries before its job comes (off in tests).
    """

    def __init__(self, address: str, *, cpus_per_job: int = 1, max_jobs: int | None = None,
                 shared_dir: str | None = None, runtime_env: dict[str, Any] | None = None,
                 init_kwargs: dict[str, Any] | None = None, poll_s: float = 0.05,
                 reconnect_s: float = RECONNECT_S, preload: bool = True) -> None:
        self.settings = Settings(address, cpus_per_job, max_jobs, shared_dir, runtime_env, dict(init_kwargs or {}),
                                 poll_s, reconnect_s, preload)
        self.slots = 0  # until connected
        self.status = f"Connecting to the Ray cluster at {address}…"
        self.connected = False
        self.warm = False  # the next job would start at once (tests wait for it)
        self.nodes: dict[str, dict[str, Any]] = {}  # job id → the node it ran on (the manifest says it too)
        self._broken: str | None = None
        self._holding: set[str] = set()  # the jobs the manager sees running
        self._outbox_late: list[Report] = []  # starts that met no driver
        self._ctx = mp.get_context("spawn")
        self._respawn_at: float | None = None
        self._spawn()

    @property
    def broken(self) -> str | None:
        return self._broken

    def free(self) -> int:
        return max(0, self.slots - len(self._holding)) if self.connected else 0

    def start(self, job_id: str, spec: Any, kind: str) -> None:
        self._holding.add(job_id)
        self.warm = False
        self._send(("start", job_id, spec, kind))

    def poll(self) -> list[Report]:
        reports: list[Report] = []
        alive = self._process is not None and self._process.is_alive()  # first: then all it sent can be read
        for item in self._drain():
            if isinstance(item, Status):
                self.status, self.slots, self.connected, self.warm = item.text, item.slots, item.connected, item.warm
                self._broken = self._broken or item.broken
            elif isinstance(item, tuple):
                self.nodes[item[1]] = item[2]
            elif item.job_id in self._holding:  # not stopped by force
                if isinstance(item, Ended):
                    self._holding.discard(item.job_id)
                reports.append(item)
        if self._process is not None and not alive:
            reports += self._lost_driver()
        elif self._process is None and not self._broken and time.time() >= (self._respawn_at or 0):
            self._spawn()
        return reports

    def request_stop(self, job_id: str) -> None:
        self._send(("stop", job_id))

    def hard_stop(self, job_id: str) -> None:
        self._holding.discard(job_id)
        self._send(("kill", job_id))

    def close(self) -> None:
        if self._process is None:
            return
        self._send(("close",))
        self._process.join(30 if self.connected else 2)  # still connecting: nothing of it to end cleanly
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._process = None

    def driver_pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # ------------------------------------------------------------ internals

    def _spawn(self) -> None:
        self._inbox, self._outbox = self._ctx.Queue(), self._ctx.Queue()
        self._process = self._ctx.Process(target=_driver_main, args=(self.settings, self._inbox, self._outbox),
                                          daemon=True, name="trainboard-ray")
        self._process.start()

    def _send(self, command: tuple) -> None:
        if self._process is not None:
            self._inbox.put(command)
        elif command[0] == "start":  # no driver at the moment: the job cannot run
            self._outbox_late.append(Ended(command[1], error=CLUSTER_GONE))

    def _drain(self) -> list[Any]:
        items: list[Any] = self._outbox_late
        self._outbox_late = []
        if self._process is None:
            return items
        while True:
            try:
                items.append(self._outbox.get_nowait())
            except (queue.Empty, OSError, ValueError, EOFError):
                return items

    def _lost_driver(self) -> list[Report]:
        """The driver process ended (the cluster went away, or it was killed): fail what it ran,
        say so, and start a new one after ``reconnect_s`` (unless the cluster was refused)."""
        lost = [Ended(job_id, error=CLUSTER_GONE) for job_id in sorted(self._holding)]
        self._holding.clear()
        self._process.join(1)
        self._process = None
        self.connected, self.slots, self.warm = False, 0, False
        if not self._broken:
            self._respawn_at = time.time() + self.settings.reconnect_s
            self.status = (f"Lost the Ray cluster at {self.settings.address}; reconnecting every "
                           f"{self.settings.reconnect_s:g} s. Jobs wait in the queue.")
        return lost


def ship_code() -> dict[str, Any]:
    """A ``runtime_env`` that sends this checkout's code to every node (``TRAINBOARD_RAY_SHIP_CODE=1``):
    the ``core`` package only, no data, runs or virtual environments."""
    return {"working_dir": str(Path(__file__).resolve().parents[2]),
            "excludes": [".venv", "runs", ".git", "sample_data", "bench/data", "tests", "**/__pycache__"]}
