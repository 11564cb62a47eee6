"""Compare runs (or two scores of one run) like with like: sets matched by their images, metrics on the
shared images only, and the images one side accepts and the other rejects, with both explanations."""

import _explain as ex
import _images as im
import _shared as sh
import numpy as np
import pandas as pd
import streamlit as st

from negprompt import matching as X
from negprompt import viz
from negprompt.metrics import FPR_CONVENTION, MEAN_CONVENTION
from negprompt.rundir import RunDirError, resolve_image_path
from negprompt.table_rows import all_rows, row_label

DISAGREE = "compare_disagreement"
GALLERY = 12

st.title("Compare runs")
root = sh.runs_dir()
paths = sh.list_runs(str(root))
sh.stop_without_runs(root, paths)

pickers = st.columns(2)
runs = []
for side, cell, default in zip(
    "AB", pickers, (sh.shared().get("run", paths[0]), paths[min(1, len(paths) - 1)])
):
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
for run in runs if a.path != b.path else runs[:1]:  # noqa: E501
    if run.random_weights:
        st.error(f"Run {run.name}: {sh.RANDOM_WEIGHTS_TEXT}", icon=":material/warning:")
if a.path == b.path:
    st.info("Both sides show the same run: compare two of its scores below, on the same images.")
labels = (f"A: {a.name}", f"B: {b.name}")


@st.cache_data(show_spinner="Hashing the images of the run…", max_entries=8)
def keys_of(run_path: str, by: str) -> np.ndarray:
    """The image keys of a run's rows: paths, or content hashes (read inside the run's data roots)."""
    run = sh.open_run(run_path)
    if by == "path":
        return X.path_keys(run.scores)
    allowed = sh.image_folders()
    return X.content_keys(run.scores, lambda p: resolve_image_path(run, p, allowed=allowed))


by = st.radio(
    "Match images by",
    ["path", "content"],
    horizontal=True,
    format_func={"path": "their paths", "content": "their content (SHA-256 of the file)"}.get,
    help="content also matches copies of the same images in other folders; it reads every image once",
    key="match_by",
)
keys_a, keys_b = keys_of(str(a.path), by), keys_of(str(b.path), by)
match = X.match_sets(a.scores, b.scores, keys_a, keys_b)
st.subheader("Which images the two runs share")
sh.as_table(match.table, where=st.container(key="sets"))
shared_sets = list(match.pairs)
if match.differing:
    st.container(key="differing").warning(
        "The runs do not hold the same images in every set, so their own means (metrics.csv) are not "
        f"comparable. Below, every number is computed on the shared images, and means only over the "
        f"shared OOD sets ({', '.join(shared_sets) or 'none'}). Sets that differ: {'; '.join(match.differing)}.",
        icon=":material/warning:",
    )
if not match.id_pair[0] or not shared_sets:
    st.error("The two runs share no ID image or no OOD image, so nothing can be compared on the same images.")
    st.stop()

metric = st.radio("Metric", list(viz.METRIC_LABELS)[:4], horizontal=True, format_func=viz.METRIC_LABELS.get)
label = viz.METRIC_LABELS[metric]


@st.cache_data(show_spinner=False, max_entries=64)
def shared_on(path_a: str, path_b: str, column_a: str, column_b: str, by: str) -> tuple[pd.DataFrame, dict]:
    """`negprompt.matching.shared_metrics` of two score columns (cached per runs, columns and keys)."""
    ra, rb = sh.open_run(path_a), sh.open_run(path_b)
    ka, kb = keys_of(path_a, by), keys_of(path_b, by)
    return X.shared_metrics(
        ra.scores, rb.scores, column_a, column_b, ka, kb, X.match_sets(ra.scores, rb.scores, ka, kb)
    )


@st.cache_data(show_spinner="Paired bootstrap of the difference…", max_entries=16)
def paired_intervals(path_a: str, path_b: str, column_a: str, column_b: str, by: str) -> dict:
    """The paired bootstrap interval of B − A per shared set and for their mean (same images, same order)."""
    from negprompt.uncertainty import paired_difference

    aligned = shared_on(path_a, path_b, column_a, column_b, by)[1]
    return paired_difference(aligned["a"], aligned["b"])


def shared_table(column_a: str, column_b: str) -> tuple[pd.DataFrame, dict]:
    return shared_on(str(a.path), str(b.path), column_a, column_b, by)


# --------------------------------------------------------------------------- every method

st.subheader("Methods side by side, on the shared images")
rows = []
for method, score in dict.fromkeys([*all_rows(a.metrics), *all_rows(b.metrics)]):  # every row
    column = f"{method}/{score}"
    value = {"row": row_label(method, score)}
    if column in a.score_columns and column in b.score_columns:
        mean = shared_table(column, column)[0].set_index("dataset").loc["mean"]
        value.update({labels[0]: 100 * mean[f"{metric} A"], labels[1]: 100 * mean[f"{metric} B"]})
    elif not match.differing:  # the same images: the runs' own means are comparable
        for lab, run in zip(labels, runs):
            sel = run.metrics.query("method == @method and score == @score and dataset == 'mean'")
            value[lab] = 100 * float(sel[metric].iloc[0]) if len(sel) else np.nan
    else:
        value.update({labels[0]: np.nan, labels[1]: np.nan})
    rows.append(value)
