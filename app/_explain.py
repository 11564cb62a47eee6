"""Why one image was accepted or rejected, for any page: the decomposition of its score, the distance to
the threshold, a caption written from the numbers, the deciding region (GL-MCM) and the nearest ID images.

Also the run's frozen model and NegLabel's label features, loaded on demand and cached per server.
"""

from __future__ import annotations

import _images as im
import _shared as sh
import numpy as np
import pandas as pd
import streamlit as st

from negprompt import explain as E
from negprompt import viz
from negprompt.rundir import Run, RunDirError, resolve_image_path


def threshold_of(run: Run, column: str) -> float:
    """The page's threshold of ``column`` (the shared slider's last value), else the 95%-TPR threshold."""
    chosen = sh.shared().get("thresholds", {}).get(f"{run.path}|{column}")
    return float(chosen) if chosen is not None else sh.tpr95_threshold(str(run.path), column)


@st.cache_resource(show_spinner="Loading the run's model (once per server)…", max_entries=2)
def backbone(run_path: str, backbone_config: str):
    """The run's frozen model (`negprompt.live.run_backbone`), cached per server; key: its description."""
    from negprompt import live

    return live.run_backbone(sh.open_run(run_path).config)


def run_backbone(run: Run):
    """The cached model of ``run``."""
    return backbone(str(run.path), repr(sorted((run.config.get("backbone") or {}).items())))


@st.cache_resource(show_spinner="Encoding NegLabel's negative labels (once per run)…", max_entries=4)
def label_features(run_path: str) -> np.ndarray:
    """[M, D] features of the run's NegLabel words in group order, encoded with the run's model."""
    from negprompt.prompts import PromptConfig, PromptLearner, TextEncoder

    run = sh.open_run(run_path)
    words = ((run.config.get("experiment") or {}).get("neglabel") or {}).get("words") or []
    if not words:
        raise ValueError("the run records no NegLabel words (experiment.neglabel.words)")
    model = run_backbone(run)
    learner = PromptLearner(TextEncoder(model), PromptConfig())
    import torch

    with torch.no_grad():
        return learner.positive_features(learner.class_names(list(words))).float().cpu().numpy()


def explanation(run: Run, column: str, row: int, names: list[str]) -> E.Explanation:
    """The decomposition of ``column`` for one row of the run (raises ValueError / RunDirError)."""
    if run.image_features is None:
        raise ValueError("this run keeps no image features, so its scores cannot be decomposed")
    method = column.split("/")[0]
    pos, neg = run.text_features_of(method)
    labels = label_features(str(run.path)) if column.endswith("/neglabel") else None
    return viz.explain_row(
        column,
        run.scores.iloc[row],
        run.image_features[row],
        pos,
        neg,
        names,
        run.config,
        label_features=labels,
    )


def show(run: Run, column: str, row: int, threshold: float, names: list[str], *, key: str = "x") -> None:
    """The explanation of one image for score ``column`` at ``threshold`` (inside a dialog or a column)."""
    item = run.scores.iloc[row]
    score = float(item[column])
    method, score_name = column.split("/", 1)
    st.subheader(f"Image #{row}")
    st.caption(f"{column}: {E.score_help(column)}")
    picture, detail = st.columns([1, 2])
    is_id = (run.scores["split"] == "id").to_numpy()
    position = E.threshold_position(score, threshold, run.scores.loc[is_id, column].to_numpy())
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
            f"score {score:.5g} {'≥' if position.accepted else '<'} threshold {threshold:.5g}: "
            f"**{'accepted as ID' if position.accepted else 'rejected as OOD'}**"
        )
        st.caption(str(item["path"]))
        region = item.get(f"{method}.best_region")
        grid = (run.config.get("experiment") or {}).get("local_grid")
        if score_name in ("gl_mcm", "l_mcm") and region is not None and pd.notna(region) and grid:
            try:
                path = resolve_image_path(run, str(item["path"]), allowed=sh.image_folders())
                st.image(
                    viz.region_png(path, int(region), int(grid)),
                    caption=f"the deciding local region p* = {int(region)} of {score_name}",
                )
            except (OSError, ValueError) as err:  # RunDirError is a ValueError
                st.caption(f"The local region cannot be outlined: {err}")
    with detail:
        try:
            exp = explanation(run, column, row, names)
        except (RunDirError, OSError):
            raise  # a damaged run: the page's error frame names the file
        except Exception as err:  # a partial run, a model that cannot be rebuilt
            st.info(f"No decomposition of {column} for this image: {err}")
            exp = None
        decomposition(exp, position, names, key=key)
        if exp is not None and abs(exp.score - score) > 1e-3 * max(1.0, abs(score)):
            st.warning(
                f"The decomposition gives {exp.score:.5g}, the run stored {score:.5g}: the stored "
                "features do not reproduce this score."
            )
    nearest_id(run, row, names, key)


def decomposition(
    exp: E.Explanation | None, position: E.ThresholdPosition, names: list[str], *, key: str
) -> None:
    """The distance to the threshold, the caption, the formula, the bars of the shares and the terms."""
    cells = st.columns(2)
    cells[0].metric("Distance to the threshold", f"{position.margin:+.4g}", help="score − threshold")
    cells[1].metric(
        "ID images scoring lower",
        f"{position.id_percentile:.1f}%",
        f"threshold at {position.threshold_percentile:.1f}%",
        delta_color="off",
        help="the score's percentile among the run's ID test images, and the threshold's",
    )
    if exp is None:
        return
    st.container(key=f"caption_{key}").markdown(E.caption(exp, position, names))
    st.caption(f"{exp.formula}.")
    st.plotly_chart(viz.decomposition_figure(exp), key=f"decomposition_{key}")
    sh.as_table(viz.terms_table(exp), where=st.expander("The terms of the score"))


def nearest_id(run: Run, row: int, names: list[str], key: str, k: int = 5) -> None:
    """Thumbnails of the ``k`` ID images of the run closest to this image by feature (cosine)."""
    if run.image_features is None:
        return
    ids = np.flatnonzero((run.scores["split"] == "id").to_numpy())
    near = [
        r for r in viz.nearest_images(run.image_features, run.image_features[row], ids, k + 1) if r != row
    ][:k]
    if not near:
        return
    st.markdown("**Nearest ID test images by feature** (cosine; the run keeps no training images)")
    for cell, r in zip(st.columns(k), near):
        data, _ = im.load_image(str(run.path), str(run.scores["path"].iat[r]))
        cell.image(data, width="stretch")
        cell.caption(f"#{r} · {truth(run.scores.iloc[r], names)}")


def truth(item, names: list[str]) -> str:
    """The true class of an ID image, or "OOD" with the OOD image's own class when known."""
    if item["split"] == "id":
        label = int(item["label"])
        return item["label_name"] or (names[label] if 0 <= label < len(names) else str(label))
    ood_class = item.get("ood_class", "") or ""
    return f"OOD ({ood_class})" if isinstance(ood_class, str) and ood_class else "OOD"
