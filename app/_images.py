"""Images and per-image facts of a run, for the per-image page: thumbnails, class names, predictions."""

from __future__ import annotations

import _shared as sh
import streamlit as st

from negprompt.rundir import Run, RunDirError, resolve_image_path
from negprompt.viz import placeholder_png, thumbnail_png

THUMB_PX = 160


@st.cache_data(show_spinner=False, max_entries=2000)
def load_image(run_path: str, image_path: str, size: int | None = THUMB_PX) -> tuple[bytes, str | None]:
    """PNG bytes of an image of a run (a thumbnail when ``size``), or a placeholder and the reason."""
    try:
        return thumbnail_png(resolve_image_path(sh.open_run(run_path), image_path), size), None
    except (RunDirError, OSError) as err:
        return placeholder_png(size or THUMB_PX), str(err)


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
