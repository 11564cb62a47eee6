"""Per-image decisions: a paged gallery at the current threshold, and why one image was accepted or rejected."""

import _explain as ex
import _images as im
import _shared as sh
import streamlit as st

from negprompt import viz

COLUMNS = 6
EXPLAIN = "explain_pending"


def open_image(run_path: str, row: int) -> None:
    """Button callback: explain this image in a dialog on the next run (where the user is looking)."""
    sh.shared()["image"] = (run_path, int(row))
    st.session_state[EXPLAIN] = True


def truth(item, names: list[str]) -> str:
    """The true class of a gallery item (see `_explain.truth`)."""
    return ex.truth({"split": item.split, "label": item.label, "label_name": item.label_name,
                     "ood_class": getattr(item, "ood_class", "")}, names)  # fmt: skip


def caption(item, names: list[str]) -> str:
    """Dataset, true label, predicted class, score and decision of one gallery item."""
    pred = names[item.pred] if 0 <= item.pred < len(names) else "—"
    decision = ":green[accepted as ID]" if item.accepted else ":red[rejected as OOD]"
    error = (
        " · **FP**"
        if item.split != "id" and item.accepted
        else " · **FN**"
        if item.split == "id" and not item.accepted
        else ""
    )
    return f"#{item.row} · {item.dataset} · true: {truth(item, names)} · pred: {pred}  \nscore {item.score:.5g} · {decision}{error}"


st.title("Per-image decisions")
run, column, _, _, _, threshold = sh.scored_run()
names = im.class_names(run)

ood_names = (
    sorted(set(run.scores["ood_class"].dropna().astype(str)) - {""})
    if "ood_class" in run.scores.columns
    else []
)
top, bottom = st.columns([3, 2, 1]), st.columns([1, 1, 1] if ood_names else [1, 1])
kind = top[0].selectbox(
    "Show",
    list(viz.DECISION_FILTERS),
    help="which images: the errors (FP and FN, the default), all, accepted or rejected, or one kind of error",
    format_func=viz.DECISION_FILTERS.get,
    key=sh.seed_widget("kind", "errors"),
)
sh.remember("kind", kind)
datasets = bottom[0].multiselect(
    "Datasets", list(dict.fromkeys(run.scores["dataset"])), placeholder="all", key="datasets"
)
classes = bottom[1].multiselect(
    "Classes (true or predicted)",
    range(len(names)),
    format_func=lambda i: names[i],
    placeholder="all",
    key="classes",
)
ood_classes = (
    bottom[2].multiselect("OOD classes", ood_names, placeholder="all", key="ood_classes") if ood_names else []
)
sort = top[1].selectbox(
    "Sort",
    ["margin", "score_desc", "score_asc", "row"],
    format_func={
        "margin": "farthest from the threshold first",
        "score_desc": "score, highest first",
        "score_asc": "score, lowest first",
        "row": "run order",
    }.get,
    key="sort",
)
page_size = top[2].selectbox("Per page", [12, 24, 48, 96], index=1, key="page_size")

table = viz.decision_table(
    run.scores,
    column,
    threshold,
    pred_col=im.pred_column(run, column),
    kind=kind,
    datasets=datasets,
    classes=classes,
    ood_classes=ood_classes,
    sort=sort,
)
_, n_pages = viz.page_slice(len(table), 1, page_size)
nav = st.columns([1, 3])
# A new key when the number of matches changes: the page number starts again at 1.
page = nav[0].number_input(f"Page (of {n_pages})", 1, n_pages, 1, key=f"page_{len(table)}_{page_size}")
part, _ = viz.page_slice(len(table), page, page_size)
nav[1].markdown(
    f"**{len(table)} image(s) match** · showing {part.start + 1 if len(table) else 0}–{part.stop}"
)


@st.dialog("Why this decision", width="large")
def explain_dialog(row: int) -> None:
    """The explanation in a dialog: it opens over the page, wherever the user has scrolled to."""
    with sh.reported("Cannot explain this image", stop=False):
        ex.show(run, column, row, threshold, names, key="images")


selected = sh.shared().get("image")
if (
    st.session_state.pop(EXPLAIN, False)
    and selected
    and selected[0] == str(run.path)
    and 0 <= selected[1] < len(run.scores)
):
    explain_dialog(selected[1])

breakdown = viz.ood_class_breakdown(run.scores, column, threshold)
if len(breakdown):
    with st.expander(f"OOD classes at this threshold ({len(breakdown)}, most often accepted first)"):
        st.caption(
            "Each OOD class of the run's labelled OOD sets: how many of its images are accepted as ID "
            "at the current threshold (its false-positive rate) and its AUROC against all ID images."
        )
        st.dataframe(
            breakdown,
            hide_index=True,
            column_config={
                "ood_class": st.column_config.TextColumn("OOD class"),
                "accepted_pct": st.column_config.NumberColumn("accepted %", format="%.1f"),
                "mean_score": st.column_config.NumberColumn("mean score", format="%.5g"),
                "auroc": st.column_config.NumberColumn("AUROC", format="%.3f"),
            },
        )

with st.expander("Open an image by its row number"):
    row = st.number_input("Row", 0, len(run.scores) - 1, 0)
    st.button("Open", on_click=open_image, args=(str(run.path), row), key="open_row")

if not len(table):
    st.info("No image matches these filters at this threshold.")
    st.stop()
page_items = list(table.iloc[part].itertuples(index=False))
for start in range(0, len(page_items), COLUMNS):
    cells = st.columns(COLUMNS)
    for cell, item in zip(cells, page_items[start : start + COLUMNS]):
        with cell:
            data, problem = im.load_image(str(run.path), str(item.path))
            st.image(data, width="stretch")
            st.caption(caption(item, names))
            if problem:
                st.caption(f"⚠️ image not shown: {problem}")
            st.button("Explain", key=f"open_{item.row}", on_click=open_image, args=(str(run.path), item.row))
