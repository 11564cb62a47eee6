"""The negprompt dashboard: the page table. Launch with ``negprompt app [RUNS_DIR]``.

The pages live in ``app_pages/``, not ``pages/``: Streamlit treats a ``pages/`` folder beside the
entry script as an old-style multipage app until the entry script has run once, so a first visit
to a page's URL would bypass this page table.
"""

import _shared as sh
import streamlit as st

st.set_page_config(page_title="negprompt", page_icon=":material/explore:", layout="wide")
page = st.navigation(
    [
        st.Page("app_pages/runs.py", title="Runs", icon=":material/folder_open:", default=True),
        st.Page("app_pages/scores.py", title="Score distributions", icon=":material/bar_chart:"),
        st.Page("app_pages/embeddings.py", title="Prompt embeddings", icon=":material/scatter_plot:"),
        st.Page("app_pages/images.py", title="Per-image decisions", icon=":material/photo_library:"),
        st.Page("app_pages/compare.py", title="Compare runs", icon=":material/compare_arrows:"),
    ]
)
with sh.page_frame():  # no page shows an exception: a damaged run shows what is wrong with it
    page.run()
