"""The offline report: one self-contained HTML file of a saved run, to keep, mail or print.

Everything comes from the run folder (``core.run_record``; no retraining): the data and the
checks' findings, the plan and its reasons, the contest's leaderboard, the scores against the
baselines, and every chart the Evaluate page draws (``core.plots``) with its reading
(``core.readings``). plotly.js is embedded once; the file names no address outside itself (no
CDN, fonts or MathJax), so it opens from disk with the network off. Every string that comes from
the data or the user (column names, file names, class labels) is HTML-escaped: they are untrusted.
The readings' glossary links point at a glossary section at the end of the report.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go

from core import explain, glossary, plots, readings
from core.errors import TrainboardError
from core.evaluation import LOWER_IS_BETTER, METRIC_NAMES, PROBA_PREFIX, OperatingPoint, at_threshold, verdict
from core.image_eval import Gallery, read_gallery
from core.run_record import Report, RunRecord, contest_board, report_from_run
from core.runs import load_model, resolve_run

#: The ``<meta>`` that says how many charts the report holds (the browser test counts them).
CHARTS_META = "trainboard-charts"
#: Partial dependence is drawn for this many columns, the most important first.
DEPENDENCE_COLUMNS = 3
WORST_ROWS = 10  # rows of the worst-errors table
THUMBNAIL_PX = 128  # the gallery's pictures are drawn this wide (small images scaled up, pixelated)
TASK_NAMES = {"binary": "yes/no classification", "multiclass": "classification into several classes",
              "regression": "predicting a number"}

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; max-width: 1100px;
       margin: 0 auto; padding: 1.5rem; line-height: 1.45; }
h1 { font-size: 1.7rem; margin-bottom: .2rem; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem;
margin-top: 2.2rem; } h3 { margin-bottom: .3rem; }
.meta, .how { color: #555; font-size: .92rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .92rem; }
th, td { border: 1px solid #ddd; padding: .25rem .55rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.chart { margin: 1rem 0 1.6rem; break-inside: avoid; page-break-inside: avoid; }
.reading { background: #f6f8fb; border-left: 4px solid #1f77b4; padding: .45rem .7rem; margin: .3rem 0; }
.finding { border-left: 4px solid #bbb; padding: .3rem .7rem; margin: .5rem 0; }
.finding.warning { border-color: #e6a700; } .finding.blocker { border-color: #d62728; }
.gallery { display: flex; flex-wrap: wrap; gap: .8rem; } figure { margin: 0; width: 270px; break-inside: avoid; }
figure img { width: 128px; image-rendering: pixelated; border: 1px solid #ccc; }
figcaption { font-size: .85rem; } code { background: #f2f2f2; padding: 0 .2rem; }
dt { font-weight: 600; margin-top: .5rem; } dd { margin-left: 1rem; }
.verdict { font-weight: 600; }
.chart .plotly-graph-div { max-width: 1000px; }
@media print { body { max-width: none; padding: 0; } a { color: inherit; text-decoration: none; }
               h2 { break-after: avoid; } .reading { background: none; }
               .chart > div:first-child { zoom: 0.68; } }  /* charts drawn for the screen fit the paper */
"""


@dataclass(frozen=True)
class OfflineReport:
    """The report's HTML and what it holds (the CLI and the pages say how big and how quick)."""

    html: str
    charts: int
    seconds: float

    @property
    def kilobytes(self) -> float:
        return len(self.html.encode()) / 1024


@dataclass
class _Builder:
    """The report's body as it grows: HTML parts, the charts drawn, the glossary terms linked."""

    parts: list[str] = field(default_factory=list)
    charts: int = 0
    terms: dict[str, None] = field(default_factory=dict)  # ordered set

    def add(self, *pieces: str) -> None:
        self.parts.extend(pieces)

    def reading(self, markdown: str) -> str:
        """A reading (Streamlit markdown, ``core.readings``) as safe HTML, its links kept for the glossary."""
        return f'<p class="reading">{reading_html(markdown, self.terms)}</p>'

    def chart(self, fig: go.Figure, reading: str, term: str | None = None, plain: bool = False) -> None:
        """A figure, then its reading; ``term`` adds "In the glossary: …"; ``plain`` readings are
        not markdown (``core.explain``'s, which name columns as they are)."""
        self.charts += 1
        fig = go.Figure(fig)
        fig.update_layout(template="plotly_white")
        figure = fig.to_html(full_html=False, include_plotlyjs=False, include_mathjax=False,
                             config={"displaylogo": False, "responsive": True})
        words = f'<p class="reading">{html.escape(reading)}</p>' if plain else self.reading(reading)
        if term:
            self.terms[term] = None
            name = glossary.TERMS[term].name
            words += f'<p class="how">In the glossary: <a href="#term-{term}">{html.escape(name)}</a>.</p>'
        self.add(f'<div class="chart">{figure}{words}</div>')


