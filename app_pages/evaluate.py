"""Evaluate: how good is a trained model, honestly? Scores against baselines, where it errs and why."""

import streamlit as st

from core import plots, readings
from core.errors import TrainboardError
from core.evaluation import METRIC_NAMES, PROBA_PREFIX, reference_name, verdict
from ui import closer_view, code_view, report_view, state, views
from ui.bundle_view import bundle_button
from ui.chart_notes import notes
from ui.compare_view import contest_section
from ui.threshold_view import threshold_section

st.title("Evaluate")
st.caption("Every score here is measured on validation rows the model never trained on.")
picked = views.pick_run(state.EVALUATE_RUN)
if picked is None:
    st.stop()
try:
    report = views.cached_report(picked.path)
except TrainboardError as err:
    st.error(str(err))
    st.stop()

run = report.run
classification = run.classification
st.markdown(f"**{run.model.label}** trained on **{run.data.source}** to predict "
            f"**{run.data.target}**: {views.task_words(run.task, len(run.classes))}.")
if run.cancelled:
    st.warning("You stopped this run before it finished: these are the scores of the best model saved so far.")

# ---------------------------------------------------------------- headline
reference = run.baseline_metrics if run.baseline_metrics.get(run.main_metric) is not None else run.dummy_metrics
compared_with = reference_name(run.main_metric, run.baseline_metrics)
tiles = st.columns(len(views.HEADLINE_METRICS[run.task]))
for tile, key in zip(tiles, views.HEADLINE_METRICS[run.task], strict=True):
    delta, colour = views.metric_delta(key, run.metrics.get(key), reference.get(key))
    tile.metric(views.metric_name(key), views.metric_text(run.metrics.get(key)), delta, delta_color=colour,
                help=views.METRIC_HELP.get(key), border=True)
st.caption(f"The small numbers compare with {compared_with}; green means better.")
judged = verdict(run.main_metric, run.metrics, run.baseline_metrics, run.dummy_metrics)
(st.success if judged.better else st.warning)(judged.text)
if run.candidates:
    with st.expander("How the model was chosen: the contest", icon=":material/leaderboard:"):
        contest_section(run.candidates, run.contest_reasons)
        st.caption("Scored inside the training rows only; the validation rows above took no part in the choice.")
with st.expander("All scores beside the baselines"):
    st.plotly_chart(plots.metric_comparison(run.metrics, run.baseline_metrics, run.dummy_metrics,
                                            METRIC_NAMES))
    st.caption("Each group of bars is one score: this model, the simple linear model and the no-skill guess. "
               "A model worth keeping beats both clearly.")

# ---------------------------------------------------------------- where it errs
if classification:
    imbalanced = views.is_imbalanced(run)
    if imbalanced:
        st.info(f"The rarest class is only {views.minority_share(run):.0%} of the validation rows, so accuracy "
                "misleads here. Read the precision-recall curve first.")
    point = threshold_section(run)  # binary runs: what the model does at the slider's threshold
    left, right = st.columns(2)
    with left:
        shares = st.toggle("Show shares of each true class", value=imbalanced, key=state.EVALUATE_NORMALISED)
        matrix = point.confusion if point is not None else run.confusion
        closer_view.confusion_chart(run, matrix, plots.confusion_matrix(  # a click picks a cell to look closer
            matrix, normalised=shares, threshold=point.threshold if point is not None else None))
        notes(readings.confusion(matrix, point.threshold if point is not None else None),
              "Rows are the true class, columns what the model said: the diagonal is right, everything else is a "
              "mistake, and the biggest off-diagonal cells are the classes it confuses.", "confusion-matrix")
    pr_words = ("Each point is one decision threshold: further right finds more real cases (recall), higher means "
                "fewer false alarms (precision). The dotted line is guessing.")
    if point is not None:
        pr_words += " The red dot is the threshold on the slider."
    pr = (views.side_legend(plots.pr_curves(report.pr_curves, point)), readings.pr_curves(report.pr_curves, point),
          pr_words, "precision-recall-curve")
    roc = (views.side_legend(plots.roc_curves(report.roc_curves)),
           readings.roc_curves(report.roc_curves, point, imbalanced), "The higher the curve bends above the diagonal, "
           "the better the model ranks real cases above the rest. It looks good even when the rare class is handled "
           "badly.", "roc-auc")
    first, second = (pr, roc) if imbalanced else (roc, pr)
    if report.pr_curves:
        with right:
            st.plotly_chart(first[0])
            notes(*first[1:])
        left, right = st.columns(2)
        with left:
            st.plotly_chart(second[0])
            notes(*second[1:])
    history_slot = right
