"""Prompt embeddings: a 2-D map (UMAP or PCA) of every class's positive and negative prompts."""

import time

import _explain as ex
import _images as im
import _shared as sh
import numpy as np
import streamlit as st

from negprompt import viz


@st.cache_data(show_spinner=False, max_entries=32)  # the page shows its own spinner
def compute_map(run_path: str, method: str, projection: str, n_images: int, seed: int):
    """Map coordinates [Q, 2], their description, the seconds the projection took and its trustworthiness.

    Identical prompts are one point (`negprompt.viz.map_points`); prompts and the image sample are
    projected together.
    """
    run = sh.open_run(run_path)
    pos, neg = run.text_features_of(method)
    features, meta = None, None
    if n_images and run.image_features is not None:
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(len(run.scores), min(n_images, len(run.scores)), replace=False))
        features = np.asarray(run.image_features[rows], dtype=np.float32)
        meta = run.scores.iloc[rows][["split", "dataset", "label_name"]].reset_index(drop=True)
        meta["row"] = rows
    x, description = viz.map_points(
        pos, neg, im.class_names(run)[: len(pos)], image_features=features, image_meta=meta
    )
    start = time.perf_counter()
    coords = viz.umap_project(x, seed=seed) if projection == "UMAP" else viz.pca_project(x, 2)
    seconds = time.perf_counter() - start
    return coords, description, seconds, viz.map_trustworthiness(x, coords)


def plural(n: int, one: str, many: str | None = None) -> str:
    """``"1 prompt"``, ``"3 prompts"``."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


st.title("Prompt embeddings")
root = sh.runs_dir()
run = sh.select_run(root)
sh.weights_banner(run)
with sh.reported("Cannot read the text features"):
    methods = [m for m in run.methods if f"{m}.pos" in run.text_features]
if not methods:
    st.info(f"Run {run.name} has no text features (text_features.npz), so there is no prompt map.")
    st.stop()
default = "negprompt" if "negprompt" in methods else methods[0]
method = st.sidebar.selectbox(
    "Method", methods, key=sh.seed_widget("method", default, valid=lambda v: v in methods)
)
sh.remember("method", method)

controls = st.columns(3)
projection = controls[0].radio(
    "Projection",
    ["UMAP", "PCA"],
    horizontal=True,
    help="PCA takes about a second; UMAP keeps neighbourhoods, and its first use on a server waits "
    "for its code to be compiled (10-60 s, done in the background when the server starts)",
)
with_images = controls[1].checkbox(
    "Add a sample of images",
    value=run.image_features is not None,
    disabled=run.image_features is None,
    help="prompts and images are projected together; ID images coloured by class, OOD images by set",
)
n_images = controls[2].number_input(
    "Images in the sample", 10, 20000, 500, step=100, disabled=not with_images
)

warming = sh.warm_umap_in_background()
shown = projection
if projection == "UMAP" and warming.is_alive():
    shown = "PCA"
    note, again = st.columns([4, 1])
    note.info(
        "UMAP's code is still being compiled in the background (once per server, 10-60 s): the map "
        "below is a PCA meanwhile. Press **Check again** in a moment for the UMAP."
    )
    again.button("Check again", key="umap_again")
try:
    with st.spinner(f"Computing the {shown} map…"):
        coords, meta, seconds, trust = compute_map(
            str(run.path), method, shown, int(n_images) if with_images else 0, 0
        )
except (ValueError, OSError) as err:
    st.error(f"Cannot compute the map: {err}")
    st.stop()
pos, neg = run.text_features_of(method)
n_prompts = len(pos) * (1 + (0 if neg is None else neg.shape[1]))
sentence = viz.map_sentence(meta, n_prompts)
if sentence:
    st.container(key="identical").warning(sentence, icon=":material/content_copy:")
figure, side = st.columns([4, 1])
with figure:
    event = st.plotly_chart(
        viz.map_figure(
            coords,
            meta,
            title=f"{method}: {plural(len(pos), 'class', 'classes')} × "
            f"{plural(1 + (0 if neg is None else neg.shape[1]), 'prompt')}",
        ),
        key="map",
        on_select="rerun",
        selection_mode="points",
    )
with side:
    st.metric(
        "Trustworthiness",
        "—" if np.isnan(trust) else f"{trust:.3f}",
        help="how well the map keeps each point's 5 nearest neighbours of the full features (cosine): "
        "1 = every neighbour on the map is a true neighbour; near 0.5 = the map's neighbourhoods are chance",
    )
    st.caption(
        f"{shown} of {len(meta)} points ({int((meta['kind'] != 'image').sum())} prompt markers) in "
        f"{seconds:.2f} s (then cached)."
    )
warmup = sh.shared_timing.get("umap_warmup_s")
st.caption(
    "Circles: positive prompts; crosses: negative prompts (×n: n identical prompts in one marker); "
    "dots: ID images coloured by class; diamonds: OOD images by set. Click an image to see why it was "
    "accepted or rejected."
    + (f" Compiling UMAP when the server started took {warmup:.1f} s." if warmup else "")
)


def point_row(point: dict) -> int:
    """The run row of a selected map point (its ``customdata``; -1 for a prompt)."""
    data = point.get("customdata", -1)
    data = data[0] if isinstance(data, list | tuple) and data else data
    try:
        return int(data)
    except (TypeError, ValueError):
        return -1


points = list(((event or {}).get("selection") or {}).get("points") or [])
selected = [p for p in points if point_row(p) >= 0]
clicked_prompts = [p for p in points if point_row(p) < 0]
if clicked_prompts:
    st.info("Selected prompt(s): " + "; ".join(str(p.get("hovertext", "")) for p in clicked_prompts))
if selected:
    row = point_row(selected[0])
    columns = [c for c in run.score_columns if c.startswith(f"{method}/")]
    wanted = sh.shared().get("score")
    column = (
        wanted
        if wanted in columns
        else (f"{method}/negprompt" if f"{method}/negprompt" in columns else columns[0])
    )

    @st.dialog("Why this decision", width="large")
    def explain_dialog(row: int) -> None:
        with sh.reported("Cannot explain this image", stop=False):
            ex.show(run, column, row, ex.threshold_of(run, column), im.class_names(run), key="map")

    if st.session_state.get("map_opened") != (str(run.path), row):
        st.session_state["map_opened"] = (str(run.path), row)
        explain_dialog(row)
    else:
        st.button(
            "Explain the selected image again",
            key="map_again",
            on_click=lambda: st.session_state.pop("map_opened", None),
        )

st.subheader("Nearest vocabulary tokens of the learned context vectors")
with sh.reported("Cannot read the context tokens"):
    table = viz.context_token_table(run.context_tokens, method)
if table.empty:
    st.info(f"No context tokens recorded for {method} (context_tokens.json).")
else:
    sh.as_table(table)
