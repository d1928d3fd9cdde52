"""``python -m core``: the same functions the pages use, from a terminal (ARCHITECTURE.md, "CLI").

Progress goes to stderr; ``train``'s (and ``check``'s) last stdout line is one JSON object. User
errors exit 2 with one ``error: …`` line and no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from core.errors import TrainboardError
from core.events import (
    CandidateSkipped,
    ContestEnded,
    ContestStarted,
    EpochEnded,
    Event,
    FoldEnded,
    Message,
    RunFinished,
    RunStarted,
    StepEnded,
)
from core.models import trainable
from core.planner import Overrides
from core.runs import DEFAULT_RUNS_DIR


class PrintSink:
    """Prints events as short progress lines (the CLI's callback)."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream

    def __call__(self, event: Event) -> None:
        line = self.format(event)
        if line:
            print(line, file=self.stream, flush=True)

    @staticmethod
    def format(event: Event) -> str | None:
        if isinstance(event, RunStarted):
            reasons = "\n".join(f"  - {r}" for r in event.plan.reasons)
            what = ("an automatic contest (" + ", ".join(c.name for c in event.plan.contest) + ")"
                    if event.plan.is_contest else event.plan.model)
            return (f"training {what} on {event.device.badge}: {event.n_train} training rows, "
                    f"{event.n_valid} validation rows\n{reasons}")
        if isinstance(event, ContestStarted):
            budget = f", the whole run within {event.budget_s:.0f} s" if event.budget_s else ""
            return f"contest of {len(event.candidates)} candidates on {event.folds}{budget}"
        if isinstance(event, ContestEnded):
            return f"contest chose {event.label}\n" + "\n".join(f"  - {r}" for r in event.reasons)
        if isinstance(event, EpochEnded):
            of = f"/{event.max_epochs}" if event.max_epochs else ""
            extra = "".join(f" {k} {v:.4f}" for k, v in event.metrics.items())
            return (f"epoch {event.epoch}{of}: train loss {event.train_loss:.4f}, "
                    f"valid loss {event.valid_loss:.4f}{extra} ({event.seconds:.1f} s)")
        if isinstance(event, Message):
            return f"{event.level}: {event.text}"
        if isinstance(event, RunFinished) and event.run:
            return f"saved {event.run}" + (" (stopped by you)" if event.cancelled else "")
        if isinstance(event, FoldEnded):
            shown = ", ".join(f"{k} {v:.3f}" for k, v in event.scores.items() if v is not None)
            return f"{event.model} fold {event.fold}/{event.n_folds}: {shown} ({event.fit_seconds:.1f} s)"
        if isinstance(event, CandidateSkipped):
            return f"{event.model}: {event.why}"
        if isinstance(event, StepEnded):
            return None
        return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Trainboard from the command line.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a model on a table file, an image folder or a zip")
    train.add_argument("path")
    train.add_argument("--target", help="column to predict (default: a column named target/label/class/y/"
                                        "outcome, else the last column)")
    train.add_argument("--model", default="auto", type=_model_choice,
                       help="auto (the default), or a model of the registry: linear, hgb, forest, mlp, cnn, …")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--runs-dir", default=str(DEFAULT_RUNS_DIR))
    train.add_argument("--max-epochs", type=int, help="most epochs (neural nets), boosting rounds or trees")
    train.add_argument("--time-budget", type=float, help="seconds for the whole run (default for --model auto: by the table's size); it stops there and keeps the best")
    train.add_argument("--valid-fraction", type=float, help="share of rows held out for validation")

    predict = sub.add_parser("predict", help="apply a saved run to new data")
    predict.add_argument("run_dir")
    predict.add_argument("path")
    predict.add_argument("--out", default="predictions.csv")
    predict.add_argument("--runs-dir", default=str(DEFAULT_RUNS_DIR),
                         help="the runs folder RUN_DIR lies in (only runs inside it are loaded)")

    bundle = sub.add_parser("bundle", help="write a saved run as a zip to use without Trainboard: the model, "
                                           "its manifest, requirements.txt and a README with the lines to predict")
    bundle.add_argument("run_dir")
    bundle.add_argument("--out", default="run.zip")
    bundle.add_argument("--runs-dir", default=str(DEFAULT_RUNS_DIR),
                        help="the runs folder RUN_DIR lies in (only runs inside it are loaded)")

    comp = sub.add_parser("compare", help="compare candidate models on the same folds")
    comp.add_argument("path")
    comp.add_argument("--target")
    comp.add_argument("--folds", type=int, help="k for k-fold (default: 5, or 3 from 50k rows, 1 = holdout)")
    comp.add_argument("--time-budget", type=float, default=60.0, help="seconds for the whole comparison")
    comp.add_argument("--seed", type=int, default=0)
    comp.add_argument("--runs-dir", default=str(DEFAULT_RUNS_DIR))

    report = sub.add_parser("report", help="write a saved run's offline report: one HTML file that opens from disk")
    report.add_argument("run_dir")
    report.add_argument("--out", default="report.html")
    report.add_argument("--runs-dir", default=str(DEFAULT_RUNS_DIR),
                        help="the runs folder RUN_DIR lies in (only runs inside it are loaded)")

    show = sub.add_parser("show", help="print a saved run's manifest summary")
    show.add_argument("run_dir")

    code = sub.add_parser("code", help="print (or --out: write) a standalone Python script that reproduces a run")
    code.add_argument("run_dir")
    code.add_argument("--out", help="write the script to this file instead of printing it")
    code.add_argument("--runs-dir", default=str(DEFAULT_RUNS_DIR),
                      help="the runs folder RUN_DIR lies in (only runs inside it are loaded)")

    check = sub.add_parser("check", help="run the data checks on a table, an image folder or a zip: findings in "
                                         "words on stderr, one JSON object as the last stdout line")
    check.add_argument("path")
    check.add_argument("--target", help="column to predict (default: as for train)")
    return parser


def _model_choice(value: str) -> str:
    """``--model``: "auto" or a trainable registry key (read from the registry only when given,
    so other commands do not import every family)."""
    choices = ["auto", *trainable()]
    if value not in choices:
        raise argparse.ArgumentTypeError(f"invalid choice: {value!r} (choose from {', '.join(choices)})")
    return value


def _run(spec) -> Path:
    """Run one job here, or on the Ray cluster when ``TRAINBOARD_RAY_ADDRESS`` is set (its events
    printed as they stream back; the run lands in the same runs folder)."""
    from core.pipeline import run_job

    if not os.environ.get("TRAINBOARD_RAY_ADDRESS"):
        return run_job(spec, PrintSink())
    from core.jobs import make_job_manager

    jobs = make_job_manager(os.environ)
    sink, shown, said = PrintSink(), 0, ""
    job = jobs.get(jobs.submit(spec, owner="cli"))
    try:
        while not job.done or shown < len(job.events):
            if jobs.backend.status != said:  # connecting, the cluster's size, a lost connection
                said = jobs.backend.status
                print(f"cluster: {said}", file=sys.stderr, flush=True)
            for event in job.events[shown:]:
                sink(event)
                shown += 1
            jobs.touch("cli")
            time.sleep(0.05)
    except KeyboardInterrupt:
        jobs.cancel(job.job_id)
        jobs.wait(job.job_id, timeout=jobs.grace_s + 30)
        raise
    finally:
        jobs.shutdown()
    if job.error:
        raise TrainboardError(job.error)
    return Path(job.run_dir)


def cmd_train(args: argparse.Namespace) -> int:
    from core.pipeline import JobSpec
    from core.run_record import read_run

    if not Path(args.path).exists():
        raise TrainboardError(f"There is no file or folder '{args.path}'. Check the path.")
    if args.max_epochs is not None and args.max_epochs < 1:
        raise TrainboardError("--max-epochs must be at least 1.")
    overrides = Overrides(model=args.model, seed=args.seed, max_epochs=args.max_epochs,
                          time_budget=args.time_budget, valid_fraction=args.valid_fraction)
    spec = JobSpec(source=args.path, name=Path(args.path).name, target=args.target, overrides=overrides,
                   runs_dir=args.runs_dir)
    run_dir = _run(spec)
    run = read_run(run_dir, predictions=False)
    print(json.dumps({"run_dir": str(run_dir), "task": run.task, "model": run.model.key, "metrics": run.metrics}))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from core.predict import excel_bytes, predict_file, write_csv

    if os.environ.get("TRAINBOARD_RAY_ADDRESS"):
        import pandas as pd

        from core.pipeline import JobSpec

        out_path = _run(JobSpec(source=args.path, name=Path(args.path).name, mode="predict", run_dir=args.run_dir,
                                runs_dir=args.runs_dir, out=args.out))
        print(json.dumps({"out": str(out_path), "rows": len(pd.read_parquet(out_path.with_suffix(".parquet")))}))
        return 0
    out = predict_file(args.run_dir, args.path, args.runs_dir, on_event=PrintSink())
    out_path = Path(args.out)
    if out_path.suffix.lower() == ".parquet":
        out.to_parquet(out_path, index=False)
    elif out_path.suffix.lower() == ".xlsx":
        out_path.write_bytes(excel_bytes(out))
    else:
        write_csv(out, out_path)
    print(json.dumps({"out": str(out_path), "rows": len(out)}))
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    from core.export.bundle import write_bundle

    out = write_bundle(args.run_dir, args.runs_dir, args.out)
    print(json.dumps({"out": str(out), "bytes": out.stat().st_size}))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from core.compare import load_comparison
    from core.pipeline import JobSpec

    if not Path(args.path).exists():
        raise TrainboardError(f"There is no file or folder '{args.path}'. Check the path.")
    if args.folds is not None and args.folds < 1:
        raise TrainboardError("--folds must be at least 1 (1 means one holdout split).")
    spec = JobSpec(source=args.path, name=Path(args.path).name, target=args.target, mode="compare",
                   folds=args.folds, overrides=Overrides(seed=args.seed, time_budget=args.time_budget),
                   runs_dir=args.runs_dir)
    result = load_comparison(_run(spec)).as_dict()
    print(json.dumps({"leaderboard": [{k: e[k] for k in ("model", "metric", "mean", "std", "fit_s", "scores")}
                                      for e in result["leaderboard"] if e["mean"] is not None],
                      "best": result["best"]}))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from core.export.report import write_report

    report = write_report(args.run_dir, args.out, args.runs_dir)
    print(json.dumps({"out": str(args.out), "charts": report.charts, "kb": round(report.kilobytes, 1),
                      "seconds": round(report.seconds, 3)}))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from core.run_record import load_manifest
    from core.runs import resolve_run

    manifest = load_manifest(resolve_run(args.run_dir, Path(args.run_dir).resolve().parent))  # JSON only
    summary = {k: manifest[k] for k in ("run_id", "created", "task", "metrics", "baseline", "timings",
                                        "stopped_early", "cancelled")}
    summary["model"] = {k: manifest["model"][k] for k in ("key", "name", "params")}
    summary["data"] = {k: v for k, v in manifest["data"].items() if k != "columns"}
    print(json.dumps(summary, indent=2))
    return 0


def cmd_code(args: argparse.Namespace) -> int:
    """The run's script on stdout, or written to ``--out`` (then one JSON line says where)."""
    from core.export.code import script_for_run

    script = script_for_run(args.run_dir, args.runs_dir)
    if args.out is None:
        sys.stdout.write(script)
        return 0
    Path(args.out).write_text(script, encoding="utf-8")
    print(json.dumps({"out": str(args.out), "lines": script.count("\n")}))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """The data checks the Data page shows; exits 0 whatever they find (2 only for input it cannot read)."""
    from core.checks import apply_checks, describe, summary
    from core.datasets import load_table
    from core.images import is_image_source, load_images
    from core.schema import prepare

    if not Path(args.path).exists():
        raise TrainboardError(f"There is no file or folder '{args.path}'. Check the path.")
    name = Path(args.path).name
    if is_image_source(args.path):
        data = load_images(args.path, name=name)
    else:
        data = prepare(load_table(args.path, name=name), target=args.target)
    findings = apply_checks(data).checks
    print(f"{name}: {summary(findings)}", file=sys.stderr)
    for finding in findings:
        print(describe(finding), file=sys.stderr)
    print(json.dumps({"findings": [f.record() for f in findings]}))
    return 0


COMMANDS = {"train": cmd_train, "compare": cmd_compare, "predict": cmd_predict, "report": cmd_report, "show": cmd_show,
            "check": cmd_check, "bundle": cmd_bundle, "code": cmd_code}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except TrainboardError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