# ---------------------------------------------------------------- building


def build_report(run_dir: str | Path, runs_dir: str | Path) -> OfflineReport:
    """The offline report of a run inside ``runs_dir`` (only the app's own runs: partial
    dependence loads the model)."""
    start = time.perf_counter()
    path = resolve_run(run_dir, runs_dir)
    report = report_from_run(path)
    run = report.run
    out = _Builder()
    point = at_threshold(run.predictions, run.classes, run.threshold.value) \
        if run.task == "binary" and run.threshold is not None else None
    _header(out, run)
    _data(out, run)
    _plan(out, run)
    _contest(out, run)
    _scores(out, run)
    _training(out, run)
    _errors(out, report, point)
    _why(out, run, runs_dir)
    _worst(out, run)
    _details(out, run)
    _glossary(out)
    page = _page(run, out)
    return OfflineReport(page, out.charts, time.perf_counter() - start)


def write_report(run_dir: str | Path, out: str | Path, runs_dir: str | Path) -> OfflineReport:
    """Build the report and write it to ``out`` (UTF-8)."""
    report = build_report(run_dir, runs_dir)
    Path(out).write_text(report.html, encoding="utf-8")
    return report


def _page(run: RunRecord, body: _Builder) -> str:
    from plotly.offline import get_plotlyjs

    title = html.escape(f"Trainboard report: {run.model.label} on {run.data.source}")
    count = body.charts
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>\n'
            f'<meta name="{CHARTS_META}" content="{count}">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<style>{_STYLE}</style>\n<script>{get_plotlyjs()}</script>\n</head>\n<body>\n"
            + "\n".join(body.parts)
            + f'\n<p class="meta">This report holds {count} chart{"s" if count != 1 else ""}. It was made by '
              "Trainboard from the run folder alone and needs no network.</p>\n</body>\n</html>\n")


def _header(out: _Builder, run: RunRecord) -> None:
    e = html.escape
    what = TASK_NAMES[run.task] + (f" ({len(run.classes)} classes)" if run.task == "multiclass" else "")
    out.add(f"<h1>{e(run.model.label)} on {e(run.data.source)}</h1>",
            f'<p class="meta">Predicts <strong>{e(run.data.target)}</strong>: {e(what)}. Run <code>{e(run.run_id)}'
            f"</code>, trained {e(run.created.replace('T', ' ').removesuffix('Z'))} UTC on {e(run.device.name)}.</p>")
    if run.cancelled:
        out.add("<p><strong>This run was stopped before it finished:</strong> these are the scores of the best model "
                "saved so far.</p>")
    out.add('<p class="meta">Every score here is measured on validation rows the model never trained on.</p>')


def _data(out: _Builder, run: RunRecord) -> None:
    d, e = run.data, html.escape
    out.add("<h2>The data</h2>")
    if d.kind == "images":
        size = f", {d.image_size}×{d.image_size} pixels, {d.channels} channel{'s' if d.channels != 1 else ''}" \
            if d.image_size else ""
        out.add(f"<p>{d.n_rows:,} images in {len(d.classes)} classes{size}: "
                f"{', '.join(e(c) for c in d.classes)}.</p>")
        if d.n_skipped_files:
            out.add(f"<p>{d.n_skipped_files:,} files were skipped, for example:</p>",
                    _table(("file", "why"), d.skipped_files[:10]))
    else:
        out.add(f"<p>{d.n_rows:,} rows; {d.n_features} of the {len(d.columns)} other columns were used to predict "
                f"<strong>{e(d.target)}</strong>"
                + (f" (classes: {', '.join(e(c) for c in d.classes)})" if d.classes else "") + ".</p>")
        if d.n_rows_dropped:
            out.add(f"<p>{d.n_rows_dropped:,} rows without a target value were left out.</p>")
        out.add(_table(("column", "used as", "why"),
                       [(c.name, c.role if c.used else f"left out ({c.role})", c.reason) for c in d.columns]))
    for message in d.messages:
        out.add(f'<p class="meta">{e(message)}</p>')
    out.add("<h3>What the checks found</h3>")
    if not run.checks:
        out.add("<p>The data checks found nothing to report.</p>")
    for finding in run.checks:
        evidence = (finding.get("evidence") or {}).get("text", "")
        severity = str(finding.get("severity", "note"))
        out.add(f'<div class="finding {e(severity)}"><strong>{e(severity.capitalize())}: {e(finding.get("title", ""))}'
                f"</strong><br>{e(evidence)}" + (f"<br><em>{e(finding['action'])}</em>" if finding.get("action")
                                                 else "") + "</div>")


