"""Pure figure builders: result objects in, plotly figures out (ARCHITECTURE.md, "The flow").

No metric is computed here; ``core.evaluation`` did that. Arrays go to plotly as numpy
(20× cheaper than lists at 10k points) and long series are thinned to a few thousand points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.evaluation import Confusion, Curve, OperatingPoint
from core.importance import Importance

MAX_POINTS = 2000
# The title sits at the very top and the legend in its own band below it, above the plot. No
# plotly template in the charts Streamlit themes itself (resolving one cost ~20 ms per figure, which
# the live chart pays twice a second); only the image gallery sets a plain white one.
# Layouts are nested dicts: plotly resolves "magic underscore" keys (title_text, xaxis_title) slowly.
_LAYOUT = dict(margin=dict(l=10, r=10, t=90, b=10), height=400,
               legend=dict(orientation="h", yanchor="bottom", y=1.01, xanchor="left", x=0))


def _layout(title: str, x_title: str | None = None, y_title: str | None = None, **extra: Any) -> dict:
    """The house layout with a title at the very top and axis titles."""
    layout = {**_LAYOUT, **extra, "title": dict(text=title, y=0.98, yanchor="top", x=0.0, xanchor="left")}
    if x_title is not None:
        layout["xaxis"] = {**layout.get("xaxis", {}), "title": {"text": x_title}}
    if y_title is not None:
        layout["yaxis"] = {**layout.get("yaxis", {}), "title": {"text": y_title}}
    return layout


def _thin(*arrays: np.ndarray, limit: int = MAX_POINTS) -> tuple[np.ndarray, ...]:
    """Every k-th point (always keeping the last) so a chart never carries more than ``limit``."""
    n = len(arrays[0])
    if n <= limit:
        return arrays
    keep = np.unique(np.r_[np.linspace(0, n - 1, limit).astype(int), n - 1])
    return tuple(a[keep] for a in arrays)


def _history_arrays(history: Sequence[Any]) -> dict[str, np.ndarray]:
    """Epoch, train and validation loss from ``EpochEnded`` events or manifest dicts."""
    def get(item, key):
        return item[key] if isinstance(item, Mapping) else getattr(item, key)

    return {k: np.asarray([get(h, k) for h in history], dtype=float) for k in ("epoch", "train_loss", "valid_loss")}


def loss_curve(history: Sequence[Any], x_title: str = "epoch", best_epoch: int | None = None) -> go.Figure:
    """Training vs validation loss per epoch (or boosting round / trees).

    Built in one go from plain dicts: the live chart redraws it twice a second, and plotly's
    incremental ``add_trace``/``add_vline``/``update_layout`` calls cost ~25 ms against ~2 ms.
    """
    traces, extra = [], {}
    if history:
        h = _history_arrays(history)
        epoch, train, valid = _thin(h["epoch"], h["train_loss"], h["valid_loss"])
        mode = "lines+markers" if len(epoch) < 60 else "lines"
        traces = [go.Scatter(x=epoch, y=train, mode=mode, name="training loss"),
                  go.Scatter(x=epoch, y=valid, mode=mode, name="validation loss")]
        if best_epoch is None and len(valid) > 1 and np.isfinite(valid).any():  # one point: nothing to mark
            best_epoch = int(epoch[int(np.nanargmin(valid))])
        if best_epoch is not None:
            # The label sits inside the plot, on the roomier side of the line: above it, it ran into the legend.
            left = len(epoch) > 0 and best_epoch > (epoch[0] + epoch[-1]) / 2
            extra = dict(shapes=[dict(type="line", x0=best_epoch, x1=best_epoch, y0=0, y1=1, yref="paper",
                                      line=dict(dash="dot", color="grey"))],
                         annotations=[dict(x=best_epoch, y=1, yref="paper", text="lowest validation loss",
                                           showarrow=False, yanchor="top", xanchor="right" if left else "left",
                                           xshift=-4 if left else 4, yshift=-8)])
    return go.Figure(data=traces, layout=_layout("Loss while training (lower is better)", x_title, "loss", **extra))


def step_curve(steps: np.ndarray, losses: np.ndarray) -> go.Figure:
    """Per-batch training loss, as it streams in."""
    steps, losses = _thin(np.asarray(steps, dtype=float), np.asarray(losses, dtype=float))
    return go.Figure(data=[go.Scatter(x=steps, y=losses, mode="lines", name="batch loss")],
                     layout=_layout("Training loss per batch", "step", "loss"))


def confusion_matrix(conf: Confusion, normalised: bool = False, threshold: float | None = None) -> go.Figure:
    """Rows are the true class, columns what the model said; the diagonal is right. ``threshold``
    (binary runs) names the decision threshold the predictions were made at, in the title."""
    z = conf.normalised if normalised else conf.matrix
    text = np.vectorize(lambda v: f"{v:.0%}" if normalised else f"{int(v)}")(z) if z.size else z
    labels = list(conf.labels)
    fig = go.Figure(go.Heatmap(z=z, x=labels, y=labels, text=text, texttemplate="%{text}",
                               colorscale="Blues", showscale=False,
                               hovertemplate="true %{y}<br>predicted %{x}<br>%{text}<extra></extra>"))
    size = max(320, min(720, 60 * len(labels) + 160))
    title = "Confusion matrix" + (" (share of each true class" if normalised else " (counts")
    title += f", threshold {threshold:.2f})" if threshold is not None else ")"
    fig.update_layout(_layout(title, "predicted class", "true class", height=size))
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category")
    return fig


def pr_curves(curves: Sequence[Curve], point: OperatingPoint | None = None) -> go.Figure:
    """Precision vs recall per class, average precision in the legend, no-skill lines dotted;
    ``point`` (binary runs) marks where the chosen threshold sits on the curve."""
    fig = go.Figure()
    for c in curves:
        x, y = _thin(c.x, c.y)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=f"{c.label} (AP {c.area:.3f})"))
        fig.add_trace(go.Scatter(x=[0, 1], y=[c.prevalence, c.prevalence], mode="lines", showlegend=len(curves) == 1,
                                 line=dict(dash="dot", color="grey"), name=f"no skill ({c.prevalence:.2f})",
                                 hoverinfo="skip"))
    if point is not None and point.precision is not None and point.recall is not None:
        fig.add_trace(go.Scatter(x=[point.recall], y=[point.precision], mode="markers",
                                 marker=dict(size=13, color="#d62728", line=dict(width=2, color="white")),
                                 name=f"threshold {point.threshold:.2f}",
                                 hovertemplate=f"threshold {point.threshold:.2f}<br>recall %{{x:.3f}}<br>"
                                               "precision %{y:.3f}<extra></extra>"))
    fig.update_layout(_layout("Precision-recall", "recall (share of real cases found)",
                              "precision (share of alarms that are right)"))
    fig.update_xaxes(range=[0, 1])
    fig.update_yaxes(range=[0, 1.02])
    return fig


def roc_curves(curves: Sequence[Curve]) -> go.Figure:
    """True-positive rate vs false-positive rate per class; the diagonal is guessing."""
    fig = go.Figure()
    for c in curves:
        x, y = _thin(c.x, c.y)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=f"{c.label} (AUC {c.area:.3f})"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="grey"),
                             name="guessing (AUC 0.5)", hoverinfo="skip"))
    fig.update_layout(_layout("ROC curve", "false-positive rate", "true-positive rate"))
    fig.update_xaxes(range=[0, 1])
    fig.update_yaxes(range=[0, 1.02])
    return fig


def feature_importance(importances: Sequence[Importance], top: int = 20) -> go.Figure:
    """Horizontal bars, largest at the top, with ± one standard deviation over the shuffles."""
    items = list(importances)[:top][::-1]
    fig = go.Figure(go.Bar(x=np.asarray([i.importance for i in items]), y=[i.feature for i in items],
                           orientation="h", error_x=dict(type="data", array=np.asarray([i.std for i in items])),
                           marker_color=["#1f77b4" if i.importance > 0 else "#bbbbbb" for i in items]))
    fig.update_layout(_layout("Which columns the model relies on", "drop in score when the column is shuffled",
                              height=max(260, 28 * len(items) + 120)))
    return fig


def predicted_vs_actual(predictions: pd.DataFrame) -> go.Figure:
    """Each validation row as a dot; on the diagonal the prediction is exact."""
    true, pred = _thin(predictions["true"].to_numpy(float), predictions["predicted"].to_numpy(float), limit=5000)
    lo, hi = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    fig = go.Figure(go.Scattergl(x=true, y=pred, mode="markers", marker=dict(size=5, opacity=0.5), name="rows"))
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line=dict(dash="dot", color="grey"),
                             name="perfect prediction"))
    fig.update_layout(_layout("Predicted vs actual", "actual", "predicted"))
    return fig


def residuals(predictions: pd.DataFrame) -> go.Figure:
    """Error (actual − predicted) against the prediction: a shapeless band around 0 is good."""
    pred, res = _thin(predictions["predicted"].to_numpy(float), predictions["residual"].to_numpy(float), limit=5000)
    fig = go.Figure(go.Scattergl(x=pred, y=res, mode="markers", marker=dict(size=5, opacity=0.5), name="rows"))
    fig.add_hline(y=0, line_dash="dot", line_color="grey")
    fig.update_layout(_layout("Residuals", "predicted", "actual − predicted"))
    return fig


def class_balance(counts: Mapping[str, int]) -> go.Figure:
    """How many examples each class has."""
    labels = [str(k) for k in counts]
    fig = go.Figure(go.Bar(x=labels, y=np.asarray(list(counts.values())), text=list(counts.values()),
                           textposition="auto"))
    fig.update_layout(_layout("Examples per class", "class", "count"))
    fig.update_xaxes(type="category")
    return fig


def metric_comparison(metrics: Mapping[str, float | None], baseline: Mapping[str, float | None],
                      dummy: Mapping[str, float | None], names: Mapping[str, str]) -> go.Figure:
    """The model's scores beside the baseline's and the no-skill guess's (higher-is-better metrics)."""
    keys = [k for k in metrics if metrics.get(k) is not None and k in names and k not in ("log_loss", "mae", "rmse")]
    fig = go.Figure()
    for label, source in (("this model", metrics), ("linear baseline", baseline), ("no-skill guess", dummy)):
        if any(source.get(k) is not None for k in keys):
            fig.add_trace(go.Bar(name=label, x=[names[k] for k in keys],
                                 y=np.asarray([source.get(k) if source.get(k) is not None else np.nan for k in keys])))
    fig.update_layout(_layout("Scores against the baselines (higher is better)", barmode="group"))
    return fig


