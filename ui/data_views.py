"""The Data page's machinery: bundled samples, loading an upload once, the folder-upload zip, the
column-roles editor, the data checks' panel (and its one-line summary for Train) and image tiles.
Kept here so the page reads as a story."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from core.checks import KEEP_COLUMN, KEEP_VALID_DUPLICATES, SEVERITIES, SPLIT_DUPLICATES, Finding, summary
from core.datasets import SAMPLE_DIR, list_table_samples, load_table
from core.errors import TrainboardError
from core.images import load_images_cached, safe_member_name
from core.schema import guess_target, infer_columns
from core.types import USER_ROLES, ColumnInfo, ImageData, TableData
from ui import pages, state

#: One line per bundled sample, for a newcomer choosing one (see sample_data/README.md).
SAMPLE_NOTES = {
    "churn.csv": "5,000 made-up telecom customers: will they leave? Yes/no, imbalanced (18% yes), with "
                 "missing values, a date and an ID column — a realistic table.",
    "iris.csv": "150 iris flowers measured in centimetres: which of 3 species? The classic first data set.",
    "wine.csv": "178 wines by chemical analysis: which of 3 cultivars (numbered 1–3)?",
    "breast_cancer.csv": "569 tumour scans, 30 measurements each: malignant or benign?",
    "diabetes.csv": "442 patients: predict disease progression after one year, a number (regression).",
    "digits.zip": "1,797 handwritten digits 0–9, 32×32 grey images: which digit is it?",
    "shapes.zip": "720 generated circles, squares and triangles, 48×48 colour images: which shape?",
    "textures.zip": "48 real photos of brick, grass and gravel, 128×128 grey: which surface? Few examples, "
                    "as in Teachable Machine — the pretrained network's case.",
}
IMAGE_SAMPLES = ("digits.zip", "shapes.zip", "textures.zip")


@dataclass(frozen=True)
class Sample:
    name: str
    path: Path
    kind: str  # "tabular" or "images"
    note: str


def samples() -> list[Sample]:
    """The bundled tables and image sets, tables first."""
    tables = [Sample(p.name, p, "tabular", SAMPLE_NOTES.get(p.name, "")) for p in list_table_samples()]
    images = [Sample(n, SAMPLE_DIR / n, "images", SAMPLE_NOTES[n]) for n in IMAGE_SAMPLES if (SAMPLE_DIR / n).exists()]
    return tables + images


@st.cache_resource(max_entries=8, show_spinner="Reading the sample…")
def load_sample(path: str, kind: str) -> TableData | ImageData:
    """A bundled sample, read once per server (samples never change while it runs)."""
    return load_table(path) if kind == "tabular" else load_images_cached(path)


def switch_to(data: state.LoadedData) -> None:
    """Make ``data`` the session's data with its target guessed, and redraw (the sidebar too)."""
    state.set_dataset(data)
    if data.kind == "tabular":
        st.session_state[state.TARGET] = guess_target(data.data.frame)
    st.rerun()


def use_upload(fingerprint: str, name: str, load: Callable[[], tuple[Path, TableData | ImageData]]) -> None:
    """Load an upload once per distinct file (``load`` saves it and returns its server path and
    data) and switch to it; a failure is remembered and shown by ``upload_error``."""
    seen = st.session_state.setdefault(state.DATA_SEEN, {})
    if fingerprint in seen:
        return
    try:
        path, data = load()
    except TrainboardError as err:
        seen[fingerprint] = str(err)
        return
    seen[fingerprint] = None
    switch_to(state.LoadedData(name=name, path=str(path), data=data, fingerprint=fingerprint))


def upload_error(fingerprint: str) -> None:
    if error := st.session_state.get(state.DATA_SEEN, {}).get(fingerprint):
        st.error(error)


@st.cache_resource(max_entries=8, show_spinner=False)
def _detected(fingerprint: str, target: str, _frame: Any) -> tuple[ColumnInfo, ...]:
    return infer_columns(_frame, target)