def _plan(out: _Builder, run: RunRecord) -> None:
    e, s = html.escape, run.split
    out.add("<h2>The plan and its reasons</h2>", "<ul>" + "".join(f"<li>{e(r)}</li>" for r in run.model.reasons)
            + "</ul>")
    out.add(f"<p><strong>Split:</strong> {s.n_train:,} training rows, {s.n_valid:,} validation rows "
            f"({s.valid_fraction:.0%} held out, {e(s.strategy.replace('_', ' '))}, seed {s.seed}).</p>")
    if run.threshold is not None:
        who = {"you": "chosen by you", "default": "the default",
               "out-of-fold": "chosen for the best macro F1 on the training rows' out-of-fold predictions"}
        out.add(f"<p><strong>Decision threshold:</strong> “{e(run.classes[-1])}” from a probability of "
                f"{run.threshold.value:.2f} ({e(who.get(run.threshold.chosen_by, run.threshold.chosen_by))}).</p>")
    if run.model.params:
        out.add(f"<h3>Settings of the {e(run.model.name)}</h3>",
                _table(("setting", "value"), [(k, _setting(v)) for k, v in run.model.params.items()]))


def _contest(out: _Builder, run: RunRecord) -> None:
    if not run.candidates:
        return
    rows = contest_board(run.candidates)
    metric = METRIC_NAMES.get(next((r["metric"] for r in rows if r["metric"]), ""), "score")
    out.add("<h2>How the model was chosen: the contest</h2>",
            _table(("model", f"{metric} (mean ± sd over the folds)", "folds done", "seconds per fold", "note"),
                   [(r["model"], _mean_sd(r["mean"], r["std"]), r["folds"],
                     "" if r["fit_s"] is None else f"{r['fit_s']:.2f}", r["note"]) for r in rows]),
            "<ul>" + "".join(f"<li>{html.escape(r)}</li>" for r in run.contest_reasons) + "</ul>",
            '<p class="meta">Scored inside the training rows only; the validation rows took no part in the choice.</p>')


def _scores(out: _Builder, run: RunRecord) -> None:
    keys = [k for k in run.metrics if k in METRIC_NAMES]
    sources = [("this model", run.metrics)] + ([("linear baseline", run.baseline_metrics)] if run.baseline_metrics
                                               else []) + [("no-skill guess", run.dummy_metrics)]
    judged = verdict(run.main_metric, run.metrics, run.baseline_metrics, run.dummy_metrics)
    out.add("<h2>Scores against the baselines</h2>", f'<p class="verdict">{html.escape(judged.text)}</p>')
    out.add(_table(["score"] + [name for name, _ in sources],
                   [[METRIC_NAMES[k] + (" (lower is better)" if k in LOWER_IS_BETTER else "")]
                    + [_number(source.get(k)) for _, source in sources] for k in keys], numeric_from=1))
    out.chart(plots.metric_comparison(run.metrics, run.baseline_metrics, run.dummy_metrics, METRIC_NAMES),
              "Each group of bars is one score: this model, the simple linear model and the no-skill guess. "
              "A model worth keeping beats both clearly.", "baseline")


def _training(out: _Builder, run: RunRecord) -> None:
    out.add("<h2>Training</h2>")
    reading = readings.loss_curve(run.history, run.model.curve_unit, stopped_early=run.stopped_early,
                                  cancelled=run.cancelled, family=run.model.family, contest=bool(run.candidates),
                                  contest_curve=run.contest_curve)
    if len(run.history) <= 1:  # fitted in one go: a chart of one point would say nothing its reading doesn't
        out.add(out.reading(reading))
    else:
        out.chart(plots.loss_curve(run.history, x_title=run.model.curve_unit), reading, "overfitting")


