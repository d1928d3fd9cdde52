"""Show me the code: a saved run as one standalone, readable Python script.

The script uses plain pandas and scikit-learn (and torch for neural networks), never Trainboard:
it loads the data (its first argument; by default the file the run was trained from), prepares
it as the run did, makes the same split with the same seed, builds the same model with the
same settings, trains it and prints its validation metrics as one JSON object on its last line,
with the manifest's metric keys. Run on the same data it gives the run's metrics.

How it is built: the model's constructor code comes from the fitted pipeline's parameters
(``core.export.walker``, a walk over ``get_params``), never from ``repr``; Trainboard's own
transformers and helpers are copied in from their real source (``core.export.source``); the
facts (columns and roles, target, classes, split, seed, threshold, which rows the delivered
model learnt from) come from the run's manifest. An automatic run's contest is not re-run: the
script trains the model the contest delivered, with its settings and its out-of-fold threshold.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import RunError
from core.export.source import FlatSource
from core.export.walker import Writer
from core.types import DROPPED_ROLES

#: The sentence the contest's reasons hold when the winner was fitted again on every training row
#: (read only for runs saved before the manifest's ``contest.refit``).
REFIT_WORDS = "fitted again on all"
#: The inner slice a delivered model stops on (``core.contest._refit``, ``core.compare._score_fold``).
WATCH_SHARE = 0.1


@dataclass(frozen=True)
class Member:
    """One model the script trains: its registry key and fitted pipeline."""

    key: str
    model: Any


def script_for_run(run_dir: str | Path, runs_dir: str | Path) -> str:
    """The standalone script of a saved run inside ``runs_dir`` (its model is loaded, so only the
    app's own runs are read: ``core.runs.load_model``)."""
    from core.runs import load_manifest, load_model

    model, run = load_model(run_dir, runs_dir)
    return _Script(load_manifest(run.path), model, run.contest_refit).source()


class _Script:
    """The script of a run, section by section (images: ``core.export.image_code``)."""

    def __init__(self, manifest: dict[str, Any], model: Any, contest_refit: bool | None = None) -> None:
        self.m = manifest
        self.model = model
        self.contest_refit = contest_refit  # ``RunRecord.contest_refit``
        self.pieces = FlatSource()
        self.writer = Writer(self.pieces)
        self.task = manifest["task"]
        self.key = manifest["model"]["key"]
        self.images = manifest["data"].get("kind") == "images"
        self.members = self._members()

    # -- the whole script ------------------------------------------------------------------------
    def source(self) -> str:
        if self.images:
            from core.export.image_code import image_script

            body = image_script(self)
        else:
            body = "\n\n".join([self._facts(), self._load(), self._prepare(), self._split(), self._model(),
                                self._train(), self._evaluate(), self._main()])
        copied = self._copied()
        header = self._header()
        self.pieces.import_line("import json")
        self.pieces.import_line("import sys")
        parts = [header + "\n\nfrom __future__ import annotations\n\n" + self.pieces.import_block()]
        if copied:
            parts.append(copied)
        parts.append(body)
        return _tidy("\n\n\n".join(p.strip("\n") for p in parts) + "\n")

    def _header(self) -> str:
        m = self.m
        versions = m.get("versions", {})
        libraries = ("numpy", "scikit-learn", "torch", "pillow") if self.images else (
            "pandas", "numpy", "scikit-learn", "torch")
        needs = ", ".join(f"{k} {versions[k]}" for k in libraries if k in versions and (k != "torch" or self._torch))
        what = "images (a folder or zip of class folders)" if self.images else "data file"
        paragraphs = [
            f"Trainboard run {m['run_id']}: {m['model']['name']} on {m['data']['source']}, as a plain script.",
            f"Trained {m['created']} with {needs}. Run it with the {what} as its argument (by default what "
            "the run was trained from):",
            f"    python {script_name(m['run_id'])} [{'images.zip' if self.images else 'data.csv'}]",
            ("It reads the images as the run did" if self.images else "It prepares the data as the run did")
            + ", makes the same split with the same seed, trains the same model with the same settings and "
            "prints its validation metrics as one JSON object on its last line; on the same data they are the "
            "run's own" + (" (a neural network's within about 0.01: the same on the same machine and threads)."
                           if self._torch else "."),
        ]
        if m.get("candidates"):
            paragraphs.append(
                "The run was automatic: a contest chose the model. This script does not hold the contest again; "
                "it trains the model the contest delivered, with the same settings, on the same rows"
                + (" (all the training rows, as the run did after the contest)" if self._refit else "")
                + (", and decides at the threshold the contest chose out of fold." if self.task == "binary" else "."))
        text = "\n\n".join(p if p.startswith("    ") else textwrap.fill(p, 96) for p in paragraphs)
        return f'#!/usr/bin/env python3\n"""{text}\n"""'

    def _copied(self) -> str:
        defs = self.pieces.definitions()
        if not defs:
            return ""
        modules = sorted({module for module, _ in defs})
        words = textwrap.fill("Trainboard's own pieces, copied from its source (" + ", ".join(modules)
                              + ") so that this script needs no Trainboard.", 96, initial_indent="# ",
                              subsequent_indent="# ")
        out = ["# " + "-" * 96, words, "# " + "-" * 96]
        pieces, previous = [], None
        for module, source in defs:  # each module's pieces together, in its source's order
            pieces.append(source if module == previous else f"# ---- {module} ----\n{source}")
            previous = module
        return "\n".join(out) + "\n\n" + "\n\n\n".join(pieces)

    # -- facts -----------------------------------------------------------------------------------
    def _facts(self) -> str:
        m, data = self.m, self.m["data"]
        columns = {c["name"]: c["role"] for c in data.get("columns", []) if c["role"] not in DROPPED_ROLES}
        threshold = self._threshold()
        lines = [
            _section("facts", "What the run recorded."),
            f"DATA = {self.data_path()!r}  # the file the run was trained from",
            f"TARGET = {data['target']!r}",
            f"TASK = {self.task!r}",
            f"CLASSES = {tuple(data.get('classes') or ())!r}  # in the order of the probability columns",
            "COLUMNS = " + self.writer.expr(columns) + "  # the columns the model reads, and their roles",
            f"VALID_FRACTION = {m['split']['valid_fraction']!r}",
            f"SEED = {m['split']['seed']!r}",
        ]
        if self.task == "binary":
            chosen = (m.get("threshold") or {}).get("chosen_by")
            lines.append(f"THRESHOLD = {threshold!r}  # the positive class from this probability on"
                         + (f" (chosen {chosen})" if chosen and threshold is not None else ""))
        lines.append(f"METRICS = {list(m['metrics'])!r}  # the run's metric keys")
        return "\n".join(lines)

    def data_path(self) -> str:
        """The data the run read: its path when recorded (runs before ``data.origin``: its name)."""
        data = self.m["data"]
        return (data.get("origin") or {}).get("path") or data["source"]

    def threshold(self) -> float | None:
        return self._threshold()

    def _threshold(self) -> float | None:
        """A binary run's decision threshold as its metrics used it: None (the larger probability)
        unless one was chosen."""
        t = self.m.get("threshold") or {}
        if self.task != "binary" or t.get("chosen_by", "default") == "default":
            return None
        return float(t["value"])

    # -- load ------------------------------------------------------------------------------------
    def _load(self) -> str:
        origin = self.m["data"].get("origin") or {}
        fmt = origin.get("format", "csv")
        if fmt == "excel":
            read = "pd.read_excel(path, sheet_name=0)"
        elif fmt == "parquet":
            read = 'pd.read_parquet(path, engine="pyarrow")'
        else:
            options = [f"sep={origin.get('delimiter') or ','!r}"]
            if origin.get("decimal") not in (None, "."):
                options.append(f"decimal={origin['decimal']!r}")
            options.append(f"encoding={origin.get('encoding') or 'utf-8'!r}")
            read = f"pd.read_csv(path, {', '.join(options)})"
        self.pieces.import_line("import pandas as pd")
        return (_section("load", "Read the table.") +
                f'def load(path):\n    """The table as the run read it ({fmt})."""\n'
                f"    frame = {read}\n"
                "    frame.columns = [str(c).strip() for c in frame.columns]\n"
                "    return frame")

    # -- prepare ---------------------------------------------------------------------------------
    def _prepare(self) -> str:
        blank = self.pieces.add(("core.schema", "_blank_to_missing"))
        if self.task == "regression":
            target = f'pd.to_numeric({blank}(frame[TARGET]), errors="coerce").astype("float64")'
            note = "numbers"
        else:
            target = f"{self.pieces.add(('core.schema', 'label_series'))}({blank}(frame[TARGET]))"
            note = 'labels as text ("1", 1 and 1.0 are one class)'
        return (_section("prepare", "The target and the columns the model reads (each column is cast for its role "
                                    "inside the model, by ColumnCaster).") +
                'def prepare(frame):\n    """The input columns and the target; rows without a target are dropped."""\n'
                f"    y = {target}  # {note}\n"
                "    keep = y.notna().to_numpy()\n"
                "    frame, y = frame.loc[keep].reset_index(drop=True), y.loc[keep].reset_index(drop=True)\n"
                "    return frame[list(COLUMNS)], y.rename(TARGET)")

    # -- split -----------------------------------------------------------------------------------
    def _split(self) -> str:
        split_rows = self.pieces.add(("core.splits", "split_rows"))
        text = (_section("split", "The validation rows: the same share, seed and stratification as the run.") +
                'def split(X, y):\n    """Training and validation rows (positions into X and y)."""\n'
                f"    train, valid = {split_rows}(y.to_numpy(), TASK, VALID_FRACTION, SEED)\n")
        if self._dropped_duplicates():
            repeats = self.pieces.add(("core.checks", "validation_duplicates"))
            text += ("    # As the run did: validation rows that repeat a training row exactly (inputs and target)\n"
                     "    # are dropped, so the score is not flattered by rows the model has seen.\n"
                     f"    repeat = {repeats}(X.iloc[train], y.iloc[train], X.iloc[valid], y.iloc[valid])\n"
                     "    valid = valid[~repeat]\n")
        return text + "    return train, valid"

    def dropped_duplicates(self) -> bool:
        return self._dropped_duplicates()

    def _dropped_duplicates(self) -> bool:
        return any(c.get("id") == "split_duplicates" and c.get("acted") for c in self.m.get("checks") or [])

    # -- model -----------------------------------------------------------------------------------
    def _members(self) -> list[Member]:
        if self.images:
            return [Member(self.key, self.model)]
        if self.key == "blend":
            keys = [member["model"] for member in self.m["model"]["params"].get("members", [])]
            models = list(self.model.members)
            if len(keys) != len(models):
                raise RunError("The blend's record does not match its saved members; train the run again.")
            return [Member(k, mdl) for k, mdl in zip(keys, models, strict=True)]
        return [Member(self.key, self.model)]

    @property
    def _torch(self) -> bool:
        return any(m.key in ("mlp", "cnn") for m in self.members)

    def _model(self) -> str:
        out = [_section("model", "The model with the run's settings, written from its fitted parameters.")]
        for i, member in enumerate(self.members):
            out.append(self._make_member(i, member))
        return "\n\n\n".join(out)

    def _make_member(self, i: int, member: Member) -> str:
        steps = member.model.steps
        prep, final = steps[0][1], _estimator(member)
        log = _on_log_scale(member)
        if len(steps) > 2:  # steps between the preparation and the model (the forest's missing-value fill)
            final = _pipeline([*steps[1:-1], (steps[-1][0], final)])
        lines = [f"def make_model{self._suffix(i)}():",
                 f'    """{_family_words(member.key)}: the preparation, then the model."""',
                 "    prep = " + self.writer.expr(prep, 4)]
        if member.key == "mlp":
            lines.append("    settings = " + self.writer.expr(_mlp_settings(final), 4))
            lines.append("    return prep, settings")
        else:
            lines.append("    model = " + self.writer.expr(final, 4))
            lines.append("    return prep, model")
        if log:
            lines.insert(2, "    # It learns log(target) and predicts exp of that: the target is positive with a long tail.")
        return "\n".join(lines)

    def _suffix(self, i: int) -> str:
        return "" if len(self.members) == 1 else f"_{i + 1}"

    # -- train -----------------------------------------------------------------------------------
    def _rows_code(self, member: Member) -> list[str]:
        """Which training rows the delivered model learnt from and which it stopped on."""
        from core.models import get_family

        early = get_family(member.key).early_stops
        if not self.m.get("candidates"):
            return ["    # Not a contest: the model learnt from every training row and watched the validation rows",
                    "    # (early stopping, the curve), as the run did.",
                    "    fit_rows, watch_X, watch_y = np.arange(len(y_train)), X_valid, y_valid"]
        if self._refit:
            if _fixed_rounds(member):
                return ["    # After the contest the winner was fitted again on every training row, growing as many",
                        "    # rounds as its folds did; the validation rows only draw its loss curve.",
                        "    fit_rows, watch_X, watch_y = np.arange(len(y_train)), X_valid, y_valid"]
            if not early:
                return ["    # After the contest the winner was fitted again on every training row.",
                        "    fit_rows = np.arange(len(y_train))"]
            lines = ["    # After the contest the winner was fitted again on the training rows, stopping early on",
                     "    # a tenth of them held apart (the validation rows stay unseen).",
                     f"    fit_rows, watch_rows = {self.pieces.add(('core.splits', 'split_rows'))}("
                     f"y_train.to_numpy(), TASK, {WATCH_SHARE}, SEED)"]
        else:
            lines = self._fold_rows_code()
        return lines + ["    watch_X, watch_y = X_train.iloc[watch_rows], y_train.iloc[watch_rows]"]

    def _fold_rows_code(self) -> list[str]:
        """A delivered model kept from the contest (no refit): the rows of its last fold."""
        from core.contest import HOLDOUT_ROWS

        n_train = int(self.m["split"]["n_train"])
        if n_train >= HOLDOUT_ROWS:
            self.pieces.add(("core.contest", "judging"))
            return ["    # With this many rows the contest judged on one held-apart slice, and the winner kept the",
                    "    # model fitted beside it (watching the slice for early stopping).",
                    "    (fit_rows, watch_rows), = judging(y_train, TASK, SEED).folds"]
        done = self._folds_done()
        self.pieces.add(("core.contest", "judging"))
        split_rows = self.pieces.add(("core.splits", "split_rows"))
        return ["    # The budget left no time to fit the winner again, so the run kept its model from the",
                f"    # contest's last fold it finished (fold {done}): its training part, less a tenth it stopped on.",
                f"    fold_train = judging(y_train, TASK, SEED).folds[{done - 1}][0]",
                f"    inner_fit, inner_watch = {split_rows}(y_train.iloc[fold_train].to_numpy(), TASK, {WATCH_SHARE}, SEED)",
                "    fit_rows, watch_rows = fold_train[inner_fit], fold_train[inner_watch]"]

    def _folds_done(self) -> int:
        winners = [c for c in self.m.get("candidates") or [] if c.get("won") or c.get("blended")]
        counts = [len(next(iter((c.get("scores") or {}).values()), []) or []) for c in winners
                  if c.get("family") != "blend"]
        return max(1, min(counts) if counts else 1)

    @property
    def _refit(self) -> bool:
        """Whether the contest fitted its winner again on every training row."""
        if not self.m.get("candidates"):
            return False
        if self.contest_refit is not None:
            return self.contest_refit
        # A run saved before the manifest recorded ``contest.refit``: its delivery sentence says it.
        reasons = (self.m.get("contest") or {}).get("reasons") or []
        return any(REFIT_WORDS in r for r in reasons)

    def _train(self) -> str:
        self.pieces.import_line("import numpy as np")
        out = [_section("train", "Fit on the training rows, as the run did.")]
        for i, member in enumerate(self.members):
            out.append(self._train_member(i, member))
        return "\n\n\n".join(out)

    def _train_member(self, i: int, member: Member) -> str:
        log = _on_log_scale(member)
        target = "np.log(y.to_numpy(dtype=float))" if log else "y.to_numpy()"
        lines = [f"def train{self._suffix(i)}(X_train, y_train, X_valid, y_valid):",
                 f'    """{_family_words(member.key)}, fitted; returns a function that predicts."""',
                 *self._rows_code(member),
                 f"    prep, model = make_model{self._suffix(i)}()",
                 "    X_fit, y_fit = X_train.iloc[fit_rows], y_train.iloc[fit_rows]"]
        if member.key == "linear":
            lines += self._linear_sample(member)
        lines += [f"    target = lambda y: {target}  # what the model learns",
                  "    Xt = prep.fit_transform(X_fit, target(y_fit))"]
        if member.key == "hgb":
            lines += ["    # The booster grows max_iter rounds (patience past the last one): the watched rows decide nothing."
                      if _fixed_rounds(member) else
                      "    # The booster stops adding trees once the loss on the watched rows stops improving.",
                      "    model.fit(Xt, target(y_fit), X_val=prep.transform(watch_X), y_val=target(watch_y))"]
        elif member.key == "mlp":
            lines += ["    model = fit_mlp(Xt, y_fit.to_numpy(), prep.transform(watch_X), watch_y.to_numpy(), settings)"]
        else:
            lines += ["    model.fit(Xt, target(y_fit))"]
        if self.task == "regression" and log:
            lines += ["    # Held within the log targets it learnt from: exp turns a line's extrapolation into millions.",
                      "    learnt = target(y_train.iloc[fit_rows])",
                      "    low, high = learnt.min(), learnt.max()",
                      "    return lambda X: np.asarray(np.exp(np.clip(model.predict(prep.transform(X)), low, high)), "
                      "dtype=float)"]
        elif self.task == "regression":
            lines += ["    return lambda X: np.asarray(model.predict(prep.transform(X)), dtype=float)"]
        else:
            probabilities = self.pieces.add(("core.evaluation", "class_probabilities"))
            lines += [f"    return lambda X: {probabilities}(model, prep.transform(X), CLASSES)"]
        text = "\n".join(lines)
        if member.key == "mlp":
            text = self._mlp_code() + "\n\n\n" + text.replace("    prep, model = make_model", "    prep, settings = make_model")
        return text

    def _linear_sample(self, member: Member) -> list[str]:
        from core.models.tabular import LINEAR_ROWS

        rows = int(self.m["model"]["params"].get("fit_rows") or 0) if self.key == "linear" else 0
        if rows and rows < LINEAR_ROWS:
            return []
        sample = self.pieces.add(("core.models.tabular", "_sample_rows"))
        return [f"    X_fit, y_fit = {sample}(X_fit, y_fit, {LINEAR_ROWS}, SEED)  # a line barely moves past "
                f"{LINEAR_ROWS:,} rows"]

    # -- the MLP's training loop -------------------------------------------------------------------
    def _mlp_code(self) -> str:
        from core.export.torch_code import mlp_source

        return mlp_source(self.pieces, self.task)

    # -- evaluate ----------------------------------------------------------------------------------
    def _evaluate(self) -> str:
        if self.task == "regression":
            metrics = self.pieces.add(("core.evaluation", "regression_metrics"))
            call = f"{metrics}(y_valid.to_numpy(dtype=float), prediction)"
        else:
            metrics = self.pieces.add(("core.evaluation", "classification_metrics"))
            threshold = "THRESHOLD" if self.task == "binary" else "None"
            call = f"{metrics}(y_valid.astype(str).to_numpy(dtype=object), prediction, CLASSES, {threshold})"
        return (_section("evaluate", "The validation metrics, computed as Trainboard computes them.") +
                'def evaluate(prediction, y_valid):\n    """The metrics of the validation rows, with the run\'s keys."""\n'
                f"    metrics = {call}\n"
                "    return {key: metrics.get(key) for key in METRICS}")

    def _main(self) -> str:
        if len(self.members) == 1:
            fit = ["    predict = train(X_train, y_train, X_valid, y_valid)",
                   "    prediction = predict(X_valid)"]
        else:
            calls = ", ".join(f"train_{i + 1}(X_train, y_train, X_valid, y_valid)" for i in range(len(self.members)))
            fit = ["    # A blend: the average of its members' probabilities (or predicted values).",
                   f"    members = [{calls}]",
                   "    prediction = np.mean([predict(X_valid) for predict in members], axis=0)"]
        return "\n".join([
            _section("run", "Load, prepare, split, train, evaluate; the metrics are the last line printed."),
            "def main():",
            "    path = sys.argv[1] if len(sys.argv) > 1 else DATA",
            "    X, y = prepare(load(path))",
            "    train_rows, valid_rows = split(X, y)",
            "    X_train, y_train = X.iloc[train_rows], y.iloc[train_rows]",
            "    X_valid, y_valid = X.iloc[valid_rows], y.iloc[valid_rows]",
            '    print(f"{len(X_train):,} training rows, {len(X_valid):,} validation rows", file=sys.stderr)',
            *fit,
            "    print(json.dumps(evaluate(prediction, y_valid)))",
            "",
            "",
            'if __name__ == "__main__":',
            "    main()",
        ])


# ---------------------------------------------------------------- helpers


_BAR = "# " + "=" * 96


def _section(name: str, words: str) -> str:
    wrapped = textwrap.fill(f"{name}: {words}", 96, initial_indent="# ", subsequent_indent="# ")
    return f"{_BAR}\n{wrapped}\n{_BAR}\n"


def _tidy(source: str) -> str:
    """No trailing spaces; two blank lines before a section's banner, one after it, at most two
    anywhere else."""
    lines = [line.rstrip() for line in source.splitlines()]
    out: list[str] = []
    for i, line in enumerate(lines):
        if not line:
            if (out and not out[-1] and _closes_banner(out[:-1])) or (len(out) >= 2 and out[-1] == out[-2] == ""):
                continue
        elif line == _BAR and i + 1 < len(lines) and lines[i + 1].startswith("# ") and lines[i + 1] != _BAR:
            while out and not out[-1]:
                out.pop()
            out += ["", ""] if out else []
        elif _closes_banner(out):
            out.append("")
        out.append(line)
    return "\n".join(out).strip("\n") + "\n"


def _closes_banner(out: list[str]) -> bool:
    """Whether the last line written closes a section's banner (a bar, comment lines, a bar)."""
    if not out or out[-1] != _BAR:
        return False
    for line in reversed(out[-6:-1]):
        if line == _BAR:
            return True
        if not line.startswith("# "):
            return False
    return False


def script_name(run_id: str) -> str:
    """The script's file name: the run id, safe on every file system."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in run_id) + ".py"


def _family_words(key: str) -> str:
    from core.models import get_family

    return get_family(key).label


def _on_log_scale(member: Member) -> bool:
    """Whether the member learnt log(target) (``core.models.tabular.LogTargetRegressor``)."""
    steps = getattr(member.model, "steps", None)
    return bool(steps) and type(steps[-1][1]).__name__ == "LogTargetRegressor"


def _estimator(member: Member) -> Any:
    """The member's model after its preparation, unwrapped from the log scale where it learnt one."""
    steps = getattr(member.model, "steps", None)
    if not steps:
        return member.model
    return steps[-1][1].regressor_ if _on_log_scale(member) else steps[-1][1]


def _fixed_rounds(member: Member) -> bool:
    """Whether the member's booster grew a set number of rounds on every training row (the
    contest's refit, ``HGBFamily.refit_settings``) rather than stopping early on a slice."""
    return bool(getattr(_estimator(member), "fixed_rounds_", False))


def _pipeline(steps: list) -> Any:
    from sklearn.pipeline import Pipeline

    return Pipeline(list(steps))


def _mlp_settings(estimator: Any) -> dict[str, Any]:
    """The MLP's settings as its fit used them (``core.models.mlp``)."""
    return {"hidden": [int(h) for h in estimator.hidden], "dropout": float(estimator.dropout),
            "lr": float(estimator.lr), "weight_decay": float(estimator.weight_decay),
            "batch_size": int(estimator.batch_size_), "patience": int(estimator.patience),
            "epochs_run": int(estimator.n_epochs_), "best_epoch": int(estimator.best_epoch_),
            "seed": int(estimator.random_state), "valid_fraction": float(estimator.valid_fraction),
            "class_weight": getattr(estimator, "class_weight", None)}
