"""core.trusted: pickled model files load only inside the run folder load_model vetted (rule 7)."""

import joblib
import pytest

from core.errors import RunError
from core.trusted import load_pickle, trusted_folder


def test_a_pickle_loads_only_inside_the_vetted_folder(tmp_path):
    run, other = tmp_path / "runs" / "r1", tmp_path / "uploads"
    run.mkdir(parents=True)
    other.mkdir()
    joblib.dump({"ok": 1}, run / "model.joblib")
    joblib.dump({"evil": 1}, other / "model.joblib")
    with pytest.raises(RunError):
        load_pickle(run / "model.joblib")  # no folder vetted at all
    with trusted_folder(run):
        assert load_pickle(run / "model.joblib") == {"ok": 1}
        with pytest.raises(RunError):
            load_pickle(other / "model.joblib")
        with pytest.raises(RunError):
            load_pickle(run / ".." / ".." / "uploads" / "model.joblib")  # escaping by ..
    with pytest.raises(RunError):
        load_pickle(run / "model.joblib")  # the door closes again
