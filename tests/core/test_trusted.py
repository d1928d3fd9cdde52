"""core.trusted: pickled model files load only inside the run folder load_model vetted (rule 7)."""

import json

import joblib
import pytest

from core.errors import RunError
from core.run_record import SCHEMA_VERSION
from core.trusted import load_pickle, trusted_folder


def write_manifest(run, *files):
    (run / "manifest.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION, "files": list(files)}))


def test_a_pickle_loads_only_inside_the_vetted_folder(tmp_path):
    run, other = tmp_path / "runs" / "r1", tmp_path / "uploads"
    run.mkdir(parents=True)
    write_manifest(run, "model.joblib")
    other.mkdir()
    joblib.dump({"ok": 1}, run / "model.joblib")
    joblib.dump({"evil": 1}, other / "model.joblib")
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
