"""Ask the run: score your own image with every method, or rescore the run with another vocabulary.

The run's model is rebuilt on demand (once per server); nothing is written to the run directory:
what-if results live in this browser session only.
"""

import io
import time

import _explain as ex
import _images as im
import _shared as sh
import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from negprompt import explain as E
from negprompt import live, viz
from negprompt.metrics import FPR_CONVENTION, MEAN_CONVENTION
from negprompt.rundir import RunDirError, resolve_image_path

WHATIF = "whatif_result"

st.title("Ask the run")
run = sh.select_run(sh.runs_dir())
sh.weights_banner(run)
names = im.class_names(run)
try:
    with st.spinner("Loading the run's model…"):
        model = ex.run_backbone(run)
except Exception as err:  # LiveError, WeightsError, …: say why this run cannot answer
    st.info(f"Run {run.name} cannot answer live questions: {err}")
    st.stop()


@st.cache_data(show_spinner="Scoring the image with every method…", max_entries=32)
def score_bytes(run_path: str, data: bytes) -> pd.DataFrame:
    """Every score of every method of the run for one image's bytes (cached by content)."""
    run = sh.open_run(run_path)
    labels = ex.label_features(run_path) if any(c.endswith("/neglabel") for c in run.score_columns) else None
    with Image.open(io.BytesIO(data)) as img:
        return live.score_image(img, run, ex.run_backbone(run), label_features=labels)


# --------------------------------------------------------------------------- your own image

st.header("Your own image")
st.caption(
    "Upload an image, or give the path of one inside the run's data roots (other paths are refused). "
    "Every method of the run scores it; each score is decided at this session's threshold of that score "
    "(the 95%-TPR threshold unless moved on another page)."
)
source = st.columns(2)
upload = source[0].file_uploader("Upload an image", type=["png", "jpg", "jpeg", "bmp", "webp"], key="upload")
typed = source[1].text_input(
    "…or a path inside the data roots",
    key="image_path",
    help="inside the run's data roots ("
    + ", ".join(str(r) for r in run.data_roots)
    + ") and the folders this dashboard serves images from ("
    + ", ".join(sh.image_folders())
    + ")",
)
data, label = None, ""
if upload is not None:
    data, label = upload.getvalue(), upload.name
elif typed.strip():
    try:
        path = resolve_image_path(run, typed.strip(), allowed=sh.image_folders())
        data, label = path.read_bytes(), str(path)
    except (RunDirError, OSError) as err:
        st.error(f"Path refused: {err}")
if data is not None:
    try:
        frame = score_bytes(str(run.path), data)
    except Exception as err:  # not an image, a damaged file
        st.error(f"Cannot score {label}: {err}")
        st.stop()
    thresholds = [ex.threshold_of(run, c) for c in frame["column"]]
    frame = frame.assign(
        threshold=thresholds,
        decision=np.where(frame["value"] >= thresholds, "accepted as ID", "rejected as OOD"),
        predicted=[names[p] if 0 <= p < len(names) else str(p) for p in frame["pred"]],
    )
    left, right = st.columns([1, 3])
    with left:
        st.image(data, caption=label, width="stretch")
    with right:
        st.container(key="own_scores").dataframe(
            frame[["column", "value", "threshold", "decision", "predicted"]],
            hide_index=True,
            width="stretch",
            column_config={
                "column": st.column_config.TextColumn("method/score", width="medium"),
                "value": st.column_config.NumberColumn("score", format="%.5g"),
                "threshold": st.column_config.NumberColumn("threshold", format="%.5g"),
            },
        )
    columns = list(frame["column"])
    wanted = sh.shared().get("score")
    wanted = wanted if wanted in columns else "negprompt/negprompt"
    chosen = st.selectbox(
        "Explain the score",
        columns,
        index=columns.index(wanted) if wanted in columns else 0,
        key="own_column",
        help=sh.score_help_text(columns),
    )
    row = frame[frame["column"] == chosen].iloc[0]
    method = chosen.split("/")[0]
    pos, neg = run.text_features_of(method)
    labels = ex.label_features(str(run.path)) if chosen.endswith("/neglabel") else None
    exp = viz.explain_row(
        chosen, pd.Series(dtype=object), frame.attrs["feature"], pos, neg, names, run.config,
        label_features=labels, local_features=frame.attrs["local"],
    )  # fmt: skip
    id_scores = run.scores.loc[run.scores["split"] == "id", chosen].to_numpy()
    position = E.threshold_position(float(row["value"]), float(row["threshold"]), id_scores)
    ex.decomposition(exp, position, names, key="own")

