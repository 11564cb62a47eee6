"""Per-image decisions: a paged gallery at the current threshold, and why one image was accepted or rejected."""

import _images as im
import _shared as sh
import streamlit as st

from negprompt import viz
from negprompt.rundir import resolve_image_path

COLUMNS = 6
EXPLAIN = "explain_pending"


def open_image(run_path: str, row: int) -> None:
    """Button callback: explain this image in a dialog on the next run (where the user is looking)."""
    sh.shared()["image"] = (run_path, int(row))
    st.session_state[EXPLAIN] = True


def truth(item, names: list[str]) -> str:
    """The true class of an ID image, or "OOD" with the OOD image's own class when known."""
    if item.split == "id":
        return item.label_name or (names[item.label] if 0 <= item.label < len(names) else str(item.label))
    ood_class = getattr(item, "ood_class", "") or ""
    return f"OOD ({ood_class})" if isinstance(ood_class, str) and ood_class else "OOD"


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


def explain(run, column: str, row: int, threshold: float, names: list[str]) -> None:
    """The image large, its decision, and its top positive and negative prompt similarities."""
    item = run.scores.iloc[row]
    score = float(item[column])
    method = column.split("/")[0]
    st.subheader(f"Image #{row}")
    picture, chart = st.columns([1, 2])
    with picture:
        data, problem = im.load_image(str(run.path), str(item["path"]), im.EXPLAIN_PX)
        st.image(data, width="stretch")
        if problem:
            st.warning(f"Image not shown: {problem}")
        pred_col = im.pred_column(run, column)
        pred = int(item[pred_col]) if pred_col else -1
        st.markdown(
            f"**{item['dataset']}** ({item['split']}) · true: {truth(item, names)} · "
            f"predicted: {names[pred] if 0 <= pred < len(names) else '—'}  \n"
            f"score {score:.5g} {'≥' if score >= threshold else '<'} threshold {threshold:.5g}: "
            f"**{'accepted as ID' if score >= threshold else 'rejected as OOD'}**"
        )
        st.caption(str(item["path"]))
        evidence = viz.decision_evidence(item, method, run.config.get("experiment") or {})
        for line in evidence:
            st.markdown(line)
        region, grid = (
            item.get(f"{method}.best_region"),
            (run.config.get("experiment") or {}).get("local_grid"),
        )
        if evidence and region is not None and grid:
            try:
                path = resolve_image_path(run, str(item["path"]), allowed=sh.image_folders())
                st.image(viz.region_png(path, int(region), int(grid)), caption="the deciding local region")
            except (OSError, ValueError) as err:  # RunDirError is a ValueError
                st.caption(f"The local region cannot be outlined: {err}")
    with chart:
        if run.image_features is None or f"{method}.pos" not in run.text_features:
            st.info("This run has no image or text features of this method, so no prompt similarities.")
            return
        pos, neg = run.text_features_of(method)
        sims = viz.prompt_similarities(run.image_features[row], pos, neg, names[: len(pos)])
        top = viz.top_similarities(sims, k=5)
        st.plotly_chart(
            viz.explanation_figure(top, title=f"Top prompts of {method} (cosine similarity)"), key="explain"
        )
        st.caption(
            "NegPrompt rejects an image when its best negative prompts match it about as well as (or "
            "better than) its best positive prompts."
        )


st.title("Per-image decisions")
run, column, _, _, _, threshold = sh.scored_run()
names = im.class_names(run)

ood_names = (
    sorted(set(run.scores["ood_class"].dropna().astype(str)) - {""})
    if "ood_class" in run.scores.columns
    else []
)
filters = st.columns([3, 2, 2, 3, 2, 1] if ood_names else [3, 2, 2, 2, 1])
kind = filters[0].selectbox(
    "Show",
    list(viz.DECISION_FILTERS),
    help="which images: all, accepted or rejected, or only the errors (FP, FN)",
    format_func=viz.DECISION_FILTERS.get,
    key=sh.seed_widget("kind", "all"),
)
sh.remember("kind", kind)
datasets = filters[1].multiselect(
    "Datasets", list(dict.fromkeys(run.scores["dataset"])), placeholder="all", key="datasets"
)
classes = filters[2].multiselect(
    "Classes (true or predicted)",
    range(len(names)),
    format_func=lambda i: names[i],
    placeholder="all",
    key="classes",
)
ood_classes = (
    filters[3].multiselect("OOD classes", ood_names, placeholder="all", key="ood_classes")
    if ood_names
    else []
)
sort = filters[-2].selectbox(
    "Sort",
    ["score_desc", "score_asc", "row"],
    format_func={
        "score_desc": "score, highest first",
        "score_asc": "score, lowest first",
        "row": "run order",
    }.get,
)
page_size = filters[-1].selectbox("Per page", [12, 24, 48, 96], index=1, key="page_size")

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
        explain(run, column, row, threshold, names)


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
