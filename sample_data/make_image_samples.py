"""Write the bundled image sets: ``digits`` and ``shapes``, each as a folder and a zip.

Run from the repository root: ``python sample_data/make_image_samples.py``. The output is
deterministic (seeded drawing, sorted zip members with a fixed timestamp), so re-running it
leaves git with nothing to commit.

- digits: scikit-learn's bundled handwritten digits (8×8, 1,797 images, 10 classes; BSD
  licence), enlarged to 32×32 grayscale PNG with bicubic resampling.
- shapes: generated filled circles, squares and triangles (48×48 RGB PNG, 240 per class) with
  random colours, sizes, positions, rotations, backgrounds and a little pixel noise.
"""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from sklearn.datasets import load_digits

HERE = Path(__file__).resolve().parent
DIGITS_SIZE = 32
SHAPES_SIZE = 48
SHAPES_PER_CLASS = 240
SUPERSAMPLE = 4  # draw at 4× and shrink, for smooth edges
_ZIP_TIME = (2026, 1, 1, 0, 0, 0)


def digit_images() -> dict[str, list[Image.Image]]:
    """scikit-learn's digits as 32×32 grayscale images (dark ink on white, like a scan), by class."""
    digits = load_digits()
    by_class: dict[str, list[Image.Image]] = {str(c): [] for c in range(10)}
    for pixels, target in zip(digits.images, digits.target, strict=True):
        ink = np.round(pixels * (255 / 16)).astype(np.uint8)
        small = Image.fromarray(255 - ink, mode="L")
        by_class[str(target)].append(small.resize((DIGITS_SIZE, DIGITS_SIZE), Image.Resampling.BICUBIC))
    return by_class


def shape_images(seed: int = 0) -> dict[str, list[Image.Image]]:
    """Circles, squares and triangles with varied colour, size, place, rotation and background."""
    rng = np.random.default_rng(seed)
    return {shape: [_draw_shape(shape, rng) for _ in range(SHAPES_PER_CLASS)]
            for shape in ("circle", "square", "triangle")}


def _draw_shape(shape: str, rng: np.random.Generator) -> Image.Image:
    big = SHAPES_SIZE * SUPERSAMPLE
    background, colour = _contrasting_colours(rng)
    canvas = Image.new("RGB", (big, big), background)
    radius = rng.uniform(0.2, 0.38) * big
    margin = radius * 1.05
    centre = tuple(rng.uniform(margin, big - margin, size=2))
    draw = ImageDraw.Draw(canvas)
    if shape == "circle":
        x, y = centre
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
    else:
        sides = 4 if shape == "square" else 3
        draw.regular_polygon((*centre, radius), sides, rotation=float(rng.uniform(0, 360)), fill=colour)
    image = canvas.resize((SHAPES_SIZE, SHAPES_SIZE), Image.Resampling.LANCZOS)
    noise = rng.normal(0, 6, size=(SHAPES_SIZE, SHAPES_SIZE, 3))
    return Image.fromarray(np.clip(np.asarray(image) + noise, 0, 255).astype(np.uint8), mode="RGB")


def _contrasting_colours(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A background and a shape colour that differ clearly in brightness or hue."""
    while True:
        background, colour = rng.integers(0, 256, size=(2, 3))
        if np.abs(background - colour).sum() > 180:
            return tuple(int(v) for v in background), tuple(int(v) for v in colour)


def write_set(name: str, by_class: dict[str, list[Image.Image]], root: Path = HERE) -> tuple[int, int]:
    """Write ``root/name/<class>/<n>.png`` and ``root/name.zip`` (one top-level folder ``name/``).

    Returns the folder's and the zip's sizes in bytes.
    """
    folder = root / name
    if folder.exists():
        shutil.rmtree(folder)
    files: list[tuple[str, bytes]] = []
    for label, images in by_class.items():
        (folder / label).mkdir(parents=True)
        for i, image in enumerate(images):
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", optimize=True)
            relative = f"{name}/{label}/{i:04d}.png"
            (root / relative).write_bytes(buffer.getvalue())
            files.append((relative, buffer.getvalue()))
    archive = root / f"{name}.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for relative, data in sorted(files):
            info = zipfile.ZipInfo(relative, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return sum(len(data) for _, data in files), archive.stat().st_size


def main() -> None:
    for name, by_class in (("digits", digit_images()), ("shapes", shape_images())):
        folder_bytes, zip_bytes = write_set(name, by_class)
        count = sum(len(images) for images in by_class.values())
        print(f"{name}: {count} images in {len(by_class)} classes; folder {folder_bytes / 1e6:.2f} MB, "
              f"zip {zip_bytes / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
