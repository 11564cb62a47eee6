"""The negprompt dashboard: the page table. Launch with ``negprompt app [RUNS_DIR]``.

The pages live in ``app_pages/``, not ``pages/``: Streamlit treats a ``pages/`` folder beside the
entry script as an old-style multipage app until the entry script has run once, so a first visit
to a page's URL would bypass this page table.
"""

import _shared as sh
import streamlit as st
from PIL import Image, ImageDraw


@st.cache_resource
def favicon() -> Image.Image:
    """The tab icon, drawn here: a ``:material/…:`` or emoji icon would be fetched from the internet."""
    img = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.ellipse((4, 4, 60, 60), fill=(31, 119, 180, 255))
    draw.line((18, 32, 46, 32), fill=(255, 255, 255, 255), width=8)
    return img


st.set_page_config(page_title="negprompt", page_icon=favicon(), layout="wide")
page = st.navigation(
    [
        st.Page("app_pages/runs.py", title="Runs", icon=":material/folder_open:", default=True),
        st.Page("app_pages/scores.py", title="Score distributions", icon=":material/bar_chart:"),
        st.Page("app_pages/embeddings.py", title="Prompt embeddings", icon=":material/scatter_plot:"),
        st.Page("app_pages/images.py", title="Per-image decisions", icon=":material/photo_library:"),
        st.Page("app_pages/compare.py", title="Compare runs", icon=":material/compare_arrows:"),
        st.Page("app_pages/ask.py", title="Ask the run", icon=":material/help:"),
    ]
)
with sh.page_frame():  # no page shows an exception: a damaged run shows what is wrong with it
    page.run()
