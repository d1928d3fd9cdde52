"""Trainboard's engine: everything the pages show is computed here (never imports streamlit).

Public entry points, by module (imported where used, so ``import core.x`` stays light):

* ``core.datasets.load_table`` / ``core.images.load_images`` — read a table or images, with clear errors.
* ``core.schema.prepare`` — target, task and column roles.
* ``core.planner.plan`` — the model choice and its reasons.
* ``core.training.fit`` — baseline + main model, reporting through ``core.events`` (``split_data`` +
  ``fit_split`` when the caller should let go of the whole table during the fit, as a job does).
* ``core.pipeline.run_job`` / ``core.jobs.JobManager`` — a whole job, inline or in worker processes.
* ``core.evaluation.report_from_run`` and ``core.plots`` — what the Evaluate page shows.
* ``core.compare.compare``, ``core.predict.predict_file``, ``core.runs`` — comparison, prediction, run folders.
"""

__version__ = "0.1.0"