methods = pd.DataFrame(rows, columns=["row", *labels])
methods[f"{label} Δ (B − A)"] = methods[labels[1]] - methods[labels[0]]
sh.as_table(
    methods.rename(columns={lab: f"{label} {lab}" for lab in labels}), where=st.container(key="methods")
)
st.caption(
    f"{FPR_CONVENTION}. {MEAN_CONVENTION}: here the mean over the shared OOD sets. Values in percent; "
    "Δ in percentage points. A row left empty lacks per-image scores in one run while the sets differ."
)
st.plotly_chart(
    viz.metrics_comparison_figure(
        {lab: methods.assign(**{metric: methods[lab] / 100}) for lab in labels}, metric, x="row"
    ),
    key="methods_bars",
)

# --------------------------------------------------------------------------- one score per set

st.subheader("One score per shared OOD set")
cells = st.columns(2)
chosen = []
for side, cell, run in zip("AB", cells, runs):
    columns = run.score_columns
    default = sh.shared().get("score") if sh.shared().get("score") in columns else columns[0]
    if "negprompt/negprompt" in columns and sh.shared().get("score") not in columns:
        default = "negprompt/negprompt"
    key = f"compare_score_{side}"
    if st.session_state.get(key) not in columns:
        st.session_state[key] = default
    chosen.append(cell.selectbox(f"Score of {side}", columns, key=key, help=sh.score_help_text(columns)))
column_a, column_b = chosen
table, _ = shared_table(column_a, column_b)
shown = table[["dataset", "shared OOD images", f"{metric} A", f"{metric} B", f"{metric} Δ"]].copy()
for c in shown.columns[2:]:
    shown[c] = 100 * shown[c]
shown.columns = ["OOD set (A's name)", "shared OOD images", f"{label} A", f"{label} B", f"{label} Δ"]
diff = paired_intervals(str(a.path), str(b.path), column_a, column_b, by)
shown["Δ 95% interval"] = [
    f"[{100 * diff[d][metric].low:+.2f}, {100 * diff[d][metric].high:+.2f}]" if d in diff else ""
    for d in table["dataset"]
]
sh.as_table(shown, where=st.container(key="per_set"))
st.caption(
    f"{column_a} of A against {column_b} of B on the {table.attrs['shared ID images']} shared ID images and "
    f"the shared OOD images of each set. {FPR_CONVENTION}. {MEAN_CONVENTION}: the mean row is over the "
    "shared sets only. Values in percent; Δ = B − A in percentage points; the interval is the paired "
    "bootstrap interval of the difference (`negprompt.uncertainty.paired_difference`: the same images "
    "resampled for both sides, the 95%-TPR threshold recomputed in every resample)."
)

# --------------------------------------------------------------------------- disagreements

thresholds = (ex.threshold_of(a, column_a), ex.threshold_of(b, column_b))
flips = X.disagreements(a.scores, b.scores, column_a, column_b, *thresholds, keys_a, keys_b)
st.subheader(f"Where they disagree: {len(flips)} shared image(s)")
st.caption(
    f"Accepted by one side and rejected by the other, each at its own threshold (A: {thresholds[0]:.5g}, "
    f"B: {thresholds[1]:.5g}; the 95%-TPR thresholds unless moved on the score pages); the clearest "
    f"disagreements first (at most {GALLERY} shown)."
)


def open_pair(row_a: int, row_b: int) -> None:
    st.session_state[DISAGREE] = (int(row_a), int(row_b))


@st.dialog("Both explanations", width="large")
def both_dialog(row_a: int, row_b: int) -> None:
    for cell, run, column, row, thr, side in zip(
        st.columns(2), runs, (column_a, column_b), (row_a, row_b), thresholds, "AB"
    ):
        with cell, sh.reported(f"Cannot explain the image in {side}", stop=False):
            st.markdown(f"**{side}: {run.name} · {column}**")
            ex.show(run, column, row, thr, im.class_names(run), key=f"pair_{side}")


pending = st.session_state.pop(DISAGREE, None)
if pending:
    both_dialog(*pending)
part = flips.head(GALLERY)
for start in range(0, len(part), 6):
    for cell, item in zip(st.columns(6), list(part.iloc[start : start + 6].itertuples(index=False))):
        with cell:
            data, _ = im.load_image(str(a.path), str(a.scores["path"].iat[item[0]]))
            st.image(data, width="stretch")
            st.caption(
                f"{item.dataset} ({item.split}) · accepted by **{item[6]}**  \n"
                f"A {item[4]:.4g} · B {item[5]:.4g}"
            )
            st.button(
                "Both explanations",
                key=f"pair_{item[0]}_{item[1]}",
                on_click=open_pair,
                args=(item[0], item[1]),
            )
if flips.empty:
    st.info("No shared image is decided differently at these thresholds.")

st.subheader("Score distributions")
for cell, lab, run, column, thr in zip(st.columns(2), labels, runs, (column_a, column_b), thresholds):
    with cell:
        id_scores, ood, id_name = sh.split_scores(run, column)
        sh.per_set_note(run, column)
        if not len(id_scores):
            st.error(f"{lab} has no ID images.")
            continue
        st.plotly_chart(
            viz.score_histogram_figure(
                id_scores, ood, id_name=id_name, threshold=thr, title=f"{lab} · {column}"
            ),
            key=f"hist_{lab[0]}",
        )
st.caption("Dashed lines: each side's threshold.")