#: Runs compared on one chart each get a colour of their own (the app's theme draws them in shades of one blue).
RUN_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


def _run_colour(i: int) -> str:
    return RUN_COLOURS[i % len(RUN_COLOURS)]


def loss_curves_compared(histories: Mapping[str, Sequence[Any]]) -> go.Figure:
    """Validation loss per epoch for several runs on one chart (Runs page comparison)."""
    fig = go.Figure()
    for label, history in histories.items():
        if history:
            h = _history_arrays(history)
            epoch, valid = _thin(h["epoch"], h["valid_loss"])
            fig.add_trace(go.Scatter(x=epoch, y=valid, mode="lines+markers" if len(epoch) < 60 else "lines", name=label,
                                     line=dict(color=_run_colour(len(fig.data)))))
    fig.update_layout(_layout("Validation loss while training (lower is better)", "epoch / boosting round / trees",
                              "validation loss"))
    fig.update_layout(legend=dict(orientation="v", yanchor="top", y=-0.2, xanchor="left", x=0),
                      height=380 + 22 * len(histories))
    return fig


def pr_curves_compared(curves: Mapping[str, Sequence[Curve]]) -> go.Figure:
    """Precision vs recall of several runs on one chart (Runs page comparison): one line per run
    (per run and class for several classes), its average precision in the legend; the no-skill
    line of a binary comparison dotted."""
    fig = go.Figure()
    for label, run_curves in curves.items():
        for c in run_curves:
            x, y = _thin(c.x, c.y)
            name = f"{label} (AP {c.area:.3f})" if len(run_curves) == 1 else f"{label} · {c.label} (AP {c.area:.3f})"
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name, line=dict(color=_run_colour(len(fig.data)))))
    prevalences = {round(float(c[0].prevalence), 6) for c in curves.values() if len(c) == 1}
    if len(prevalences) == 1 and all(len(c) == 1 for c in curves.values()):
        prevalence = prevalences.pop()
        fig.add_trace(go.Scatter(x=[0, 1], y=[prevalence, prevalence], mode="lines", hoverinfo="skip",
                                 line=dict(dash="dot", color="grey"), name=f"no skill ({prevalence:.2f})"))
    fig.update_layout(_layout("Precision-recall (higher and further right is better)",
                              "recall (share of real cases found)", "precision (share of alarms that are right)"))
    fig.update_layout(legend=dict(orientation="v", yanchor="top", y=-0.2, xanchor="left", x=0),
                      height=380 + 22 * len(fig.data))
    fig.update_xaxes(range=[0, 1])
    fig.update_yaxes(range=[0, 1.02])
    return fig


