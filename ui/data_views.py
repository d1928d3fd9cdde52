"""The Data page's machinery: bundled samples, loading an upload once, the folder-upload zip, the
column-roles editor and image tiles. Kept here so the page reads as a story."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from core.datasets import SAMPLE_DIR, list_table_samples, load_table
from core.errors import TrainboardError
from core.images import load_images_cached, safe_member_name
from core.schema import guess_target, infer_columns
from core.types import USER_ROLES, ColumnInfo, ImageData, TableData
from ui import state

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
}
IMAGE_SAMPLES = ("digits.zip", "shapes.zip")


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

def _default_role(column: ColumnInfo) -> str:
    """What the editor shows before any change: dropped roles (id, constant, empty) read "ignore"."""
    return column.role if column.role in USER_ROLES else "ignore"


def roles_editor(fingerprint: str, frame: Any, target: str, roles: Mapping[str, str]) -> dict[str, str]:
    """A table of every column's role and why, with an editable "use as" column.

    Returns the user's changes (column → role, only where they differ from the detected role).
    The editor's key carries the current changes, so after each edit it is drawn afresh from them.
    """
    detected = detected_columns(fingerprint, target, frame)
    table = [{"column": c.name, "use as": roles.get(c.name, _default_role(c)), "detected": c.role, "why": c.reason,
              "type": c.dtype, "distinct": c.n_unique, "missing": c.n_missing} for c in detected]
    edited = st.data_editor(
        table, key=f"roles-{fingerprint}-{target}-{hash(tuple(sorted(roles.items())))}", hide_index=True,
        disabled=["column", "detected", "why", "type", "distinct", "missing"],
        height=min(35 * (len(table) + 1) + 3, 600),
        column_config={"use as": st.column_config.SelectboxColumn(options=list(USER_ROLES), required=True),
                       "why": st.column_config.TextColumn(width="large")})
    defaults = {c.name: _default_role(c) for c in detected}
    return {row["column"]: row["use as"] for row in edited if row["use as"] != defaults[row["column"]]}


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
