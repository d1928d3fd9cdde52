"""Write the bundled real-photo set ``textures.zip``: brick, grass and gravel, 16 photos each.

Run from the repository root: ``python sample_data/make_photo_sample.py`` (needs
``pip install --no-deps scikit-image==0.26.0`` first: its photos are only read, never imported,
and no test needs them, so it is kept out of the requirements a fresh CI machine installs). The output is deterministic (sorted zip members with a
fixed timestamp, fixed JPEG settings), so re-running it leaves git with nothing to commit.

The photos are scikit-image's three bundled texture photographs (512×512 greyscale, each under
the Creative Commons CC0 licence; see sample_data/README.md), each cut into a 4×4 grid of
non-overlapping 128×128 tiles. No pixel is in two tiles, but the tiles of a class come from one
photograph: a validation score on this set measures telling the surfaces apart, not
generalising across cameras and scenes. It is a Teachable-Machine-sized set (3 classes × 16).
"""

from __future__ import annotations

import importlib.util
import io
import zipfile
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
TEXTURES = ("brick", "grass", "gravel")
TILE = 128
JPEG_QUALITY = 90
_ZIP_TIME = (2026, 1, 1, 0, 0, 0)


def skimage_data_dir() -> Path:
    """scikit-image's bundled data folder, found without importing scikit-image."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("scikit-image is not installed: pip install --no-deps scikit-image==0.26.0")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def tiles(photo: Image.Image, size: int = TILE) -> list[Image.Image]:
    """The photo cut into non-overlapping ``size``×``size`` tiles, row by row."""
    width, height = photo.size
    return [photo.crop((x, y, x + size, y + size))
            for y in range(0, height - size + 1, size) for x in range(0, width - size + 1, size)]


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return buffer.getvalue()


def write_zip(path: Path, by_class: dict[str, list[Image.Image]]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:  # JPEGs do not compress
        for label, images in sorted(by_class.items()):
            for i, image in enumerate(images):
                info = zipfile.ZipInfo(f"textures/{label}/{label}_{i:02d}.jpg", date_time=_ZIP_TIME)
                archive.writestr(info, jpeg_bytes(image))


def main() -> None:
    source = skimage_data_dir()
    by_class = {name: tiles(Image.open(source / f"{name}.png").convert("L")) for name in TEXTURES}
    write_zip(HERE / "textures.zip", by_class)
    print(f"textures.zip: {sum(map(len, by_class.values()))} photos, {(HERE / 'textures.zip').stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