def rgb_image(image: np.ndarray) -> np.ndarray:
    """C×H×W uint8 (C = 1 or 3) → H×W×3, as ``go.Image`` wants."""
    hwc = np.asarray(image).transpose(1, 2, 0)
    return np.repeat(hwc, 3, axis=2) if hwc.shape[2] == 1 else hwc


def unit_saliency(saliency: np.ndarray) -> np.ndarray:
    """One saliency map scaled to 0..1 (channels folded by their largest magnitude)."""
    s = np.abs(np.asarray(saliency, dtype=float))
    if s.ndim == 3:
        s = s.max(axis=0)
    top = s.max()
    return s / top if top > 0 else s


def image_gallery(images: np.ndarray, titles: Sequence[str], saliency: np.ndarray | None = None,
                  columns: int = 4) -> go.Figure:
    """Images (uint8 N×C×H×W) in a titled grid; a saliency map, when given, tints in red the
    pixels that moved the prediction most."""
    from plotly.subplots import make_subplots

    n = len(images)
    cols = max(1, min(columns, n))
    rows = max(1, -(-n // cols))
    height = 60 + 270 * rows
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(titles), horizontal_spacing=0.03,
                        vertical_spacing=min(55 / height, 0.3))  # room for each two-line title
    # only the upper part of each map shows, so a diffuse map does not paint the whole picture red
    tint = [[0.0, "rgba(255,0,0,0)"], [0.5, "rgba(255,0,0,0)"], [1.0, "rgba(255,0,0,0.6)"]]
    for i in range(n):
        row, col = divmod(i, cols)
        fig.add_trace(go.Image(z=rgb_image(images[i]), hoverinfo="skip"), row=row + 1, col=col + 1)
        if saliency is not None:
            fig.add_trace(go.Heatmap(z=unit_saliency(saliency[i]), colorscale=tint, zmin=0, zmax=1, showscale=False,
                                     hoverinfo="skip"), row=row + 1, col=col + 1)
    return _image_grid_layout(fig, height, title_size=12, top=50)


# ---------------------------------------------------------------- look closer (core.explain)


def partial_dependence(dep: Any) -> go.Figure:
    """A ``core.explain.Dependence``: the average prediction as one column is swept (thick), and
    single rows (ICE, thin grey); categories as bars with each row's answer as a dot."""
    percent = dep.output.percent
    y_title = dep.output.words.removeprefix("the ")
    grid = np.asarray(dep.grid)
    if dep.kind == "categorical":
        labels = [str(g) for g in grid]
        fig = go.Figure(go.Bar(x=labels, y=np.asarray(dep.average, dtype=float), name=f"average of {dep.n_rows} rows",
                               marker_color="#1f77b4", opacity=0.8))
        if len(dep.ice):
            fig.add_trace(go.Box(x=np.tile(labels, len(dep.ice)), y=np.asarray(dep.ice, dtype=float).ravel(),
                                 boxpoints="all", jitter=0.4, pointpos=0, fillcolor="rgba(0,0,0,0)",
                                 line=dict(width=0), marker=dict(color="#555555", size=4, opacity=0.5),
                                 name="single rows", hoverinfo="y"))
        fig.update_xaxes(type="category")
    else:
        x = grid.astype(float)
        fig = go.Figure()
        if len(dep.ice):
            # All ICE lines in one trace, separated by gaps: one trace per row cost ~1 ms each to draw.
            xs = np.concatenate([np.r_[x, np.nan] for _ in dep.ice])
            ys = np.concatenate([np.r_[line, np.nan] for line in np.asarray(dep.ice, dtype=float)])
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="rgba(90,90,90,0.25)", width=1),
                                     name=f"single rows ({len(dep.ice)})", hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=x, y=np.asarray(dep.average, dtype=float), mode="lines+markers",
                                 line=dict(color="#1f77b4", width=4), name=f"average of {dep.n_rows} rows"))
    fig.update_layout(_layout(f"How the prediction moves with {dep.column}", dep.column, y_title))
    if percent:
        fig.update_yaxes(tickformat=".0%")
    return fig