# --------------------------------------------------------------------------- what if

st.header("Open vocabulary: what if the classes were others?")
st.caption(
    "One class per line. A line with a class of the run keeps it; `old => new` renames it (its images "
    "keep their label); any other line adds a class; a class on no line is removed. The learned contexts "
    "are paired with these names and the run's images rescored; decisions are compared, each score at "
    "its own 95%-TPR threshold before and after. NegLabel is left out: its negative labels are mined "
    "against the class list, so another list would need another mining."
)
text = st.text_area("ID classes", "\n".join(names), height=180, key="vocabulary")
if st.button("Rescore the run with these classes", key="rescore", type="primary"):
    try:
        vocab = live.parse_vocabulary(text, names)
        start = time.perf_counter()
        with st.spinner("Encoding the new class prompts and rescoring…"):
            result = live.whatif(run, model, vocab)
        st.session_state[WHATIF] = (str(run.path), text, result, time.perf_counter() - start)
    except (live.LiveError, RunDirError, OSError) as err:
        st.error(f"Cannot rescore: {err}")
saved = st.session_state.get(WHATIF)
if saved and saved[0] == str(run.path):
    _, used, result, seconds = saved
    if used != text:
        st.info("The classes above were edited since: press the button to rescore with them.")
    st.success(
        f"Rescored {len(result.scores)} images in {seconds:.1f} s (kept in this browser session only)."
    )
    before = run.metrics[run.metrics["dataset"] == "mean"].set_index(["method", "score"])
    after = result.metrics[result.metrics["dataset"] == "mean"].set_index(["method", "score"])
    both = after.add_suffix(" after").join(before.add_suffix(" before"), how="left").reset_index()
    flips = result.changed.groupby("column").size()
    both["decisions changed"] = [int(flips.get(f"{m}/{s}", 0)) for m, s in zip(both["method"], both["score"])]
    table = pd.DataFrame(
        {
            "method/score": both["method"] + "/" + both["score"],
            "FPR95 before %": 100 * both["fpr95 before"],
            "FPR95 after %": 100 * both["fpr95 after"],
            "AUROC before %": 100 * both["auroc before"],
            "AUROC after %": 100 * both["auroc after"],
            "ID acc after %": 100 * both["id_acc after"],
            "decisions changed": both["decisions changed"],
        }
    )
    sh.as_table(table, where=st.container(key="whatif_metrics"))
    st.caption(
        f"{FPR_CONVENTION}. {MEAN_CONVENTION}; these are the mean rows. ID accuracy counts the ID images "
        "whose class is still in the list."
    )
    changed_columns = list(dict.fromkeys(result.changed["column"]))
    if changed_columns:
        column = st.selectbox("Changed decisions of", changed_columns, key="whatif_column")
        part = result.changed[result.changed["column"] == column].head(40)
        part = part.assign(
            image=[im.thumbnail_url(str(run.path), str(run.scores["path"].iat[r])) for r in part["row"]]
        )
        st.dataframe(
            part[["row", "image", "dataset", "before", "after", "old score", "new score"]],
            hide_index=True,
            width="stretch",
            column_config={"image": st.column_config.ImageColumn("image")},
        )
    else:
        st.info("No decision changes with these classes.")
