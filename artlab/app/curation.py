"""The app's side of curation (artlab.collection.curation): a painting's badge and flag controls, the collection's
decisions table, and the notice on a run whose collection has changed since it was trained. App layer: imports Streamlit.

Decisions are saved in button callbacks, so the page that follows already shows them (badge, table, filter).
Strings from the data (labels, notes, reasons) reach markdown-rendering elements only through
``artlab.report.csvsafe.md``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import streamlit as st

from artlab.app.frame import run_safely
from artlab.app.roots import within_roots
from artlab.collection import curation
from artlab.collection.contract import MANIFEST
from artlab.errors import ArtlabError
from artlab.report.csvsafe import md
from artlab.runfolder import Run
from artlab.train.command import retrain_command

log = logging.getLogger("artlab.app")
WHAT = {"exclude": "Leave it out of training", "set": "Give it another label"}
MESSAGE = "curation_message"


def _stamp(folder: Path) -> tuple:
    out = []
    for name in (MANIFEST, curation.CURATION):
        try:
            s = (folder / name).stat()
            out.append((s.st_mtime_ns, s.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


@st.cache_data(show_spinner=False, max_entries=16)
def _curated(folder: str, stamp: tuple) -> curation.Curated:
    return curation.effective(folder)


def state(run: Run) -> tuple[curation.Curated | None, str | None]:
    """The run's collection as curated now (None when it cannot be read here), and why flagging is unavailable
    (None when it is available)."""
    folder = run.collection
    if folder is None:  # neither beside the run nor where the card recorded it (Run.collection)
        return None, curation.unavailable(run.card["task"].get("collection") or "(not recorded)")
    why = curation.unavailable(folder) or _outside_roots(run, folder)
    if not (folder / MANIFEST).is_file():
        return None, why
    return _curated(str(folder), _stamp(folder)), why


def _outside_roots(run: Run, folder: Path) -> str | None:
    """A collection found beside the run (its card's ``collection_relative``, as artlab writes it) may be flagged
    into; one found only at the card's absolute ``collection`` only when it lies under one of the app's roots (a
    card is data: it may name any folder of the server)."""
    relative = run.card["task"].get("collection_relative")
    if relative and (run.path / relative).resolve() == folder:
        return None
    if within_roots(folder):
        return None
    return ("its collection is recorded at an absolute path outside the folders this app opens (add that folder "
            "to ARTLAB_RUNS or to the roots file when starting the app)")


def flags(run: Run) -> dict[str, list[dict]]:
    """{painting id: its decisions in force} in the run's collection ({} when it cannot be read here)."""
    curated, _ = state(run)
    return curated.flags() if curated is not None else {}


FLAGGED = {"all": "all", "flagged": "flagged", "unflagged": "not flagged"}


def filter_flagged(df: pd.DataFrame, run: Run, which: str) -> pd.DataFrame:
    """Gallery rows (column ``id``) by whether a curation decision stands on them."""
    if which == "all":
        return df
    flagged = df["id"].isin(flags(run))
    return df[flagged if which == "flagged" else ~flagged]


def badges(decisions: list[dict]) -> None:
    for d in decisions:
        excluded = d["action"] == "exclude"
        st.badge(md(curation.describe(d)), icon=":material/block:" if excluded else ":material/edit:",
                 color="red" if excluded else "blue")


def unavailable_notice(run: Run) -> None:
    """Said once on a page: why its flag buttons are missing."""
    _, why = state(run)
    if why:
        st.info(md(f"Flagging paintings is unavailable for this model: {why}. Decisions are kept in the "
                      f"collection folder, beside its {MANIFEST}."), icon=":material/flag:")


def flag_controls(run: Run, painting_id: str, key: str) -> None:
    """The painting's badges, and (where the collection is writable here) a popover to exclude it or relabel it."""
    curated, why = state(run)
    if curated is None or painting_id not in _ids(curated):
        return
    mine = curated.flags().get(painting_id, [])
    badges(mine)
    if why:
        return
    folder = str(run.collection)
    title = _title(curated, painting_id)
    with st.popover("Flag this painting", icon=":material/flag:", width="stretch"):
        if mine:
            st.button("Undo the decision" + ("s" if len(mine) > 1 else ""), key=f"undo_{key}", on_click=_undo,
                      args=(folder, painting_id, title), icon=":material/undo:")
        # outside the form, so that choosing an action shows only its own field
        what = st.radio("What should happen to it?", list(WHAT), key=f"flag_what_{key}", format_func=WHAT.get)
        with st.form(f"flag_{key}", border=False):
            if what == "exclude":
                st.selectbox("Why leave it out?", curation.REASONS, key=f"flag_reason_{key}")
            else:
                st.selectbox(f"Its {run.label}, if another", _choices(curated, run), key=f"flag_value_{key}",
                             accept_new_options=True)
            # a text area tall enough that its counter sits below the words (a text input drew it over them)
            st.text_area("Note (optional)", key=f"flag_note_{key}", max_chars=NOTE_CHARS, height=120,
                         placeholder=f"at most {NOTE_CHARS} characters")
            st.form_submit_button("Save the decision", on_click=_save,
                                  args=(folder, painting_id, run.label, key, title), icon=":material/save:",
                                  key=f"flag_save_{key}")


NOTE_CHARS = 300


def _title(curated: curation.Curated, painting_id: str) -> str:
    """The painting's title for a confirmation ('' when the manifest has none)."""
    m = curated.manifest
    if "title" not in m.columns:
        return ""
    found = m.loc[m["id"] == painting_id, "title"]
    return str(found.iloc[0]) if len(found) and str(found.iloc[0]).strip() else ""


def _ids(curated: curation.Curated) -> set[str]:
    """Paintings a decision can name: the manifest's (excluded ones included)."""
    return set(curated.manifest["id"]) | set(curated.excluded)


def _choices(curated: curation.Curated, run: Run) -> list[str]:
    labels = curated.manifest[run.label] if run.label in curated.manifest.columns else pd.Series([], dtype=str)
    return sorted(set(run.classes) | set(labels[labels != ""]))


def _save(folder: str, painting_id: str, label: str, key: str, title: str = "") -> None:
    s = st.session_state
    note = s.get(f"flag_note_{key}", "")
    if s.get(f"flag_what_{key}") == "exclude":
        _record(curation.exclude, folder, painting_id, s.get(f"flag_reason_{key}", "other"), note=note, title=title)
    else:
        _record(curation.relabel, folder, painting_id, label, s.get(f"flag_value_{key}") or "", note=note,
                title=title)


def _undo(folder: str, painting_id: str, title: str = "") -> None:
    _record(curation.undo, folder, painting_id, title=title)


def _record(decide, folder: str, painting_id: str, *args, title: str = "", **kwargs) -> None:
    """A decision from a callback: its outcome is kept for ``curation_message`` to show (a callback draws nothing).
    The confirmation names the painting by its title (its id when it has none)."""
    try:
        row = decide(folder, painting_id, *args, **kwargs)
    except ArtlabError as exc:
        st.session_state[MESSAGE] = ("error", str(exc))
        return
    except Exception:  # noqa: BLE001 - the page must go on; the traceback goes to the server log
        log.exception("unexpected error while recording a curation decision")
        st.session_state[MESSAGE] = ("error", "Something went wrong while saving the decision. The details are in "
                                              "the server log.")
        return
    words = "decisions withdrawn" if row["action"] == "undo" else curation.describe(row)
    named = f"“{title}” ({row['id']})" if title else f"Painting {row['id']}"
    st.session_state[MESSAGE] = ("success", f"{named}: {words}. Saved in {curation.CURATION}; the next training on "
                                            "this collection will see it.")


def curation_message() -> None:
    """The outcome of the last decision of this session, once."""
    kind, text = st.session_state.pop(MESSAGE, (None, None))
    if kind:
        (st.success if kind == "success" else st.error)(md(text))


def decisions_table(run: Run) -> None:
    """The collection's decisions, every one with its status, and the table as CSV."""
    curated, _ = state(run)
    if curated is None or not curated.rows:
        return
    table = run_safely(curation.history, run.collection, what="reading the curation decisions")
    if table is None:
        return
    with st.expander(f"The collection's curation: {len(curated.decisions)} decision(s) in force, "
                     f"{curated.rows} recorded", icon=":material/fact_check:"):
        st.dataframe(table, hide_index=True, width="stretch")
        st.download_button("Download the decisions (CSV)", curation.to_csv(table), curation.CURATION, "text/csv",
                           icon=":material/download:", key="curation_csv")


def stale_notice(run: Run) -> None:
    """On a run whose collection has had decisions since it was trained: how many, and the command to retrain."""
    folder = run.collection
    if folder is None or not (folder / curation.CURATION).is_file():
        return
    n = curation.since(folder, run.card)
    if n:
        st.warning(f"{n} correction{'s' if n != 1 else ''} since this model was trained.", icon=":material/update:")
        with st.expander("Train it again on the corrected collection"):
            st.code(retrain_command(run.card, folder, run.path), language="bash", wrap_lines=True)  # never clipped
