"""Score distributions: ID vs OOD histograms, a live threshold, ROC curves, the images that flip at that
threshold and two scores side by side."""

import _images as im
import _shared as sh
import numpy as np
import pandas as pd
import streamlit as st

from negprompt import viz
from negprompt.metrics import FPR_CONVENTION, MEAN_CONVENTION

st.title("Score distributions")
run, column, id_scores, ood, id_name, threshold = sh.scored_run()
rates = {name: viz.rates_at(id_scores, values, threshold) for name, values in ood.items() if len(values)}
ood_all = np.concatenate([np.empty(0), *ood.values()])
both = viz.rates_at(id_scores, ood_all, threshold)

cells = st.columns(5)
cells[0].metric("TPR (ID accepted)", f"{100 * both.tpr:.1f}%")
mean_fpr = np.mean([r.fpr for r in rates.values()]) if rates else np.nan
cells[1].metric("FPR (mean over sets)", "—" if not rates else f"{100 * mean_fpr:.1f}%")
cells[2].metric("FPR (pooled)", "—" if not ood_all.size else f"{100 * both.fpr:.1f}%")
cells[3].metric("ID accepted / rejected", f"{both.id_accepted} / {both.id_rejected}")
cells[4].metric("OOD accepted / rejected", f"{both.ood_accepted} / {both.ood_rejected}")
st.caption(f"{FPR_CONVENTION}. {MEAN_CONVENTION}.")
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


base = sh.tpr95_threshold(str(run.path), column)
flips = viz.flipped_images(run.scores, column, base, threshold)
digits = viz.score_digits(run.scores[column].to_numpy())
with st.expander(f"Images decided differently than at the 95%-TPR threshold: {len(flips)}", expanded=False):
    st.caption(
        f"Moving the threshold above from the 95%-TPR threshold {base:.{digits}f} to {threshold:.{digits}f} "
        "flips exactly the images scored between the two; the closest calls first (at most 20 shown)."
    )
    if len(flips):
        shown = flips.head(20).copy()
        shown.insert(1, "image", [im.thumbnail_url(str(run.path), str(p)) for p in shown["path"]])
        shown["now"] = np.where(shown["accepted"], "accepted", "rejected")
        shown["class"] = [
            o if isinstance(o, str) and o else n
            for o, n in zip(shown.get("ood_class", pd.Series([""] * len(shown))), shown["label_name"])
        ]
        st.container(key="flips").dataframe(
            shown[["row", "image", "dataset", "class", "score", "now"]],
            hide_index=True,
            width="stretch",
            column_config={
                "row": st.column_config.NumberColumn("row", help="the image's row in the run"),
                "image": st.column_config.ImageColumn("image"),
                "dataset": st.column_config.TextColumn("set"),
                "class": st.column_config.TextColumn("class (ID label or OOD class)"),
                "score": st.column_config.NumberColumn("score", format=f"%.{digits}f"),
                "now": st.column_config.TextColumn("decision now"),
            },
        )
    else:
        st.info("The threshold is the 95%-TPR threshold: no image flips. Move the slider to see which would.")

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
