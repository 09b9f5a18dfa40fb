"""The one workaround for Streamlit's legacy ``pages/`` mode.

The design keeps the pages in a folder named ``pages/`` beside app.py, and Streamlit takes such a folder for its
legacy multipage mode until ``st.navigation`` has run once in the process: the very first run of a fresh server then
shows the legacy menu ("app, classify, ...") and runs the requested page without app.py, the frame. The switch is a
class attribute, ``PagesManager.uses_pages_directory``, decided when the first session starts; ``artlab.app.serve``
sets it before that, and a page that still finds it on (``streamlit run app.py``, AppTest) sets it and reruns
(``artlab.app.frame.require_frame``). tests/test_layers.py fails loudly if a Streamlit upgrade moves it.
"""

from __future__ import annotations

from streamlit.runtime.pages_manager import PagesManager


def legacy_pages_off() -> bool:
    """Turn the legacy mode off for this process; True if it was on."""
    was_on = bool(PagesManager.uses_pages_directory)
    PagesManager.uses_pages_directory = False
    return was_on
