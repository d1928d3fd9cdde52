"""Each limit is configurable by its environment variable and names itself and that setting when exceeded."""

from __future__ import annotations

import io
import zipfile

import pytest

from core import jobs, limits
from core.datasets import load_table
from core.errors import DataError
from core.images import load_images


def table(rows: int, columns: int) -> bytes:
    header = ",".join(f"c{i}" for i in range(columns))
    body = "\n".join(",".join(str((r + i) % 7) for i in range(columns)) for r in range(rows))
    return f"{header}\n{body}\n".encode()


def test_limits_read_their_variable_and_fall_back_to_the_default():
    assert limits.ROWS.value({}) == limits.ROWS.default
    assert limits.ROWS.value({"TRAINBOARD_MAX_ROWS": "1_000"}) == 1000
    assert limits.ROWS.value({"TRAINBOARD_MAX_ROWS": "lots"}) == limits.ROWS.default
    assert limits.ROWS.value({"TRAINBOARD_MAX_ROWS": "-3"}) == limits.ROWS.default
    assert len({limit.env for limit in limits.ALL}) == len(limits.ALL)


@pytest.mark.parametrize(("variable", "value", "data", "words"), [
    ("TRAINBOARD_MAX_ROWS", "20", table(21, 3), "21 rows; the limit is 20 rows"),
    ("TRAINBOARD_MAX_COLUMNS", "4", table(30, 5), "5 columns; the limit is 4 columns"),
    ("TRAINBOARD_MAX_TABLE_MB", "1", table(200_000, 3), "the limit is 1 MB"),
])
def test_a_table_over_a_limit_names_the_limit_and_the_setting(monkeypatch, variable, value, data, words):
    monkeypatch.setenv(variable, value)
    with pytest.raises(DataError, match=words) as refused:
        load_table(data, "big.csv")
    assert variable in str(refused.value)
    monkeypatch.delenv(variable)
    assert load_table(data, "big.csv").load.n_rows > 0  # within the default limits it loads


def test_the_image_count_limit_names_its_setting(monkeypatch):
    monkeypatch.setenv("TRAINBOARD_MAX_IMAGES", "3")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for i in range(4):
            archive.writestr(f"cats/{i}.png", b"x")
    with pytest.raises(DataError, match="more than 3 files, the limit.*TRAINBOARD_MAX_IMAGES"):
        load_images(out.getvalue(), "four.zip")


def test_the_concurrent_jobs_limit_reaches_the_worker_pool(monkeypatch):
    made = {}

    class Backend:
        def __init__(self, workers=None):
            made["workers"] = workers

    monkeypatch.setattr(jobs, "ProcessBackend", Backend)
    monkeypatch.setattr(jobs, "JobManager", lambda backend, **kwargs: backend)
    jobs.make_job_manager({"TRAINBOARD_MAX_JOBS": "3"})
    assert made["workers"] == 3
    jobs.make_job_manager({})
    assert made["workers"] is None  # the backend's own choice: half the cores
