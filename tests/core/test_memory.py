"""core.memory: Arrow allocates with malloc, so freed memory can go back to the system."""

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa

import core.datasets  # noqa: F401  (reading tables is what switches the pool)
from core.memory import release_freed_memory


def test_arrow_uses_the_system_allocator_and_releases():
    assert pa.default_memory_pool().backend_name == "system"
    before = pa.total_allocated_bytes()
    table = pa.table({"x": pa.array(range(1_000_000))})
    assert pa.total_allocated_bytes() >= before + 8_000_000
    del table
    release_freed_memory()
    assert pa.total_allocated_bytes() <= before + 1_000


def test_arrow_kernels_allocate_with_malloc_too():
    """pandas' casts of Arrow columns run in Arrow's C++ kernels, which take the pool named by
    ARROW_DEFAULT_MEMORY_POOL (``import core`` sets it): in mimalloc, 146 MB of the 1M-row
    table stayed held after it was freed."""
    code = ("import core.datasets, pandas as pd, pyarrow as pa, os\n"
            "s = pd.Series([str(i) for i in range(200_000)], dtype=pd.ArrowDtype(pa.string()))\n"
            "t = s.astype('str'); u = pd.Series(range(200_000), dtype='int64[pyarrow]').astype('float64')\n"
            "print(os.environ['ARROW_DEFAULT_MEMORY_POOL'], pa.mimalloc_memory_pool().max_memory())\n")
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout.split()
    assert out == ["system", "0"]


def test_a_split_job_lets_go_of_the_whole_table():
    """What the job keeps besides its split rows holds no view of the whole table's arrays."""
    import numpy as np
    import pandas as pd

    from core.pipeline import make_plan
    from core.planner import Overrides
    from core.schema import prepare
    from core.training import split_data
    from core.types import LoadReport, TableData

    values = np.random.default_rng(0).standard_normal(2_000)
    frame = pd.DataFrame({"a": values, "b": values * 2, "label": np.where(values > 0, "yes", "no")})
    prepared = prepare(TableData(frame=frame, load=LoadReport(source="t", format="csv", n_rows=2000, n_columns=3)),
                       target="label")
    parts = split_data(prepared, make_plan(prepared, Overrides(model="linear")), keep_rows=False)
    assert len(parts.data.X) == 0 and list(parts.data.X.columns) == list(prepared.X.columns)
    for column in ("a", "b"):  # an empty view's base would be the whole column
        root = parts.data.X[column].to_numpy()
        while isinstance(root.base, np.ndarray):
            root = root.base
        assert root.nbytes < values.nbytes


def test_boosting_makes_its_one_matrix_row_major_without_a_second_copy():
    """The booster's float matrix is filled row-major in one allocation: a column-major one was
    copied whole again by the binning's row subsample (``X.take``: 124 MB at the 1M-row job's
    peak), and reordering pandas' column-major ``to_numpy`` would hold two."""
    import tracemalloc

    import numpy as np
    import pandas as pd

    from core.models.tabular import ReportingHGBClassifier

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"x{i}": rng.standard_normal(50_000) for i in range(8)})
    frame["code"] = rng.integers(0, 4, len(frame)).astype(float)  # an ordinal-coded category
    booster = ReportingHGBClassifier()
    booster._coded_categories = [None] * 8 + [4]
    tracemalloc.start()
    try:
        X, _ = booster._preprocess_X(frame, reset=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert X.flags.c_contiguous and X.dtype == np.float64 and X.shape == frame.shape
    assert np.array_equal(X, frame.to_numpy(), equal_nan=True)
    assert list(booster.feature_names_in_) == list(frame.columns)
    assert peak < 1.5 * X.nbytes  # one matrix (and a column or two of temporaries), not two
    assert booster._preprocess_X(frame, reset=False).flags.c_contiguous  # predicting reads rows too


def test_class_labels_reach_the_models_as_one_string_per_class():
    """Arrow-backed labels turned into numpy made a Python string per row (51 MB at 900k rows,
    through the boosting fit); the models get the same labels sharing one string per class."""
    import numpy as np
    import pandas as pd

    from core.models.tabular import _labels

    y = pd.Series(np.where(np.arange(10_000) % 3, "yes", "no"), dtype="str")
    labels = _labels(y)
    assert labels.dtype == object and np.array_equal(labels, np.asarray(y))
    assert len({id(value) for value in labels}) == 2