else:
    left, right = st.columns(2)
    with left:
        st.plotly_chart(plots.predicted_vs_actual(run.predictions))
        notes(readings.predicted_vs_actual(run.predictions),
              "Each dot is a validation row: on the dotted diagonal the prediction is exact; dots far from it are "
              "big misses.", "mae")
    with right:
        st.plotly_chart(plots.residuals(run.predictions))
        notes(readings.residuals(run.predictions),
              "The error of each row against its prediction: a shapeless band around 0 is good; a curve or a "
              "funnel means the model misses a pattern.", "residual")
    history_slot = st.columns(2)[0]

curve_reading = readings.loss_curve(run.history, run.model.curve_unit, stopped_early=run.stopped_early,
                                   cancelled=run.cancelled, family=run.model.family, contest=bool(run.candidates),
                                   contest_curve=run.contest_curve)
with history_slot:
    if len(run.history) <= 1:  # fitted in one go: a chart of one point would say nothing its reading doesn't
        st.caption(curve_reading)
    else:
        st.plotly_chart(plots.loss_curve(run.history, x_title=run.model.curve_unit))
        notes(curve_reading,
              "Loss on the training rows and on the validation rows as training went on. When validation loss "
              "rises while training loss keeps falling, the model is memorising (overfitting).", "overfitting")
closer_view.cell_section(run, point if classification else None)  # the rows behind a confusion-matrix cell

# ---------------------------------------------------------------- why
gallery = views.load_gallery(run.path) if run.kind == "images" else None
if run.importances:
    st.subheader("Which columns matter")
    st.plotly_chart(plots.feature_importance(run.importances))
    rows = run.importance_rows
    notes(readings.importances(run.importances, run.task),
          "How much the score drops when one column's values are shuffled (breaking its link to the target), "
          f"measured on {rows or 'the'} validation rows; the whiskers show the spread over repeats. Grey bars: the "
          "column did not help.", "permutation-importance")
    with st.expander("Importances as a table"):
        st.dataframe([{"column": i.feature, "drop in score": i.importance, "± spread": i.std}
                      for i in run.importances], hide_index=True)
    closer_view.dependence_section(run)  # partial dependence of the top columns
elif gallery is not None:
    st.subheader("The most confident mistakes")
    overlay = st.toggle("Show what the model looked at (saliency)", value=True, key=state.EVALUATE_SALIENCY)
    st.plotly_chart(plots.image_gallery(gallery.images, gallery.titles, gallery.saliency if overlay else None))
    notes(readings.gallery(gallery.true, gallery.predicted, gallery.confidence, run.confusion),
          "Validation images the model got wrong while being most sure of itself. Red marks the pixels that pushed "
          "it to its answer most: if they lie off the object, it learnt a shortcut.", "saliency")

if not run.worst.empty:
    st.subheader("The worst errors")
    worst = run.worst.drop(columns=[c for c in run.worst.columns if c.startswith(PROBA_PREFIX) or c == "error"])
    st.dataframe(worst.rename(columns=lambda c: c.removeprefix("input: ")), hide_index=True,
                 column_config={"confidence": st.column_config.NumberColumn(format="percent")})
    st.caption("Validation rows the model got most wrong" + (", most confident first (confidence is the "
               "probability it gave its wrong answer)." if classification else ", largest error first.")
               + " Look for a pattern: bad data, a missing column, or a class that needs more examples.")
closer_view.row_section(run)  # one prediction explained, column by column

# ---------------------------------------------------------------- details
code_view.code_section(run)  # the run as a standalone script
with st.expander("Model details: why this model, its settings, device, timings, versions"):
    st.markdown("\n".join(f"- {reason}" for reason in run.model.reasons))
    for message in run.messages:
        st.caption(message)
    left, right = st.columns(2)
    left.markdown("**Settings**")
    left.json(run.model.params, expanded=True)
    split = run.split
    left.markdown(f"**Split:** {split.n_train:,} training rows, {split.n_valid:,} validation rows "
                  f"({split.strategy.replace('_', ' ')}, seed {split.seed}).")
    right.markdown(f"**Device:** {run.device.name} ({run.device.type})")
    right.markdown("**Timings (s):** " + ", ".join(f"{k.removesuffix('_s')} {v:g}" for k, v in run.timings.items()))
    right.markdown("**Versions:** " + ", ".join(f"{k} {v}" for k, v in run.versions.items()))
    right.caption(f"Run folder: {run.path}")

st.subheader("Take it with you")
bundle_button(run, key="evaluate-bundle")  # the model as a zip that predicts without Trainboard
report_view.report_download(run, "evaluate")