def detected_columns(fingerprint: str, target: str, frame: Any) -> tuple[ColumnInfo, ...]:
    """The roles Trainboard picks by itself (before the user's changes), once per data and target."""
    return _detected(fingerprint, target, frame)

def _default_role(column: ColumnInfo, left_out: Mapping[str, str]) -> str:
    """What the editor shows before any change: dropped roles (id, constant, empty) and columns the
    data checks leave out read "ignore"."""
    return column.role if column.role in USER_ROLES and column.name not in left_out else "ignore"


def roles_editor(fingerprint: str, frame: Any, target: str, roles: Mapping[str, str],
                 left_out: Mapping[str, str] | None = None) -> dict[str, str]:
    """A table of every column's role and why, with an editable "use as" column.

    ``left_out`` are the columns the data checks leave out (column → why): they read "ignore", and
    choosing a role for one keeps it. Returns the user's changes (column → role, only where they
    differ from the default). The editor's key carries the current changes, so after each edit it
    is drawn afresh from them.
    """
    left_out = left_out or {}
    detected = detected_columns(fingerprint, target, frame)
    table = [{"column": c.name, "use as": roles.get(c.name, _default_role(c, left_out)), "detected": c.role,
              "why": left_out.get(c.name, c.reason), "type": c.dtype, "distinct": c.n_unique,
              "missing": c.n_missing} for c in detected]
    edited = st.data_editor(
        table, key=f"roles-{fingerprint}-{target}-{hash(tuple(sorted(roles.items())))}", hide_index=True,
        disabled=["column", "detected", "why", "type", "distinct", "missing"],
        height=min(35 * (len(table) + 1) + 3, 600),
        column_config={"use as": st.column_config.SelectboxColumn(options=list(USER_ROLES), required=True),
                       "why": st.column_config.TextColumn(width="large")})
    defaults = {c.name: _default_role(c, left_out) for c in detected}
    return {row["column"]: row["use as"] for row in edited if row["use as"] != defaults[row["column"]]}


# --- the data checks -----------------------------------------------------------------------------

SEVERITY_ICONS = {"blocker": ":material/block:", "warning": ":material/warning:", "note": ":material/info:"}


def left_out_by_checks(findings: Sequence[Finding]) -> dict[str, str]:
    """Columns the checks would leave out unless kept (column → why, for the roles editor)."""
    return {f.columns[0]: f"{'left out' if f.acted else 'flagged'} by the data checks: {f.title[0].lower()}{f.title[1:]}"
            for f in findings if f.opt_out and f.opt_out.startswith(KEEP_COLUMN) and f.columns}


def checks_panel(findings: Sequence[Finding], fingerprint: str, target: str | None, detected: Sequence[ColumnInfo],
                 images: ImageData | None = None) -> None:
    """The "Checks" panel: every finding, most severe first, with its evidence, example rows (or
    images), what Trainboard does about it, and the switch that undoes an automatic action."""
    st.subheader("Checks")
    if not findings:
        st.success("No problems found: no repeated images, no class too small to judge, no unreadable files."
                   if images is not None else
                   "No problems found: no leaking column, no repeated rows, no class too small to judge.",
                   icon=":material/check_circle:")
        return
    looked = ("identical or look-alike images (within a class, across classes, across the split), classes too "
              "small to judge, mixed sizes and files it could not read" if images is not None else
              "a column that gives the answer away, repeated rows, columns that cannot help and targets that are hard "
              "to judge")
    st.caption(f"{summary(findings)}. Trainboard looked for {looked}. Warnings first; open one to see the evidence "
               "and what is done about it.")
    roles = dict(st.session_state.get(state.ROLES) or {})
    # The one "keep duplicates" switch sits with the rows it would keep (the split's finding), else
    # with the first finding that offers it.
    offering = [f for f in findings if f.opt_out == KEEP_VALID_DUPLICATES]
    switch_at = next((f for f in offering if f.id == SPLIT_DUPLICATES), offering[0] if offering else None)
    for finding in findings:
        label = f"**{finding.severity.capitalize()}** · {finding.title}"
        with st.expander(label, icon=SEVERITY_ICONS[finding.severity], expanded=finding.severity != "note"):
            st.markdown(finding.evidence)
            if finding.examples:
                _examples(finding, images)
            st.markdown(f"**What Trainboard does:** {finding.action}")
            if finding.opt_out and finding.opt_out.startswith(KEEP_COLUMN) and finding.columns:
                _use_anyway(finding.columns[0], fingerprint, target, detected, roles)
            elif finding is switch_at:
                _keep_duplicates(fingerprint)


