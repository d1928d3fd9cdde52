"""A few sessions at once on one job manager (worker processes), through ``core`` as the pages call
it (``tests/core/simulated_class.py`` says what is checked). ``make test`` runs 6 sessions here;
the soak (``make soak``, ``.ci/run``) runs 30 in a process of their own while five browsers use the
app's server (``tests/e2e/test_class_browser.py``)."""

from __future__ import annotations

from tests.core.simulated_class import assert_soak, soak


def test_six_sessions_at_once_share_the_workers_and_nothing_else(tmp_path):
    assert_soak(soak(6, tmp_path), 6)
