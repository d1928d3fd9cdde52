"""Section 11: the pretrained backbone against the CNN trained from scratch, on the image samples.

For each image sample (the real-photo ``textures.zip``, then ``digits.zip`` and ``shapes.zip``)
one whole job (``run_job``, file to saved run, in a fresh process with torch on 2 threads) per
model: the automatic pick, ``cnn``, ``embed+linear`` and ``finetune`` — validation accuracy and
seconds, the side the pictures were loaded at (the pretrained network's input size where they hold
it, the CNN's own small one) and the seconds of the quick probe when the look was not clear-cut.
Then the backbone's embedding throughput (pictures per second) at the CPU input size,
and what a second pass over the same pictures costs (remembered features).

The issue's 1,000-real-photo target cannot be measured: no set of about 1,000 real photos in two
classes under a clear licence ships in a package this project can install offline (see
sample_data/README.md); ``textures.zip`` (3 × 16 CC0 photos) is the Teachable-Machine-sized case.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, Config, Section, Table, log, run_child

THREADS = 2
MODELS = ("auto", "cnn", "embed+linear", "finetune")
#: Targets from issue 14: a Teachable-Machine-sized set trains in ≤ 30 s; glyphs keep the CNN at ≥ 0.97.
SMALL_SET_S = 30.0
DIGITS_ACCURACY = 0.97
PHOTO_ACCURACY = 0.85
EXPECTED_PICK = {"textures.zip": "embed+linear", "digits.zip": "cnn", "shapes.zip": "cnn"}
THROUGHPUT_IMAGES = 96


def job_child(source: str, runs_dir: str, model: str) -> dict[str, Any]:
    """Child task: one image job with ``model``; accuracy, the model delivered, seconds."""
    import torch

    torch.set_num_threads(THREADS)
    import core.models.pretrained  # noqa: F401  (a worker has its imports loaded)
    from core.pipeline import JobSpec, run_job
    from core.planner import Overrides
    from core.run_record import load_manifest

    t0 = time.perf_counter()
    run_dir = run_job(JobSpec(source=source, runs_dir=runs_dir, overrides=Overrides(model=model)))
    wall = time.perf_counter() - t0
    manifest = load_manifest(run_dir)
    return {"seconds": wall, "fit_s": manifest["timings"]["fit_s"], "key": manifest["model"]["key"],
            "model": manifest["model"]["name"], "accuracy": manifest["metrics"].get("accuracy"),
            "n_rows": manifest["data"].get("n_rows"), "side": manifest["data"].get("image_size"),
            "probe_s": manifest["timings"].get("probe_s")}


def throughput_child(source: str) -> dict[str, Any]:
    """Child task: pictures per second through the frozen backbone at the CPU input size (after
    one warm-up batch), and the seconds a second pass over them takes (remembered features)."""
    import numpy as np
    import torch

    torch.set_num_threads(THREADS)
    from core.images import load_images
    from core.models import backbone as bb
    from core.models.pretrained_family import CPU_INPUT

    data = load_images(source, image_size=CPU_INPUT)  # as a pretrained run loads them (stored at 128 px)
    images = np.resize(data.images, (THROUGHPUT_IMAGES, *data.images.shape[1:]))
    images = images.copy()
    images[:, 0, 0, 0] = np.arange(THROUGHPUT_IMAGES, dtype=np.uint8)  # each one distinct, so none is remembered
    t0 = time.perf_counter()
    bb.backbone(CPU_INPUT)
    load_s = time.perf_counter() - t0
    bb.embed(images[:bb.EMBED_BATCH] ^ 1, CPU_INPUT)  # warm-up, other pictures
    t0 = time.perf_counter()
    bb.embed(images, CPU_INPUT)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    bb.embed(images, CPU_INPUT)
    second = time.perf_counter() - t0
    return {"per_second": THROUGHPUT_IMAGES / first, "second_pass_s": second, "load_s": load_s,
            "input_size": CPU_INPUT, "stored": int(data.image_size)}


def run(cfg: Config, shared: dict[str, Any]) -> Section:
    section = Section(
        "11. Pretrained backbone vs the CNN on the image samples",
        "Each image sample trained by one whole job (`run_job`, file to saved run, fresh process, torch on "
        f"{THREADS} threads) per model: the automatic pick, the CNN from scratch, frozen EfficientNet-Lite0 features "
        "+ logistic regression, and fine-tuning of the backbone's last blocks. Accuracy is on the run's own "
        "validation split (20%). `textures.zip` is real photos (3 classes × 16, CC0); the issue's set of about "
        "1,000 real photos is not available offline, so its ≥ 0.85 / ≤ 3 min target is not measured here.")
    samples = ("textures.zip",) if cfg.quick else ("textures.zip", "digits.zip", "shapes.zip")
    runs_dir = str(cfg.work / "runs-pretrained")
    table = Table(["sample", "model", "delivered", "loaded px", "accuracy", "job s", "fit s", "probe s", "verdict"],
                  title="Accuracy and seconds per model")
    for name in samples:
        source = str(ROOT / "sample_data" / name)
        for model in MODELS:
            log(f"pretrained: {name} with {model}")
            result = run_child("pretrained:job_child", timeout=1800, source=source, runs_dir=runs_dir, model=model).data
            probe = "—" if result.get("probe_s") is None else f"{result['probe_s']:.1f}"
            table.add(name, model, result["model"], result.get("side") or "—", _number(result["accuracy"]),
                      f"{result['seconds']:.1f}", f"{result['fit_s']:.1f}", probe, _verdicts(section, name, model, result))
    section.tables.append(table)
    log("pretrained: embedding throughput")
    speed = run_child("pretrained:throughput_child", source=str(ROOT / "sample_data" / "textures.zip")).data
    rate = Table(["input px", "pictures / s", "second pass (remembered) s", "backbone load s"],
                 title="Embedding throughput on the CPU")
    rate.add(speed["input_size"], f"{speed['per_second']:.1f}", f"{speed['second_pass_s']:.3f}", f"{speed['load_s']:.2f}")
    section.tables.append(rate)
    section.notes.append(f"Throughput: {THROUGHPUT_IMAGES} distinct pictures (stored at {speed['stored']} px, resized "
                         f"to {speed['input_size']} px), after one warm-up batch; the second pass reads them from memory.")
    return section


def _verdicts(section: Section, name: str, model: str, result: dict[str, Any]) -> str:
    """The issue's targets that apply to this line; the rest are reported without a verdict."""
    parts = []
    if model == "auto":
        expected = EXPECTED_PICK.get(name)
        picked = result["key"] == expected
        parts.append("picks " + result["key"] + ("" if picked else f" (expected {expected})"))
        if not picked:
            section.misses.append(f"auto on {name}: picked {result['key']}, expected {expected}")
        if name == "digits.zip":
            parts.append(section.judge("digits, auto: accuracy", result["accuracy"], DIGITS_ACCURACY, True))
        if name == "textures.zip":
            parts.append(section.judge("textures (3 × 16 photos), auto: job seconds", result["seconds"], SMALL_SET_S))
            parts.append(section.judge("textures, auto: accuracy", result["accuracy"], PHOTO_ACCURACY, True))
    return "; ".join(parts) or "—"


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


if __name__ == "__main__":  # a quick look without the whole benchmark
    print(run(Config(quick=True, work=Path(ROOT / "bench" / "_work")), {}).markdown())
