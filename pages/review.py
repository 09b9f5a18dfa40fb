"""Review the collection: an audit's three rankings (near-copies, not a painting, label looks wrong) with their
pictures side by side, each finding one click from a curation decision (docs/audit.md)."""

from pathlib import Path

import streamlit as st

from artlab import app
from artlab.report.csvsafe import md

app.require_frame()
st.title("Review the collection")
st.caption("Copies of one painting that a split may put in training and test at once, pictures that are not "
           "paintings, labels the models find implausible. An audit folder is written by `artlab audit COLLECTION "
           "--label genre --run RUN --out FOLDER` (docs/audit.md); put it beside the trained models to see it here.")
root = st.session_state.get("runs_root", str(app.default_runs_root()))
audits = app.run_safely(app.list_audits, root, what="listing the audits") or []
if not audits:
    st.info(f"No audit in {md(root)} yet.")
    st.stop()
folder = st.selectbox("Audit", audits, format_func=lambda p: Path(p).name, key="review_audit")
loaded = app.run_safely(app.load_audit, folder, what="reading the audit")
if loaded is not None:
    table, summary = loaded
    app.curation_message()
    for line in app.summary_lines(summary):
        st.markdown(line)
    titles = app.tab_titles(table)
    for (kind, _), tab in zip(titles, st.tabs([title for _, title in titles])):
        with tab:
            app.run_safely(app.findings_tab, folder, table, summary, kind, what="showing the findings")
