"""Images and per-image facts of a run, for the per-image page: thumbnails, class names, predictions."""

from __future__ import annotations

import base64

import _shared as sh
import streamlit as st

from negprompt.rundir import Run, RunDirError, resolve_image_path
from negprompt.viz import placeholder_png, thumbnail_png

THUMB_PX = 160
EXPLAIN_PX = 640
"""The explained image is decoded at most this large: a 12000² PNG is never kept at full size."""


@st.cache_data(show_spinner=False, max_entries=600)
def load_image(run_path: str, image_path: str, size: int = THUMB_PX) -> tuple[bytes, str | None]:
    """PNG bytes of an image of a run at most ``size`` pixels a side, or a placeholder and the reason.

    Any failure (outside the data roots, missing, not an image, over PIL's pixel limit, pixel values
    of unknown scale) gives the placeholder and a one-line reason, never an exception. The cache
    holds at most 600 small PNGs (thumbnails about 50 KB, explained images about 1 MB). Sizes
    above a thumbnail's enlarge a tiny image (a 28-pixel digit) with visible pixels.
    """
    try:
        path = resolve_image_path(sh.open_run(run_path), image_path, allowed=sh.image_folders())
        return thumbnail_png(path, size, enlarge=size > THUMB_PX), None
    except RunDirError as err:
        return placeholder_png(min(size, THUMB_PX)), str(err)
    except Exception as err:  # OSError, DecompressionBombError, ValueError, …
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
        return placeholder_png(min(size, THUMB_PX)), f"{image_path}: {reason}"


def thumbnail_url(run_path: str, image_path: str) -> str:
    """A data URL of an image's thumbnail (a placeholder when it cannot be read), for a table's image column."""
    data, _ = load_image(run_path, image_path)
    return "data:image/png;base64," + base64.b64encode(data).decode()


def class_names(run: Run) -> list[str]:
    """The run's class names (``config.data.class_names``; else the class indices as text)."""
    names = (run.config.get("data") or {}).get("class_names") or []
    if names:
        return [str(n) for n in names]
    frame = run.scores
    preds = [int(frame[c].max()) for c in frame.columns if c.startswith("pred.")]
    return [str(i) for i in range(max([int(frame["label"].max()), *preds]) + 1)]


def pred_column(run: Run, column: str) -> str | None:
    """The ``pred.<method>`` column of a score column's method, if the run has it."""
    col = f"pred.{column.split('/')[0]}"
    return col if col in run.scores.columns else None
