"""Section 4: reading tables and decoding images.

Tables: ``core.datasets.load_table`` (sniffing, Arrow-backed parse, plain dtypes) vs a plain
``pandas.read_csv`` with its defaults, each in a fresh process that has imported the same modules
first, so the memory figure is what the load itself adds to the process's peak (``ru_maxrss``).
Images: ``core.images.load_images`` on the sample zips vs a plain Pillow loop that produces the
same uint8 array.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import (
    Config,
    Section,
    Spread,
    Table,
    interleaved,
    log,
    peak_rss_since_reset_mb,
    ratios,
    reset_peak_rss,
    run_child,
)

TARGET = 1.2


def table_child(path: str, variant: str) -> dict[str, Any]:
    """Child task: read the CSV once; report seconds and the memory the read itself added."""
    import pandas as pd
    import pyarrow  # noqa: F401  (both sides start with the same modules loaded)

    from core.datasets import load_table

    before = reset_peak_rss()
    t0 = time.perf_counter()
    frame = load_table(path).frame if variant == "trainboard" else pd.read_csv(path)
    elapsed = time.perf_counter() - t0
    return {"seconds": elapsed, "rows": len(frame), "columns": frame.shape[1], "import_rss_mb": before,
            "peak_rss_mb": peak_rss_since_reset_mb(), "frame_mb": float(frame.memory_usage(deep=True).sum()) / 2**20}


def images_child(source: str, variant: str) -> dict[str, Any]:
    """Child task: decode every image of a zip, Trainboard's way or with a plain Pillow loop."""
    import numpy as np

    from core.images import load_images

    if variant == "trainboard":
        t0 = time.perf_counter()
        data = load_images(source)
        elapsed = time.perf_counter() - t0
        return {"seconds": elapsed, "images": len(data.images), "shape": list(data.images.shape[1:])}
    reference = load_images(source)  # only for the output size and channels the plain loop must match
    size, channels = reference.image_size, reference.channels
    del reference
    t0 = time.perf_counter()
    array = _pillow_loop(source, size, channels)
    elapsed = time.perf_counter() - t0
    return {"seconds": elapsed, "images": len(array), "shape": list(np.asarray(array).shape[1:])}


def _pillow_loop(source: str, size: int, channels: int):
    """Every PNG in the zip → mode L/RGB → size×size → one uint8 N×C×H×W array."""
    import io
    import zipfile

    import numpy as np
    from PIL import Image

    mode = "L" if channels == 1 else "RGB"
    out = []
    with zipfile.ZipFile(source) as archive:
        for name in sorted(archive.namelist()):
            if not name.lower().endswith((".png", ".jpg", ".jpeg")):
                continue
            with Image.open(io.BytesIO(archive.read(name))) as image:
                pixels = np.asarray(image.convert(mode).resize((size, size), Image.Resampling.BILINEAR))
            out.append(pixels[None] if channels == 1 else pixels.transpose(2, 0, 1))
    return np.stack(out)


def run(cfg: Config) -> Section:
    section = Section(
        "4. Loading",
        "CSV: `core.datasets.load_table` vs plain `pandas.read_csv(path)` (defaults), synthetic tables of 21 "
        "columns (18 numeric with 4 decimals, 2 categorical, 1 yes/no target). Memory: the child's peak RSS "
        "during the read minus its RSS just before (the high-water mark is reset after importing the same "
        "modules: pandas, pyarrow, core.datasets). "
        "Each read in a fresh process, repeats interleaved.")
    table = Table(["rows", "file MB", "pandas s", "Trainboard s", "time ratio", "result", "rows/s Trainboard",
                   "pandas MB", "Trainboard MB", "memory ratio", "result"],
                  title=f"Tables (targets: time and memory within {TARGET}× of pandas)")
    section.tables.append(table)
    for n_rows, repeats in cfg.csv_sizes.items():
        made = run_child("data:make", n_rows=n_rows, fmt="csv").data
        log(f"loading: CSV {n_rows:,} rows × {repeats}")
        details: dict[str, list[dict]] = {"pandas": [], "trainboard": []}

        def measure(variant: str, _repeat: int, path=made["path"], details=details) -> float:
            data = run_child("loading:table_child", path=path, variant=variant).data
            details[variant].append(data)
            return data["seconds"]

        times = interleaved(["pandas", "trainboard"], repeats, measure)
        memory = {v: [d["peak_rss_mb"] - d["import_rss_mb"] for d in ds] for v, ds in details.items()}
        time_ratio, memory_ratio = ratios(times["trainboard"], times["pandas"]), ratios(memory["trainboard"],
                                                                                         memory["pandas"])
        table.add(f"{n_rows:,}", f"{made['bytes'] / 2**20:.0f}", Spread.of(times["pandas"]).text(),
                  Spread.of(times["trainboard"]).text(), time_ratio.text(3),
                  section.judge(f"CSV read time at {n_rows:,} rows", time_ratio, TARGET),
                  f"{n_rows / Spread.of(times['trainboard']).median:,.0f}", Spread.of(memory["pandas"]).text(0),
                  Spread.of(memory["trainboard"]).text(0), memory_ratio.text(2),
                  section.judge(f"CSV read memory at {n_rows:,} rows", memory_ratio, TARGET))
        frame_mb = {v: ds[0]["frame_mb"] for v, ds in details.items()}
        section.notes.append(f"{n_rows:,} rows: the frame itself holds {frame_mb['pandas']:.0f} MB (pandas) and "
                             f"{frame_mb['trainboard']:.0f} MB (Trainboard).")
    images = Table(["zip", "images", "size", "Pillow loop s", "Trainboard s", "images/s Trainboard", "ratio"],
                   title="Images (no target: the plain Pillow loop is a reference)",
                   note="Trainboard's loader also checks every name, size and class folder, and guards "
                        "against decompression bombs.")
    section.tables.append(images)
    for name in ("digits", "shapes"):
        log(f"loading: {name}.zip")
        details = {"pillow": [], "trainboard": []}

        def measure_images(variant: str, _repeat: int, name=name, details=details) -> float:
            data = run_child("loading:images_child", source=f"sample_data/{name}.zip", variant=variant).data
            details[variant].append(data)
            return data["seconds"]

        times = interleaved(["pillow", "trainboard"], cfg.repeats, measure_images)
        first = details["trainboard"][0]
        images.add(f"{name}.zip", first["images"], "×".join(map(str, first["shape"])),
                   Spread.of(times["pillow"]).text(3), Spread.of(times["trainboard"]).text(3),
                   f"{first['images'] / Spread.of(times['trainboard']).median:,.0f}",
                   ratios(times["trainboard"], times["pillow"]).text(2))
    return section