def _errors(out: _Builder, report: Report, point: OperatingPoint | None) -> None:
    run = report.run
    out.add("<h2>Where it errs</h2>")
    if not run.classification:
        out.chart(plots.predicted_vs_actual(run.predictions), readings.predicted_vs_actual(run.predictions), "mae")
        out.chart(plots.residuals(run.predictions), readings.residuals(run.predictions), "residual")
        return
    matrix = point.confusion if point is not None else run.confusion
    threshold = point.threshold if point is not None else None
    if matrix is not None:
        out.chart(plots.confusion_matrix(matrix, threshold=threshold), readings.confusion(matrix, threshold),
                  "confusion-matrix")
    if report.pr_curves:
        imbalanced = _imbalanced(run)
        out.chart(plots.pr_curves(report.pr_curves, point), readings.pr_curves(report.pr_curves, point),
                  "precision-recall-curve")
        out.chart(plots.roc_curves(report.roc_curves), readings.roc_curves(report.roc_curves, point, imbalanced),
                  "roc-auc")


def _imbalanced(run: RunRecord) -> bool:
    from core import planner

    return planner.is_imbalanced(run.predictions["true"], run.classes)


def _why(out: _Builder, run: RunRecord, runs_dir: str | Path) -> None:
    if run.importances:
        out.add("<h2>Which columns matter</h2>")
        out.chart(plots.feature_importance(run.importances), readings.importances(run.importances, run.task),
                  "permutation-importance")
    if run.kind == "tabular":
        _dependence(out, run, runs_dir)
    else:
        gallery = read_gallery(run.path)
        out.add("<h2>The most confident mistakes</h2>")
        out.add(_gallery(gallery) if gallery is not None else "<p>This run kept no pictures of its mistakes.</p>")
        if gallery is not None:
            out.add(out.reading(readings.gallery(gallery.true, gallery.predicted, gallery.confidence, run.confusion)))
            out.terms["saliency"] = None
            out.add('<p class="how">The validation images the model got wrong while being most sure of itself; the '
                    "second picture tints in red the pixels that pushed it to its answer most. If they lie off the "
                    'object, it learnt a shortcut. In the glossary: <a href="#term-saliency">saliency</a>.</p>')


def _dependence(out: _Builder, run: RunRecord, runs_dir: str | Path) -> None:
    """Partial dependence of the most important columns, on the validation inputs the run kept."""
    roles = [(c.name, c.role) for c in run.data.columns if c.used]
    columns = explain.sweepable(roles, [(i.feature, i.importance) for i in run.importances])[:DEPENDENCE_COLUMNS]
    kept = explain.read_inputs(run.path)
    if not columns or kept is None:
        return
    out.add("<h2>How the prediction moves with a column</h2>",
            '<p class="how">The thick line (or each bar): the model\'s average answer over validation rows when one '
            "column alone is set to each value, everything else in each row kept; thin lines (or dots) are single "
            "rows. This shows what the model learnt, not what causes what in the world.</p>")
    try:
        model = load_model(run.path, runs_dir)[0]
    except TrainboardError as err:
        out.add(f"<p>{html.escape(str(err))}</p>")
        return
    output = explain.output_for(run.task, run.classes, run.data.target)
    features = kept[list(run.data.feature_columns)]
    for column in columns:
        try:
            dep = explain.partial_dependence(model, features, column, output, dict(roles)[column],
                                             seed=run.split.seed, rows=kept["row"].to_numpy())
        except (TrainboardError, ValueError) as err:
            out.add(f"<p>{html.escape(column)}: {html.escape(str(err))}</p>")
            continue
        out.chart(plots.partial_dependence(dep), explain.dependence_reading(dep), "partial-dependence", plain=True)


def _gallery(gallery: Gallery) -> str:
    figures = []
    for i, title in enumerate(gallery.titles):
        image = plots.rgb_image(gallery.images[i])
        pictures = [_png(image)]
        if gallery.saliency is not None and gallery.saliency[i].shape[-2:] == image.shape[:2]:
            pictures.append(_png(_tinted(image, plots.unit_saliency(gallery.saliency[i]))))
        alt = html.escape(title.replace("<br>", " "), quote=True)
        caption = "<br>".join(html.escape(part) for part in title.split("<br>"))
        figures.append("<figure>" + " ".join(f'<img alt="{alt}" src="data:image/png;base64,{p}">' for p in pictures)
                       + f"<figcaption>{caption}</figcaption></figure>")
    return '<div class="gallery">' + "".join(figures) + "</div>"


