"""Compare runs: every method of two runs side by side, then one score's metrics and distributions."""

import _shared as sh
import streamlit as st

from negprompt import viz
from negprompt.metrics import FPR_CONVENTION
from negprompt.rundir import RunDirError

st.title("Compare runs")
root = sh.runs_dir()
paths = sh.list_runs(str(root))
if len(paths) < 2:
    st.info(f"Comparing needs two runs; `{root}` holds {len(paths)}.")
    st.stop()

pickers = st.columns(2)
runs = []
for side, cell, default in zip("AB", pickers, (sh.shared().get("run", paths[0]), paths[1])):
    key = sh.seed_widget(f"compare_{side}", default, valid=lambda v: v in paths)
    path = cell.selectbox(f"Run {side}", paths, key=key, format_func=lambda p: sh.run_label(p, root))
    sh.remember(f"compare_{side}", path)
    try:
        runs.append(sh.open_run(path))
    except RunDirError as err:
        cell.error(f"Cannot read run `{sh.run_label(path, root)}`: {err}")
if len(runs) < 2:
    st.stop()
a, b = runs
if a.path == b.path:
    st.info("Both sides show the same run; pick another run for A or B.")
for run in runs:
    if run.random_weights:
        st.error(f"Run {run.name}: {sh.RANDOM_WEIGHTS_TEXT}", icon=":material/warning:")

labels = (f"A: {a.name}", f"B: {b.name}")

st.subheader("Methods side by side")
st.caption(
    "Every row of the results table: each method with its headline score (MCM, CoOp + MCM, NegPrompt, "
    "LoCoOp + MCM, NegLabel) and the GL-MCM and L-MCM rows, as the mean over the OOD sets. "
    f"{FPR_CONVENTION}. Values in percent; Δ = B − A in percentage points."
)
sh.as_table(viz.compare_methods(a.metrics, b.metrics, labels), where=st.container(key="methods"))
metric = st.radio("Metric", list(viz.METRIC_LABELS), horizontal=True, format_func=viz.METRIC_LABELS.get)
rows = {label: viz.method_rows(run.metrics) for label, run in zip(labels, runs)}
st.plotly_chart(viz.metrics_comparison_figure(rows, metric, x="row"), key="methods_bars")

common = [c for c in a.score_columns if c in b.score_columns]
if not common:
    st.error("The two runs share no score column (`<method>/<score>`), so their scores cannot be compared.")
    st.stop()
st.subheader("One score per OOD set")
default = "negprompt/negprompt" if "negprompt/negprompt" in common else common[0]
column = st.selectbox("Score", common, key=sh.seed_widget("score", default, valid=lambda v: v in common))
sh.remember("score", column)
method, score = column.split("/", 1)
table = viz.compare_metrics(a.metrics, b.metrics, labels)
sh.as_table(table[(table["method"] == method) & (table["score"] == score)])
st.caption(f"{FPR_CONVENTION}. Values in percent; Δ = B − A in percentage points.")
per_run = {
    label: run.metrics[(run.metrics["method"] == method) & (run.metrics["score"] == score)]
    for label, run in zip(labels, runs)
}
st.plotly_chart(viz.metrics_comparison_figure(per_run, metric), key="bars")

st.subheader("Score distributions")
for cell, label, run in zip(st.columns(2), labels, runs):
    with cell:
        id_scores, ood, id_name = sh.split_scores(run, column)
        if not len(id_scores):
            st.error(f"{label} has no ID images.")
            continue
        threshold = sh.tpr95_threshold(str(run.path), column)
        st.plotly_chart(
            viz.score_histogram_figure(id_scores, ood, id_name=id_name, threshold=threshold, title=label),
            key=f"hist_{label[0]}",
        )
        st.caption(f"Dashed line: the 95%-TPR threshold {threshold:.6g}.")
