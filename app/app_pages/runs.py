"""Runs: every run found, its config, the weights it used and its metrics."""

import _shared as sh
import pandas as pd
import streamlit as st

from negprompt import viz
from negprompt.metrics import FPR_CONVENTION, MEAN_CONVENTION
from negprompt.rundir import RunDirError

st.title("Runs")
root = sh.runs_dir()
paths = sh.list_runs(str(root))
sh.stop_without_runs(root, paths)

rows = []
for path in paths:
    try:
        run = sh.open_run(path)
        summary = viz.config_summary(run.config)
        rows.append({"run": sh.run_label(path, root), **summary, "images": len(run.scores), "status": "ok"})
    except RunDirError as err:
        rows.append({"run": sh.run_label(path, root), "status": f"damaged: {err}"})
overview = pd.DataFrame(rows)
columns = ["run", "kind", "created", "backbone", "weights", "random weights", "ID set", "OOD sets"]
st.subheader(f"{len(paths)} run(s) in `{root}`")
sh.as_table(overview.reindex(columns=[*columns, "methods", "images", "status"]))
for row in rows:
    if row["status"] != "ok":
        st.error(f"Run `{row['run']}` cannot be read: {row['status'][len('damaged: ') :]}")

st.divider()
run = sh.select_run(root, "Run", where=st)
sh.weights_banner(run)
summary = viz.config_summary(run.config)
left, right = st.columns([1, 2])
with left:
    st.subheader("Config")
    config_table = pd.DataFrame({"field": list(summary), "value": list(summary.values())})
    st.dataframe(config_table, hide_index=True, width="stretch", height="content")
    with st.expander("config.json"):
        st.json(run.config, expanded=False)
with right:
    sh.show_verdict(run)
    sh.show_checks(run)
    st.subheader("Metrics")
    metrics = run.metrics
    column = sh.select_score(run, where=st)
    method, score = column.split("/", 1)
    table = viz.metrics_percent(metrics, method=method, score=score)
    mean = table[table["dataset"] == "mean"]
    if not mean.empty:
        cells = st.columns(5)
        for cell, label in zip(cells, viz.METRIC_LABELS.values()):
            value = mean[label].iloc[0] if label in mean.columns else float("nan")
            cell.metric(f"{label.replace(' %', '')} (mean)", "—" if pd.isna(value) else f"{value:.2f}%")
    sh.as_table(table)
    st.caption(
        f"{run.config.get('fpr_convention') or FPR_CONVENTION}. {MEAN_CONVENTION}. All values in percent."
    )
with sh.reported("The covariate-shift accuracy cannot be shown", stop=False):
    shifted = viz.shifted_accuracy_table(run.config)
    if shifted is not None:
        st.subheader("ID accuracy under covariate shift")
        st.caption(
            "The ID classes in a style never pretrained on (mini-world v2: the held-out artist). "
            "Scored for accuracy only, never as OOD; interval: percentile bootstrap over the set's images."
        )
        sh.as_table(shifted)
st.subheader("The whole leaderboard")
sh.show_leaderboard(run)
with st.expander("Every metric of every row and set (metrics.csv)"):
    sh.as_table(viz.metrics_percent(metrics))
with st.expander("Log"), sh.reported("The log cannot be shown", stop=False):
    st.code(run.log or "(no log.txt)", language=None)
