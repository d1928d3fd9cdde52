"""The Ray backend (``core.jobs.ray_backend``) on a local cluster of three nodes, one with a logical
GPU (``ray_cluster`` in tests/conftest.py): what only a cluster does. The job-manager contract runs
on it too (tests/core/test_jobs.py, ``manager[ray]``)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core.events import EpochEnded, RunStarted
from core.jobs import JobManager, make_job_manager
from core.jobs.process import WORKER_ENV
from core.pipeline import JobSpec
from core.planner import Overrides
from core.run_record import read_run
from tests.core import job_bodies as body
from tests.core import ray_bodies
from tests.core.helpers import churn_like
from tests.core.test_jobs import ends_once_with_run_finished, texts, wait_for

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_jobs(ray_cluster):
    """A manager on the whole cluster (three jobs at once), its spare actor warm."""
    from core.jobs.ray_backend import RayBackend

    backend = RayBackend(ray_cluster.address, preload=False, reconnect_s=1.0, init_kwargs={"log_to_driver": False})
    manager = JobManager(backend, grace_s=2.0)
    assert wait_for(lambda: backend.warm or backend.broken, timeout=120), backend.status
    yield manager
    manager.shutdown()


@pytest.fixture
def jobs(ray_jobs):
    yield ray_jobs
    for job in ray_jobs.jobs():
        ray_jobs.cancel(job.job_id)
    for job in ray_jobs.jobs():
        ray_jobs.wait(job.job_id, timeout=60)
    assert wait_for(lambda: ray_jobs.backend.connected and ray_jobs.backend.warm, timeout=60)


@pytest.fixture
def churn_csv(tmp_path):
    path = tmp_path / "uploads" / "churn.csv"
    path.parent.mkdir()
    churn_like(n=300).to_csv(path, index=False)
    return path


def test_events_stream_in_order_before_the_job_ends(jobs):
    job = jobs.get(jobs.submit(body.counting, kind="call"))
    assert wait_for(lambda: len(job.events) >= 5, timeout=60)
    assert job.state == "running"  # they came while it ran, not at its end
    epochs = [e.epoch for e in job.events if isinstance(e, EpochEnded)]
    assert epochs == list(range(1, len(epochs) + 1))
    jobs.cancel(job.job_id)
    job = jobs.wait(job.job_id, timeout=30)
    epochs = [e.epoch for e in job.events if isinstance(e, EpochEnded)]
    assert epochs == list(range(1, len(epochs) + 1)) and texts(job)[-1] == "stopped"


def test_a_job_on_the_cluster_computes_under_the_local_workers_thread_settings(jobs):
    """Idle OpenMP threads sleep (``WORKER_ENV``) and torch keeps to the CPUs the job asked for."""
    job = jobs.wait(jobs.submit(ray_bodies.worker_settings, kind="call"), timeout=120)
    assert job.state == "done", texts(job)
    assert f"OMP_WAIT_POLICY={WORKER_ENV['OMP_WAIT_POLICY']} threads=1" in texts(job)


def test_a_run_trained_on_the_cluster_comes_back_whole_and_predicts(jobs, churn_csv, tmp_path):
    runs = tmp_path / "runs"
    spec = JobSpec(source=str(churn_csv), target="churned", runs_dir=str(runs), overrides=Overrides(model="linear"))
    job = jobs.wait(jobs.submit(spec), timeout=180)
    assert job.state == "done", job.error
    assert Path(job.run_dir).parent == runs and ends_once_with_run_finished(job)
    assert job.events[-1].run == job.run_dir  # the server's path, not the node's scratch folder
    # Nothing half-written left beside it (the job journal's hidden folder aside):
    assert [p.name for p in runs.iterdir() if not p.name.startswith(".")] == [Path(job.run_dir).name]
    run = read_run(job.run_dir)
    assert run.metrics and run.model.key == "linear"
    node = json.loads((Path(job.run_dir) / "manifest.json").read_text())["node"]
    assert node["backend"] == "ray" and len(node["id"]) == 56
    started = next(e for e in job.events if isinstance(e, RunStarted))
    assert node["id"][:8] in started.device.badge  # the badge says which node trained it
    # A prediction ships the saved run to a node and its output back.
    out = tmp_path / "out" / "predictions.csv"
    predict = JobSpec(source=str(churn_csv), runs_dir=str(runs), mode="predict", run_dir=job.run_dir, out=str(out))
    done = jobs.wait(jobs.submit(predict), timeout=180)
    assert done.state == "done", done.error
    assert done.run_dir == str(out) and out.is_file() and out.with_suffix(".parquet").is_file()
    assert len(out.read_text().splitlines()) == 301


def test_stop_saves_the_best_model_so_far(jobs, tmp_path):
    source = tmp_path / "churn.csv"
    churn_like(n=1500).to_csv(source, index=False)
    spec = JobSpec(source=str(source), target="churned", runs_dir=str(tmp_path / "runs"),
                   overrides=Overrides(model="mlp", max_epochs=400))
    job = jobs.get(jobs.submit(spec))
    assert wait_for(lambda: any(isinstance(e, EpochEnded) for e in job.events), timeout=180), texts(job)
    jobs.cancel(job.job_id)
    job = jobs.wait(job.job_id, timeout=60)
    assert job.state == "cancelled" and job.error is None, job.error
    assert job.events[-1].cancelled and read_run(job.run_dir).model.key == "mlp"


def test_a_gpu_job_lands_on_the_gpu_node_and_says_it_trains_on_cpu_there(jobs, ray_cluster, tmp_path):
    """The digits, end to end: the CNN asks for a GPU, so it runs on the node that has one (a
    logical one: torch there has no CUDA, and the job says so)."""
    gpu_node = next(n.node_id for n in ray_cluster.worker_nodes if n._ray_params.num_gpus)
    spec = JobSpec(source=str(ROOT / "sample_data" / "digits.zip"), runs_dir=str(tmp_path / "runs"),
                   overrides=Overrides(model="cnn", max_epochs=1))
    job = jobs.wait(jobs.submit(spec), timeout=300)
    assert job.state == "done", job.error
    node = json.loads((Path(job.run_dir) / "manifest.json").read_text())["node"]
    assert node["id"] == gpu_node and node["gpus"] == ["0"]
    assert any("cannot use a GPU" in t for t in texts(job))


def test_a_lost_node_fails_only_its_job(jobs, ray_cluster):
    from core.jobs.ray_backend import LOST

    first = jobs.get(jobs.submit(ray_bodies.counting_where, kind="call"))
    second = jobs.get(jobs.submit(ray_bodies.counting_where, kind="call"))
    assert wait_for(lambda: texts(first) and texts(second), timeout=60)
    where = {job.job_id: texts(job)[0].split()[1] for job in (first, second)}
    workers = {n.node_id: n for n in ray_cluster.worker_nodes}
    doomed = next(job for job in (first, second) if where[job.job_id] in workers)  # one CPU each: not both on the head
    survivor = second if doomed is first else first
    node = workers[where[doomed.job_id]]
    ray_cluster.remove_node(node, allow_graceful=False)
    try:
        assert jobs.wait(doomed.job_id, timeout=60).error == LOST
        assert survivor.state == "running"
        jobs.cancel(survivor.job_id)
        assert jobs.wait(survivor.job_id, timeout=30).state == "cancelled" and texts(survivor)[-1] == "stopped"
    finally:  # the same node again, for the tests after this one
        ray_cluster.add_node(num_cpus=1, num_gpus=node._ray_params.num_gpus or 0,
                             object_store_memory=node._ray_params.object_store_memory)


def test_a_lost_driver_fails_its_jobs_in_words_and_reconnects(jobs):
    from core.jobs.ray_backend import CLUSTER_GONE

    job = jobs.get(jobs.submit(body.counting, kind="call"))
    assert wait_for(lambda: len(job.events) >= 2, timeout=60)
    os.kill(jobs.backend.driver_pid(), signal.SIGKILL)  # as Ray does when the driver's raylet dies
    assert jobs.wait(job.job_id, timeout=30).error == CLUSTER_GONE
    assert "Lost the Ray cluster" in jobs.backend.status
    assert wait_for(lambda: jobs.backend.connected, timeout=120), jobs.backend.status
    assert jobs.wait(jobs.submit(body.quick, kind="call"), timeout=60).state == "done"


def test_a_cluster_running_other_code_is_refused_at_connect(ray_cluster, tmp_path):
    """The nodes get a copy of Trainboard with one line changed (``runtime_env``): refused, in words."""
    from core.jobs.ray_backend import RayBackend

    other = tmp_path / "other"
    (other / "core").mkdir(parents=True)
    for path in (ROOT / "core").rglob("*.py"):
        target = other / "core" / path.relative_to(ROOT / "core")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    (other / "core" / "glossary.py").write_text((ROOT / "core" / "glossary.py").read_text() + "\n# changed\n")
    manager = JobManager(RayBackend(ray_cluster.address, preload=False, runtime_env={"working_dir": str(other)},
                                    init_kwargs={"log_to_driver": False}))
    try:
        assert wait_for(lambda: manager.backend.broken, timeout=120), manager.backend.status
        assert "runs Trainboard" in manager.backend.broken and "Install this version" in manager.backend.broken
        job = manager.wait(manager.submit(body.quick, kind="call"), timeout=10)
        assert job.state == "failed" and job.error == manager.backend.broken
    finally:
        manager.shutdown()


def test_the_address_chooses_ray_and_nothing_else_imports_it(ray_cluster):
    jobs = make_job_manager({"TRAINBOARD_RAY_ADDRESS": ray_cluster.address, "TRAINBOARD_RAY_MAX_JOBS": "1"})
    try:
        assert type(jobs.backend).__name__ == "RayBackend" and jobs.backend.settings.max_jobs == 1
    finally:
        jobs.shutdown()
    code = ("import sys; from core.jobs import make_job_manager; "
            "m = make_job_manager({'TRAINBOARD_INLINE_JOBS': '1'}); m.shutdown(); print('ray' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def test_the_cli_trains_a_bundled_table_on_the_cluster(ray_cluster, tmp_path):
    env = dict(os.environ, TRAINBOARD_RAY_ADDRESS=ray_cluster.address)
    done = subprocess.run([sys.executable, "-m", "core", "train", str(ROOT / "sample_data" / "iris.csv"),
                           "--target", "species", "--model", "linear", "--runs-dir", str(tmp_path / "runs")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["model"] == "linear" and result["metrics"]
    assert "cluster: Ray cluster" in done.stderr and "Training on the Ray node" in done.stderr
    assert json.loads((Path(result["run_dir"]) / "manifest.json").read_text())["node"]["backend"] == "ray"


def test_a_shared_folder_carries_the_data_instead_of_the_object_store(ray_cluster, churn_csv, tmp_path):
    """``TRAINBOARD_SHARED_DIR``: a runs folder inside it is written by the node itself; one outside it
    gets the run copied back whole; the upload is copied in once and removed after the job."""
    from core.jobs.ray_backend import RayBackend

    shared = tmp_path / "shared"
    shared.mkdir()
    manager = JobManager(RayBackend(ray_cluster.address, shared_dir=str(shared), max_jobs=1, preload=False,
                                    init_kwargs={"log_to_driver": False}))
    try:
        for runs in (shared / "runs", tmp_path / "server-runs"):
            spec = JobSpec(source=str(churn_csv), target="churned", runs_dir=str(runs),
                           overrides=Overrides(model="linear"))
            job = manager.wait(manager.submit(spec), timeout=180)
            assert job.state == "done", job.error
            assert Path(job.run_dir).parent == runs and job.events[-1].run == job.run_dir
            assert json.loads((Path(job.run_dir) / "manifest.json").read_text())["node"]["backend"] == "ray"
            assert read_run(job.run_dir).model.key == "linear"
        assert sorted(p.name for p in shared.iterdir()) == [".trainboard-jobs", "runs"]
        assert wait_for(lambda: not any((shared / ".trainboard-jobs").iterdir()), timeout=10)
    finally:
        manager.shutdown()


def test_a_run_named_like_one_already_on_the_server_gets_the_next_number(tmp_path):
    """Two nodes finishing in the same second name their runs alike; neither may overwrite the other."""
    from core.jobs.ray_backend import _free_name, place

    dest, staged = tmp_path / "runs", tmp_path / "staged"
    for folder in (dest / "20261202-101500-iris-linear", staged / "20261202-101500-iris-linear"):
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text(json.dumps({"run_id": "20261202-101500-iris-linear", "at": str(folder)}))
    (dest / "comparisons").mkdir()
    (dest / "comparisons" / "a.json").write_text("old")
    (staged / "comparisons").mkdir()
    (staged / "comparisons" / "a.json").write_text("new")
    names = [_free_name(staged, n, dest) for n in ("20261202-101500-iris-linear", "comparisons/a.json")]
    place(staged, names, dest)
    assert names == ["20261202-101500-iris-linear-2", "comparisons/a-2.json"]
    moved = json.loads((dest / names[0] / "manifest.json").read_text())
    assert moved["run_id"] == names[0] and "staged" in moved["at"]
    assert json.loads((dest / "20261202-101500-iris-linear" / "manifest.json").read_text())["at"].endswith(
        "runs/20261202-101500-iris-linear")
    assert (dest / "comparisons" / "a.json").read_text() == "old" and (dest / names[1]).read_text() == "new"
