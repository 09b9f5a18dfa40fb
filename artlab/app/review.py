"""The app's side of the audit (artlab.audit): the audit folders under the runs folder, their findings with pictures,
and each finding one click from a curation decision. App layer: imports Streamlit. Strings from the data (ids,
ImageNet class names, labels, folder names) reach markdown only through ``artlab.report.csvsafe.md``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import streamlit as st

from artlab.app.curation import MESSAGE, badges
from artlab.app.roots import MAX_LISTED, check_root
from artlab.audit.audit import KINDS
from artlab.audit.report import FINDINGS, PICTURES, SUMMARY, TITLES, decide, read_findings
from artlab.collection import curation
from artlab.errors import ArtlabError
from artlab.report.csvsafe import md
from artlab.safety import PathEscape, artlab_kind, contained

log = logging.getLogger("artlab.app")
SHOWN = 30  # findings a tab shows at first
ACTION = {"near-copy": "Leave it out (a copy)", "not-a-painting": "Leave it out (not a painting)",
          "label": "Set the label"}


def list_audits(root: str) -> list[str]:
    """Audit folders (``artlab audit --out``) directly under ``root`` or ``root`` itself."""
    base = check_root(root)
    if not base.is_dir():
        return []
    found = []
    for folder in [base, *sorted(p for p in base.iterdir() if p.is_dir())[:MAX_LISTED]]:
        if (folder / FINDINGS).is_file() and artlab_kind(folder) == "audit":
            found.append(str(folder))
    return found


@st.cache_data(show_spinner=False, max_entries=8)
def _load(folder: str, stamp) -> tuple[pd.DataFrame, dict]:
    return read_findings(folder)


def load_audit(folder: str) -> tuple[pd.DataFrame, dict]:
    """(findings, audit.json) of an audit folder the app may open."""
    path = check_root(folder)
    return _load(str(path), _stamp_of(path / FINDINGS))


def picture(folder: str, kind: str, rank: int) -> Path | None:
    """The finding's side-by-side picture, kept inside the audit folder."""
    try:
        p = contained(folder, f"{PICTURES}/{kind}-{int(rank):03d}.jpg", what="an audit picture")
    except PathEscape:
        return None
    return p if p.is_file() else None


def collection_state(summary: dict) -> tuple[Path | None, curation.Curated | None, str | None]:
    """The audited collection, as curated now, and why decisions cannot be recorded there (None: they can)."""
    folder = Path(summary.get("collection") or "")
    why = curation.unavailable(folder)
    if why and not (folder / "manifest.csv").is_file():
        return None, None, why
    stamp = tuple(_stamp_of(folder / name) for name in ("manifest.csv", curation.CURATION))
    return folder, _curated(str(folder), stamp), why


def _stamp_of(path: Path):
    try:
        s = path.stat()
        return s.st_mtime_ns, s.st_size
    except OSError:
        return None


@st.cache_data(show_spinner=False, max_entries=8)
def _curated(folder: str, stamp: tuple) -> curation.Curated:
    """The collection as curated, read again when its manifest or curation.csv changes."""
    return curation.effective(folder)


def _decide(collection: str, kind: str, pid: str, related: str, label: str | None) -> None:
    """A decision from a button's callback; its outcome is shown by ``curation_message`` on the next run."""
    try:
        row = decide(collection, kind, pid, related, label)
    except ArtlabError as exc:
        st.session_state[MESSAGE] = ("error", str(exc))
        return
    except Exception:  # noqa: BLE001 - the page goes on; the traceback goes to the server log
        log.exception("unexpected error while recording a decision from an audit finding")
        st.session_state[MESSAGE] = ("error", "Something went wrong while saving the decision. The details are in "
                                              "the server log.")
        return
    st.session_state[MESSAGE] = ("success", f"Painting {row['id']}: {curation.describe(row)}. Saved in "
                                            f"{curation.CURATION}; the next training on this collection will see it.")


def leakage_warning(card: dict) -> str:
    """A warning when copies of one painting sit in more than one of the run's splits (the card's
    ``task.leakage``, docs/audit.md); '' otherwise."""
    leak = (card.get("task") or {}).get("leakage") or {}
    groups, test = leak.get("groups_across_splits") or 0, leak.get("test_paintings_affected") or 0
    if not isinstance(groups, int) or groups <= 0:
        return ""
    return (f"{groups} painting(s) appear more than once in this collection with their copies in different splits "
            f"({test} test painting(s) have a copy the models may have learned from): the test figures may flatter "
            "them. `artlab train --group-duplicates` keeps copies together; *Review the collection* lists them.")


def tab_titles(table: pd.DataFrame) -> list[tuple[str, str]]:
    """(kind, "Title (count)") for each kind of finding, in the audit's order."""
    return [(k, f"{TITLES[k]} ({int((table['kind'] == k).sum())})") for k in KINDS]


def summary_lines(summary: dict) -> list[str]:
    """The audit in plain words (data strings escaped)."""
    lines = [f"Collection {md(summary.get('collection', '?'))}; label checked: {md(summary.get('label') or 'none')}."]
    run = summary.get("run")
    if run:
        acc = "; ".join(f"{md(m)} {v['all']:.0%} on all test paintings, {v['without_copies']:.0%} without them"
                        for m, v in (run.get("accuracy") or {}).items())
        lines.append(f"Run {md(Path(str(run.get('run', ''))).name)}: {run.get('groups_across_splits', 0)} near-copy "
                     f"group(s) straddle its splits ({run.get('paintings_affected', 0)} paintings, "
                     f"{run.get('test_paintings_left_out', 0)} of them in test). Test accuracy: {acc}.")
    return lines


def findings_tab(folder: str, table: pd.DataFrame, summary: dict, kind: str) -> None:
    rows = table[table["kind"] == kind].sort_values("rank")
    if rows.empty:
        st.info(f"No {TITLES[kind].lower()} finding in this audit.")
        return
    collection, curated, why = collection_state(summary)
    if why:
        st.info(md(f"Decisions cannot be recorded here: {why}."), icon=":material/flag:")
    flags = curated.flags() if curated is not None else {}
    label = summary.get("label")
    n = st.number_input("Findings shown", 1, len(rows), min(SHOWN, len(rows)), key=f"review_n_{kind}")
    for r in rows.head(int(n)).itertuples():
        with st.container(border=True):
            left, right = st.columns([3, 2])
            pic = picture(folder, kind, r.rank)
            if pic is not None:
                left.image(str(pic), width="stretch")
            with right:
                what = {"near-copy": f"a copy of {r.related}", "not-a-painting": f"looks like: {r.related}",
                        "label": f"labelled otherwise; the models suggest {label}: {r.related}"}[kind]
                st.markdown(f"**{r.rank}. {md(r.id)}**: {md(what)} (score {float(r.score):.3f})")
                badges(flags.get(str(r.id), []))
                if not why and collection is not None and str(r.id) not in flags:
                    st.button(ACTION[kind] if kind != "label" else f"Set {md(label)} to {md(r.related)}",
                              key=f"review_{kind}_{r.rank}", on_click=_decide,
                              args=(str(collection), kind, str(r.id), str(r.related), label),
                              icon=":material/flag:")