def _tinted(image: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """The picture with its most salient pixels in red, as the Evaluate page's overlay draws them
    (only the upper half of the map shows, at most 60% red)."""
    alpha = (np.clip((unit - 0.5) / 0.5, 0, 1) * 0.6)[..., None]
    return (image * (1 - alpha) + np.array([255, 0, 0]) * alpha).astype(np.uint8)


def _png(image: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _worst(out: _Builder, run: RunRecord) -> None:
    if run.worst is None or run.worst.empty:
        return
    worst = run.worst.drop(columns=[c for c in run.worst.columns if c.startswith(PROBA_PREFIX) or c == "error"])
    worst = worst.head(WORST_ROWS).rename(columns=lambda c: str(c).removeprefix("input: "))
    how = ", most confident first" if run.classification else ", largest error first"
    out.add("<h2>The worst errors</h2>", f"<p>The validation rows the model got most wrong{how}.</p>",
            _table(list(worst.columns), [[_cell(v) for v in row] for row in worst.itertuples(index=False)]))


def _details(out: _Builder, run: RunRecord) -> None:
    out.add("<h2>Details</h2>",
            _table(("", ""), [("device", f"{run.device.name} ({run.device.type})"),
                              ("timings (s)", ", ".join(f"{k.removesuffix('_s')} {v:g}"
                                                       for k, v in run.timings.items())),
                              ("versions", ", ".join(f"{k} {v}" for k, v in run.versions.items()))]))
    for message in run.messages:
        out.add(f'<p class="meta">{html.escape(message)}</p>')


def _glossary(out: _Builder) -> None:
    if not out.terms:
        return
    out.add("<h2>Words used in this report</h2>", "<dl>" + "".join(
        f'<dt id="term-{key}">{html.escape(glossary.TERMS[key].name)}</dt>'
        f"<dd>{html.escape(glossary.TERMS[key].text)}</dd>" for key in out.terms) + "</dl>")


# ---------------------------------------------------------------- text


#: In a reading: a backslash escape, a glossary link, or a code span (``core.readings.quote``/``code``).
_MARKDOWN = re.compile(r"\\(?P<escaped>.)"
                       rf"|\[(?P<words>[^\]]+)\]\({re.escape(glossary.PAGE_URL)}#(?P<key>[a-z0-9-]+)\)"
                       r"|(?P<fence>`+) ?(?P<code>.*?) ?(?P=fence)", re.DOTALL)


def reading_html(text: str, terms: dict[str, None] | None = None) -> str:
    """The little markdown a reading holds (``core.readings``), as HTML: glossary links to the
    report's own glossary (their keys noted in ``terms``), code spans, backslash escapes;
    everything else escaped."""
    terms = {} if terms is None else terms
    parts, at = [], 0
    for match in _MARKDOWN.finditer(text):
        parts.append(html.escape(text[at:match.start()]))
        at = match.end()
        if match["escaped"] is not None:
            parts.append(html.escape(match["escaped"]))
        elif match["key"] is not None and match["key"] in glossary.TERMS:
            terms[match["key"]] = None
            parts.append(f'<a href="#term-{match["key"]}">{html.escape(match["words"])}</a>')
        elif match["key"] is not None:
            parts.append(html.escape(match["words"]))
        else:
            parts.append(f"<code>{html.escape(match['code'])}</code>")
    parts.append(html.escape(text[at:]))
    return "".join(parts)


def _table(header: Sequence[Any], rows: Iterable[Iterable[Any]], numeric_from: int | None = None) -> str:
    """An HTML table, every cell escaped; columns from ``numeric_from`` on are right-aligned."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = []
    for row in rows:
        cells = [f'<td{" class=num" if numeric_from is not None and i >= numeric_from else ""}>'
                 f"{html.escape(str(v))}</td>" for i, v in enumerate(row)]
        body.append("<tr>" + "".join(cells) + "</tr>")
    head = f"<thead><tr>{head}</tr></thead>" if any(str(h) for h in header) else ""
    return f"<table>{head}<tbody>{''.join(body)}</tbody></table>"


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _mean_sd(mean: float | None, sd: float | None) -> str:
    if mean is None:
        return "—"
    return f"{mean:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")


def _setting(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return readings.number(value, 4)
    return str(value)