def row_pushes(expl: Any, top: int = 12) -> go.Figure:
    """A ``core.explain.RowExplanation``: how far each column's value moves this row's prediction
    from what typical values of that column give (red raises it, blue lowers it), largest on top."""
    items = list(expl.pushes)[:top][::-1]
    scale = 100.0 if expl.output.percent else 1.0
    change = np.asarray([p.change * scale for p in items], dtype=float)
    fig = go.Figure(go.Bar(
        x=change, y=[f"{p.column} = {p.value}" for p in items], orientation="h",
        marker_color=["#d62728" if c > 0 else "#1f77b4" for c in change],
        customdata=[p.typical for p in items],
        hovertemplate="%{y}<br>typical: %{customdata}<br>change %{x:+.3g}<extra></extra>"))
    unit = "percentage points" if expl.output.percent else expl.output.target
    fig.update_layout(_layout(f"Why {expl.row} gets its prediction", f"change in the prediction ({unit})",
                              height=max(240, 30 * len(items) + 130)))
    fig.add_vline(x=0, line_color="grey", line_width=1)
    return fig


def clickable_cells(fig: go.Figure, conf: Confusion, picked: tuple[str, str] | None = None) -> go.Figure:
    """The confusion matrix ``fig`` with a clear marker over every cell: heatmaps cannot be
    selected in plotly, markers can, so a click on a cell reports it (``customdata``: true class,
    predicted class). The ``picked`` cell (true, predicted) is outlined in red."""
    labels = list(conf.labels)
    k = len(labels)
    out = go.Figure(fig)
    chosen = None
    if picked is not None and picked[0] in labels and picked[1] in labels:
        chosen = [labels.index(picked[0]) * k + labels.index(picked[1])]
    size = max(18, min(90, int(0.6 * (float(out.layout.height or 400) - 120) / max(k, 1))))
    out.add_trace(go.Scatter(
        x=np.tile(labels, k), y=np.repeat(labels, k), mode="markers",
        customdata=np.stack([np.repeat(labels, k), np.tile(labels, k)], axis=1),
        marker=dict(symbol="square-open", size=size, color="#d62728", opacity=0.0, line=dict(width=3)),
        selected=dict(marker=dict(opacity=1.0)), unselected=dict(marker=dict(opacity=0.0)), selectedpoints=chosen,
        hovertemplate="true %{customdata[0]}<br>predicted %{customdata[1]}<br>click to see these rows"
                      "<extra></extra>", showlegend=False, name="cells"))
    out.update_layout(clickmode="event+select", dragmode=False)
    return out


def thumbnail_grid(images: np.ndarray, titles: Sequence[str], columns: int = 8) -> go.Figure:
    """Small pictures (uint8 N×C×H×W) in a titled grid of ``columns`` fixed slots, so a few
    thumbnails stay thumbnail-sized instead of filling the width (``image_gallery`` stretches them)."""
    from plotly.subplots import make_subplots

    n = len(images)
    rows = max(1, -(-n // columns))
    height = 60 + 150 * rows
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=list(titles) + [""] * (rows * columns - n),
                        horizontal_spacing=0.02, vertical_spacing=min(45 / height, 0.3))
    for i in range(n):
        row, col = divmod(i, columns)
        fig.add_trace(go.Image(z=rgb_image(images[i]), hoverinfo="skip"), row=row + 1, col=col + 1)
    return _image_grid_layout(fig, height, title_size=11, top=45)


def _image_grid_layout(fig, height: int, title_size: int, top: int):
    """A grid of pictures: no axes, small titles, no legend."""
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_annotations(font_size=title_size)
    fig.update_layout(template="plotly_white", margin=dict(l=10, r=10, t=top, b=10), height=height,
                      showlegend=False)
    return fig
