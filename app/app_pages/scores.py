"""Score distributions: ID vs OOD histograms, a live threshold, ROC curves, the threshold explorer and
two scores side by side."""

import _shared as sh
import numpy as np
import streamlit as st

from negprompt import viz

st.title("Score distributions")
run, column, id_scores, ood, id_name, threshold = sh.scored_run()
rates = {name: viz.rates_at(id_scores, values, threshold) for name, values in ood.items() if len(values)}
ood_all = np.concatenate([np.empty(0), *ood.values()])
both = viz.rates_at(id_scores, ood_all, threshold)

cells = st.columns(4)
cells[0].metric("TPR (ID accepted)", f"{100 * both.tpr:.1f}%")
cells[1].metric("FPR (OOD accepted, all sets)", "—" if not ood_all.size else f"{100 * both.fpr:.1f}%")
cells[2].metric("ID accepted / rejected", f"{both.id_accepted} / {both.id_rejected}")
cells[3].metric("OOD accepted / rejected", f"{both.ood_accepted} / {both.ood_rejected}")
st.container(key="counts").markdown(
    f"**At threshold {threshold:.6g}:** ID accepted {both.id_accepted} of {len(id_scores)}; "
    + "; ".join(
        f"{name} accepted {r.ood_accepted} of {r.ood_accepted + r.ood_rejected}" for name, r in rates.items()
    )
)
counts = viz.decision_counts(run.scores, column, threshold)
counts["accepted_pct"] = counts["accepted_pct"].round(2)
sh.as_table(counts.rename(columns={"accepted_pct": "accepted %"}))

left, right = st.columns(2)
with left:
    st.subheader("Histograms")
    st.plotly_chart(
        viz.score_histogram_figure(id_scores, ood, id_name=id_name, threshold=threshold), key="hist"
    )
with right:
    st.subheader("ROC curves (ID = positive)")
    if rates:
        st.plotly_chart(viz.roc_figure(id_scores, ood, threshold=threshold), key="roc")
    else:
        st.info("No OOD images: no ROC curve.")

with st.expander("Which images flip as the threshold moves: every threshold at once"):
    st.caption(
        "The threshold explorer of notebook 05: its own slider sets the share of ID images kept (the "
        "threshold above does not move it); the tables give the images accepted per set and those decided "
        "differently than at the 95%-TPR threshold, nearest the new threshold first."
    )
    st.plotly_chart(sh.explorer_figure(str(run.path), column), key="explorer")

st.subheader("Two scores on the same images")
columns = run.score_columns
others = [c for c in columns if c != column]
if not others:
    st.info("This run has a single score column; nothing to compare it with.")
    st.stop()
default = next((c for c in ("coop/mcm", "zeroshot/mcm") if c in others), others[0])
key = sh.seed_widget("score_b", default, valid=lambda v: v in others)
other = st.selectbox("Compare with", others, key=key)
sh.remember("score_b", other)
other_threshold = sh.tpr95_threshold(str(run.path), other)
st.caption(
    f"Dashed lines: the threshold of {column} chosen above and the 95%-TPR threshold of {other} "
    f"({other_threshold:.6g}). Points in the top-right quadrant are accepted by both."
)
id_b, ood_b, _ = sh.split_scores(run, other)
scatter, histograms = st.columns(2)
with scatter:
    st.plotly_chart(
        viz.score_pair_figure(run.scores, column, other, thresholds=(threshold, other_threshold)), key="pair"
    )
with histograms:
    st.plotly_chart(
        viz.score_histogram_figure(id_b, ood_b, id_name=id_name, threshold=other_threshold, title=other),
        key="hist_b",
    )
