"""Trainboard's engine: everything the pages show is computed here (never imports streamlit).

Public entry points, by module (imported where used, so ``import core.x`` stays light):

* ``core.datasets.load_table`` / ``core.images.load_images`` — read a table or images, with clear errors.
* ``core.schema.prepare`` — target, task and column roles.
* ``core.models`` — the registry: every model family and its facts.
* ``core.planner.plan`` / ``core.pipeline.make_plan`` — the model choice, its settings and reasons.
* ``core.training.fit`` — baseline + main model, reporting through ``core.events`` (``split_data`` +
  ``fit_split`` when the caller should let go of the whole table during the fit, as a job does).
* ``core.pipeline.run_job`` / ``core.jobs.make_job_manager`` — a whole job, and where jobs run.
* ``core.run_record.read_run`` / ``report_from_run`` and ``core.plots`` — a saved run, what Evaluate shows.
* ``core.compare.compare``, ``core.predict.predict_file``, ``core.runs`` — comparison, prediction, writing runs.

The map: ARCHITECTURE.md.
"""

import os

__version__ = "0.1.0"

# Arrow's C++ code allocates from the pool this names, read once at its first allocation: set it
# before anything in core imports pyarrow, and so the job workers this process spawns inherit it
# (they load pyarrow while starting, before any of core's code runs in them). Why: core.memory.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