def _examples(finding: Finding, images: ImageData | None) -> None:
    if images is not None and all("index" in e for e in finding.examples):
        for example in finding.examples:
            names = ["/".join(f.split("/")[-2:]) for f in example["files"]]
            st.image([_hwc(images.images[i]) for i in example["index"]], caption=names, width=64)
        return
    rows = [{k: ", ".join(map(str, v)) if isinstance(v, list) else v for k, v in e.items()} for e in finding.examples]
    st.dataframe(rows, hide_index=True)


def _use_anyway(column: str, fingerprint: str, target: str | None, detected: Sequence[ColumnInfo],
                roles: Mapping[str, str]) -> None:
    kept = column in roles
    key = f"{state.DATA_USE_COLUMN}:{fingerprint}:{target}:{column}:{kept}"
    role = next((c.role for c in detected if c.name == column), "numeric")

    def changed() -> None:
        chosen = dict(st.session_state.get(state.ROLES) or {})
        if st.session_state[key]:
            chosen[column] = roles.get(column, role if role in USER_ROLES else "categorical")
        else:
            chosen.pop(column, None)
        st.session_state[state.ROLES] = chosen

    st.checkbox(f"Use '{column}' anyway (its value is known before the outcome for new rows too)", value=kept,
                key=key, on_change=changed)


def _keep_duplicates(fingerprint: str) -> None:
    key = f"{state.DATA_KEEP_DUPLICATES}:{fingerprint}"
    st.toggle("Keep duplicates in validation", value=KEEP_VALID_DUPLICATES in state.checks_off(), key=key,
              on_change=lambda: state.set_check_off(KEEP_VALID_DUPLICATES, bool(st.session_state[key])),
              help="Off (the default): validation rows identical to a training row are dropped from validation, so "
                   "its scores are not inflated by answers the model has memorised.")


def checks_line(findings: Sequence[Finding]) -> None:
    """The one-line summary on Train: "3 findings: 1 warning, 2 notes — see the Data page"."""
    if not findings:
        return
    loud = any(f.severity in SEVERITIES[:2] for f in findings)
    text = f"Data checks: {summary(findings)} — see the Data page."
    if loud:
        st.warning(text, icon=":material/warning:")
    else:
        st.caption(text)
    if loud:
        pages.link(pages.DATA, "Open the checks", icon=":material/fact_check:")


def image_tiles(data: ImageData, per_class: int = 6, max_classes: int = 12) -> list[tuple[str, list[np.ndarray]]]:
    """A few images of each class as H×W×C (or H×W) arrays for ``st.image``."""
    out = []
    for index, name in enumerate(data.class_names[:max_classes]):
        picks = np.flatnonzero(data.labels == index)[:per_class]
        out.append((name, [_hwc(data.images[i]) for i in picks]))
    return out


def _hwc(image: np.ndarray) -> np.ndarray:
    return image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)


def folder_name(files: Sequence[Any]) -> str:
    """The uploaded folder's own name (the first part of the files' relative paths)."""
    parts = str(files[0].name).replace("\\", "/").split("/") if files else []
    return parts[0] if len(parts) > 1 and parts[0] not in ("", ".", "..") else "folder"


def zip_folder_upload(files: Sequence[Any]) -> bytes:
    """A browser folder upload as one in-memory zip, keeping relative paths (refusing unsafe ones),
    so the training worker reads one file."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for item in files:
            archive.writestr(safe_member_name(str(item.name)), item.getvalue())
    return buffer.getvalue()
