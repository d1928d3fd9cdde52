"""Evaluate: how good is a trained model, honestly? Scores against baselines, where it errs and why."""

import streamlit as st

from core import plots
from core.errors import TrainboardError
from core.evaluation import METRIC_NAMES, PROBA_PREFIX, compare_to_baseline
from ui import views
from ui.live import X_TITLES

st.title("Evaluate")
st.caption("Every score here is measured on validation rows the model never trained on.")
run = views.pick_run("evaluate_run")
if run is None:
    st.stop()
try:
    report = views.cached_report(run.path)
except TrainboardError as err:
    st.error(str(err))
    st.stop()

manifest = report.manifest
model = manifest["model"]
classification = report.task != "regression"
st.markdown(f"**{model.get('label', model['name'])}** trained on **{manifest['data']['source']}** to predict "
            f"**{manifest['data']['target']}**: {views.task_words(report.task, len(report.classes))}.")
if manifest.get("cancelled"):
    st.warning("You stopped this run before it finished: these are the scores of the best model saved so far.")

# ---------------------------------------------------------------- headline
reference = report.baseline_metrics or report.dummy_metrics
reference_name = "the linear baseline" if report.baseline_metrics else "always guessing the most common answer"
tiles = st.columns(len(views.HEADLINE_METRICS[report.task]))
for tile, key in zip(tiles, views.HEADLINE_METRICS[report.task], strict=True):
    delta, colour = views.metric_delta(key, report.metrics.get(key), reference.get(key))
    tile.metric(views.metric_name(key), views.metric_text(report.metrics.get(key)), delta, delta_color=colour,
                help=views.METRIC_HELP.get(key), border=True)
st.caption(f"The small numbers compare with {reference_name}; green means better.")
verdict = compare_to_baseline(report)
(st.success if " beats " in verdict else st.warning)(verdict)
with st.expander("All scores beside the baselines"):
    st.plotly_chart(plots.metric_comparison(report.metrics, report.baseline_metrics, report.dummy_metrics,
                                            METRIC_NAMES))
    st.caption("Each group of bars is one score: this model, the simple linear model and the no-skill guess. "
               "A model worth keeping beats both clearly.")

# ---------------------------------------------------------------- where it errs
if classification:
    imbalanced = views.is_imbalanced(report)
    if imbalanced:
        st.info(f"The rarest class is only {views.minority_share(report):.0%} of the validation rows, so accuracy "
                "misleads here. Read the precision-recall curve first.")
    left, right = st.columns(2)
    with left:
        shares = st.toggle("Show shares of each true class", value=imbalanced, key="evaluate_normalised")
        st.plotly_chart(plots.confusion_matrix(report.confusion, normalised=shares))
        st.caption("Rows are the true class, columns what the model said: the diagonal is right, everything "
                   "else is a mistake, and the biggest off-diagonal cells are the classes it confuses.")
    pr = (views.side_legend(plots.pr_curves(report.pr_curves)), "Each point is one decision threshold: further right finds more real "
          "cases (recall), higher means fewer false alarms (precision). The dotted line is guessing.")
    roc = (views.side_legend(plots.roc_curves(report.roc_curves)), "The higher the curve bends above the diagonal, the better the "
           "model ranks real cases above the rest. It looks good even when the rare class is handled badly.")
    first, second = (pr, roc) if imbalanced else (roc, pr)
    if report.pr_curves:
        with right:
            st.plotly_chart(first[0])
            st.caption(first[1])
        left, right = st.columns(2)
        with left:
            st.plotly_chart(second[0])
            st.caption(second[1])
    history_slot = right
else:
    left, right = st.columns(2)
    with left:
        st.plotly_chart(plots.predicted_vs_actual(report.predictions))
        st.caption("Each dot is a validation row: on the dotted diagonal the prediction is exact; dots far from "
                   "it are big misses.")
    with right:
        st.plotly_chart(plots.residuals(report.predictions))
        st.caption("The error of each row against its prediction: a shapeless band around 0 is good; a curve or "
                   "a funnel means the model misses a pattern.")
    history_slot = st.columns(2)[0]

with history_slot:
    x_title = X_TITLES.get(model["key"], "epoch")
    st.plotly_chart(plots.loss_curve(report.history, x_title=x_title))
    st.caption("Loss on the training rows and on the validation rows as training went on. When validation "
               "loss rises while training loss keeps falling, the model is memorising (overfitting).")

# ---------------------------------------------------------------- why
gallery = views.load_gallery(run.path) if manifest["data"]["kind"] == "images" else None
if report.importances:
    st.subheader("Which columns matter")
    st.plotly_chart(plots.feature_importance(report.importances))
    rows = manifest.get("feature_importance_rows")
    st.caption("How much the score drops when one column's values are shuffled (breaking its link to the "
               f"target), measured on {rows or 'the'} validation rows; the whiskers show the spread over "
               "repeats. Grey bars: the column did not help.")
    with st.expander("Importances as a table"):
        st.dataframe([{"column": i.feature, "drop in score": i.importance, "± spread": i.std}
                      for i in report.importances], hide_index=True)
elif gallery is not None:
    st.subheader("The most confident mistakes")
    overlay = st.toggle("Show what the model looked at (saliency)", value=True, key="evaluate_saliency")
    st.plotly_chart(plots.image_gallery(gallery.images, gallery.titles, gallery.saliency if overlay else None))
    st.caption("Validation images the model got wrong while being most sure of itself. Red marks the pixels "
               "that pushed it to its answer most: if they lie off the object, it learnt a shortcut.")

if not report.worst.empty:
    st.subheader("The worst errors")
    worst = report.worst.drop(columns=[c for c in report.worst.columns if c.startswith(PROBA_PREFIX) or c == "error"])
    st.dataframe(worst.rename(columns=lambda c: c.removeprefix("input: ")), hide_index=True,
                 column_config={"confidence": st.column_config.NumberColumn(format="percent")})
    st.caption("Validation rows the model got most wrong" + (", most confident first (confidence is the "
               "probability it gave its wrong answer)." if classification else ", largest error first.")
               + " Look for a pattern: bad data, a missing column, or a class that needs more examples.")

# ---------------------------------------------------------------- details
with st.expander("Model details: why this model, its settings, device, timings, versions"):
    st.markdown("\n".join(f"- {reason}" for reason in model.get("reasons", [])))
    for message in manifest.get("messages", []):
        st.caption(message)
    left, right = st.columns(2)
    left.markdown("**Settings**")
    left.json(model.get("params", {}), expanded=True)
    left.markdown(f"**Split:** {manifest['split']['n_train']:,} training rows, {manifest['split']['n_valid']:,} "
                  f"validation rows ({manifest['split']['strategy'].replace('_', ' ')}, seed {manifest['split']['seed']}).")
    right.markdown(f"**Device:** {manifest['device']['name']} ({manifest['device']['type']})")
    right.markdown("**Timings (s):** " + ", ".join(f"{k.removesuffix('_s')} {v:g}" for k, v in manifest["timings"].items()))
    right.markdown("**Versions:** " + ", ".join(f"{k} {v}" for k, v in manifest["versions"].items()))
    right.caption(f"Run folder: {run.path}")
