"""core.trusted: pickled model files load only inside the run folder load_model vetted (rule 7)."""

import json

import joblib
import pytest

from core.errors import RunError
from core.run_record import SCHEMA_VERSION
from core.trusted import load_pickle, seal, trusted_folder


def write_manifest(run, *files):
    """A manifest as save_run writes one: the files the run wrote, sealed (links and missing files
    get a seal of nothing, so they are named but can never match)."""
    digests = {**{name: "0" * 64 for name in files},
               **seal(run, [f for f in files if (run / f).is_file() and not (run / f).is_symlink()])}
    (run / "manifest.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION, "files": list(files),
                                                   "seal": digests}))


def test_a_pickle_loads_only_inside_the_vetted_folder(tmp_path):
    run, other = tmp_path / "runs" / "r1", tmp_path / "uploads"
    run.mkdir(parents=True)
    other.mkdir()
    joblib.dump({"ok": 1}, run / "model.joblib")
    joblib.dump({"evil": 1}, other / "model.joblib")
    write_manifest(run, "model.joblib")
    with pytest.raises(RunError):
        load_pickle(run / "model.joblib")  # no folder vetted at all
    with trusted_folder(run, tmp_path / "runs"):
        assert load_pickle(run / "model.joblib") == {"ok": 1}
        with pytest.raises(RunError):
            load_pickle(other / "model.joblib")
        with pytest.raises(RunError):
            load_pickle(run / ".." / ".." / "uploads" / "model.joblib")  # escaping by ..
    with pytest.raises(RunError):
        load_pickle(run / "model.joblib")  # the door closes again


def test_the_door_opens_only_on_a_run_folder_inside_the_runs_folder(tmp_path):
    runs, uploads = tmp_path / "runs", tmp_path / "uploads"
    (runs / "r1").mkdir(parents=True)
    uploads.mkdir()
    (uploads / "manifest.json").write_text("{}")  # looks like a run, but is not in the runs folder
    joblib.dump({"evil": 1}, uploads / "model.joblib")
    with pytest.raises(RunError), trusted_folder(uploads, runs):
        load_pickle(uploads / "model.joblib")
    with pytest.raises(RunError), trusted_folder(runs / "r1", runs):  # no manifest: not a saved run
        pass


def test_only_a_file_the_run_wrote_itself_loads(tmp_path):
    """A file put into a run folder since (not in its manifest), or a link named like the run's
    model, is refused before it is read."""
    runs, uploads = tmp_path / "runs", tmp_path / "uploads"
    run = runs / "r1"
    run.mkdir(parents=True)
    uploads.mkdir()
    joblib.dump({"evil": 1}, uploads / "evil.joblib")
    joblib.dump({"evil": 1}, run / "dropped.joblib")  # inside the folder, but not the run's own
    (run / "model.joblib").symlink_to(uploads / "evil.joblib")
    (run / "inside.joblib").symlink_to(run / "dropped.joblib")  # a link that stays inside
    write_manifest(run, "model.joblib", "inside.joblib")
    with trusted_folder(run, runs):
        for name in ("dropped.joblib", "model.joblib", "inside.joblib"):
            with pytest.raises(RunError):
                load_pickle(run / name)


def test_only_the_bytes_this_installation_sealed_are_unpickled(tmp_path):
    """A model swapped for another under the run's own name, or a manifest rewritten to vouch for
    it without the key, is refused; so is a run saved before runs were sealed — with words that
    say to train it again."""
    import hashlib

    runs = tmp_path / "runs"
    run = runs / "r1"
    run.mkdir(parents=True)
    joblib.dump({"ok": 1}, run / "model.joblib")
    write_manifest(run, "model.joblib")
    with trusted_folder(run, runs):
        assert load_pickle(run / "model.joblib") == {"ok": 1}
    joblib.dump({"evil": 1}, run / "model.joblib")  # swapped in place, the manifest untouched
    with trusted_folder(run, runs), pytest.raises(RunError, match="no seal from this installation"):
        load_pickle(run / "model.joblib")
    forged = hashlib.sha256((run / "model.joblib").read_bytes()).hexdigest()  # a digest without the key
    (run / "manifest.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION, "files": ["model.joblib"],
                                                   "seal": {"model.joblib": forged}}))
    with trusted_folder(run, runs), pytest.raises(RunError, match="no seal"):
        load_pickle(run / "model.joblib")
    (run / "manifest.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION, "files": ["model.joblib"]}))
    with trusted_folder(run, runs), pytest.raises(RunError, match="Train it again here"):
        load_pickle(run / "model.joblib")  # saved before the seal


def test_a_run_a_cluster_node_sealed_with_its_own_key_loads_once_the_server_reseals_it(tmp_path):
    """A Ray node elsewhere seals with a key the server does not hold; bringing the run back
    reseals it with the server's (``core.jobs.ray_backend._reseal`` → ``core.runs.reseal_run``)."""
    import hashlib
    import hmac

    from core.runs import reseal_run

    runs = tmp_path / "runs"
    run = runs / "r1"
    run.mkdir(parents=True)
    joblib.dump({"ok": 1}, run / "model.joblib")
    node_seal = hmac.new(b"another node's key" * 2, (run / "model.joblib").read_bytes(), hashlib.sha256).hexdigest()
    (run / "manifest.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION, "files": ["model.joblib"],
                                                   "seal": {"model.joblib": node_seal}}))
    with trusted_folder(run, runs), pytest.raises(RunError, match="no seal"):
        load_pickle(run / "model.joblib")
    reseal_run(run, runs)
    with trusted_folder(run, runs):
        assert load_pickle(run / "model.joblib") == {"ok": 1}
