"""The image loader: layouts, refusals of unsafe archives, skipped files, channels and sizes."""

from __future__ import annotations

import io
import stat
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import DataError
from core.images import (
    NESTED_ARCHIVE,
    NOT_AN_IMAGE,
    OUTSIDE_CLASS,
    UNPACK_FAILED,
    UNREADABLE,
    ImageLimits,
    choose_size,
    class_counts,
    is_image_source,
    load_images,
    load_images_cached,
    load_unlabelled_images,
    resize_images,
)


def png(value: int | tuple[int, ...] = 128, size: tuple[int, int] = (12, 12), mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, value).save(buffer, format="PNG")
    return buffer.getvalue()


def two_classes(prefix: str = "", n: int = 3) -> dict[str, bytes]:
    """``{name: bytes}`` for classes 'cat' (dark) and 'dog' (light), ``n`` images each."""
    files = {f"{prefix}cat/{i}.png": png(20 + i) for i in range(n)}
    files.update({f"{prefix}dog/{i}.png": png(230 - i) for i in range(n)})
    return files


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def write_folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def skip_reasons(data) -> dict[str, str]:
    return dict(data.skipped)


# ---------------------------------------------------------------------------------- layouts


def test_folder_of_class_folders(tmp_path):
    data = load_images(write_folder(tmp_path / "pets", two_classes()))
    assert data.class_names == ("cat", "dog")
    assert data.images.shape == (6, 1, 32, 32) and data.images.dtype == np.uint8
    assert class_counts(data) == {"cat": 3, "dog": 3}
    assert data.paths[0] == "cat/0.png"
    # the labels follow the files: cats are dark, dogs light
    assert data.images[data.labels == 0].mean() < 60 < 180 < data.images[data.labels == 1].mean()
    assert (data.load.format, data.load.n_rows, data.load.n_columns, data.load.source) == ("images", 6, 0, "pets")


@pytest.mark.parametrize("prefix", ["", "pets/", "pets/train/"])
def test_zip_with_or_without_top_folders(prefix):
    data = load_images(zip_bytes(two_classes(prefix)), "pets.zip")
    assert data.class_names == ("cat", "dog")
    assert len(data.labels) == 6 and data.skipped == ()


def test_zip_from_path_and_from_uploaded_file(tmp_path):
    archive = tmp_path / "pets.zip"
    archive.write_bytes(zip_bytes(two_classes("pets/")))
    from_path = load_images(archive)
    upload = io.BytesIO(archive.read_bytes())
    upload.name = "pets.zip"
    from_upload = load_images(upload)
    assert from_path.load.source == from_upload.load.source == "pets.zip"
    np.testing.assert_array_equal(from_path.images, from_upload.images)


def test_browser_folder_upload_pairs():
    pairs = [(f"digits/{c}/img_{i:03d}.png", png(10 * c + i)) for c in (3, 10, 2) for i in range(2)]
    data = load_images(pairs)
    assert data.class_names == ("2", "3", "10")  # numbers in numeric order
    assert class_counts(data) == {"2": 2, "3": 2, "10": 2}


def test_stray_top_level_files_are_skipped_not_classes():
    files = two_classes("pets/") | {"pets/cover.png": png(), "readme.png": png()}
    data = load_images(zip_bytes(files))
    assert data.class_names == ("cat", "dog")
    assert skip_reasons(data) == {"pets/cover.png": OUTSIDE_CLASS, "readme.png": OUTSIDE_CLASS}


def test_clutter_is_ignored_and_other_files_skipped_with_reasons():
    files = two_classes() | {"__MACOSX/cat/._0.png": b"junk", "cat/.DS_Store": b"x", "dog/Thumbs.db": b"x",
                             "cat/notes.txt": b"hello", "dog/more.zip": zip_bytes({"a.png": png()})}
    data = load_images(zip_bytes(files))
    assert len(data.labels) == 6
    assert skip_reasons(data) == {"cat/notes.txt": NOT_AN_IMAGE, "dog/more.zip": NESTED_ARCHIVE}
    assert any("2 files skipped" in w for w in data.load.warnings)


# ---------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("name", ["../x.png", "cat/../../x.png", "/etc/x.png", "C:/x.png", "cat\\..\\..\\x.png"])
def test_unsafe_names_refuse_the_whole_archive(name):
    with pytest.raises(DataError, match="unsafe file name"):
        load_images(zip_bytes(two_classes() | {name: png()}))


def test_unsafe_names_refused_in_folder_uploads_too():
    with pytest.raises(DataError, match="unsafe"):
        load_images([(k, v) for k, v in two_classes().items()] + [("../evil.png", png())])


def test_symlink_member_refuses_the_archive():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in two_classes().items():
            zf.writestr(name, data)
        link = zipfile.ZipInfo("cat/link.png")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(DataError, match="link"):
        load_images(buffer.getvalue())


def test_too_many_members():
    with pytest.raises(DataError, match="more than 5 files"):
        load_images(zip_bytes(two_classes(n=3)), limits=ImageLimits(max_files=5))


def test_member_over_the_file_cap_is_skipped_while_decompressing():
    bomb = b"\0" * 200_000  # compresses to a few hundred bytes
    limits = ImageLimits(max_file_bytes=50_000)
    data = load_images(zip_bytes(two_classes() | {"cat/bomb.png": bomb}), limits=limits)
    assert skip_reasons(data) == {"cat/bomb.png": limits.too_big_reason}
    assert len(data.labels) == 6


def test_header_that_understates_the_size_is_not_trusted():
    files = two_classes() | {"cat/liar.png": b"\0" * 100_000}
    archive = bytearray(zip_bytes(files))
    _patch_uncompressed_size(archive, "cat/liar.png", 100)
    data = load_images(bytes(archive))
    assert skip_reasons(data) == {"cat/liar.png": UNPACK_FAILED}
    assert len(data.labels) == 6


def _patch_uncompressed_size(archive: bytearray, name: str, size: int) -> None:
    """Rewrite a member's uncompressed size in its local header and its central-directory entry."""
    encoded = name.encode()
    local = archive.index(b"PK\x03\x04")
    while archive[local + 30:local + 30 + len(encoded)] != encoded:
        local = archive.index(b"PK\x03\x04", local + 4)
    struct.pack_into("<I", archive, local + 22, size)
    central = archive.index(b"PK\x01\x02")
    while archive[central + 46:central + 46 + len(encoded)] != encoded:
        central = archive.index(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", archive, central + 24, size)


def test_total_unpacked_size_cap_refuses():
    with pytest.raises(DataError, match="add up to more than"):
        load_images(zip_bytes(two_classes(n=3)), limits=ImageLimits(max_total_bytes=300))


def test_not_a_zip():
    with pytest.raises(DataError, match="not a readable zip"):
        load_images(b"just some text", "data.zip")


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_images(tmp_path / "nope")


# ---------------------------------------------------------------------------------- bad files


def test_corrupt_and_truncated_images_are_skipped_by_name():
    good = png(200, size=(64, 64))
    noisy = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(noisy, "PNG")
    files = two_classes() | {"cat/garbage.png": b"\x89PNG\r\n\x1a\nnot really", "dog/truncated.png":
                             noisy.getvalue()[: len(noisy.getvalue()) // 2], "dog/fine.png": good}
    data = load_images(zip_bytes(files))
    assert skip_reasons(data) == {"cat/garbage.png": UNREADABLE, "dog/truncated.png": UNREADABLE}
    assert class_counts(data) == {"cat": 3, "dog": 4}


def test_too_many_pixels_is_skipped():
    files = two_classes() | {"cat/huge.png": png(size=(100, 100))}
    limits = ImageLimits(max_pixels=5_000)
    data = load_images(zip_bytes(files), limits=limits)
    assert skip_reasons(data) == {"cat/huge.png": limits.too_many_pixels_reason}


def test_one_class_only():
    with pytest.raises(DataError, match="Only one class folder.*'cat'"):
        load_images(zip_bytes({f"cat/{i}.png": png() for i in range(3)}))


def test_class_with_one_image_is_named():
    files = two_classes() | {"bird/0.png": png()}
    with pytest.raises(DataError, match="'bird' \\(1\\)"):
        load_images(zip_bytes(files))


def test_class_whose_images_are_all_unreadable_is_named():
    files = two_classes() | {"bird/0.png": b"broken", "bird/1.png": b"broken"}
    with pytest.raises(DataError, match="'bird' \\(0\\)"):
        load_images(zip_bytes(files))


def test_no_images_at_all():
    with pytest.raises(DataError, match="No readable images.*2 not an image file"):
        load_images(zip_bytes({"cat/a.txt": b"a", "dog/b.csv": b"b"}))


def test_images_without_class_folders():
    with pytest.raises(DataError, match="folder named after the class"):
        load_images(zip_bytes({f"{i}.png": png() for i in range(4)}))


# ---------------------------------------------------------------------------------- pixels


def test_grayscale_stays_one_channel_and_colour_makes_three():
    gray = load_images(zip_bytes(two_classes()))
    assert gray.channels == 1
    mixed = load_images(zip_bytes(two_classes() | {"dog/red.png": png((255, 0, 0), mode="RGB")}))
    assert mixed.channels == 3
    red = mixed.images[mixed.paths.index("dog/red.png")]
    assert tuple(red[:, 5, 5]) == (255, 0, 0)


def test_transparency_becomes_white():
    clear = png((0, 0, 0, 0), mode="RGBA")
    data = load_images(zip_bytes(two_classes() | {"dog/clear.png": clear}))
    assert data.channels == 3
    assert (data.images[data.paths.index("dog/clear.png")] == 255).all()


@pytest.mark.parametrize(("side", "expected"), [(8, 32), (20, 32), (48, 32), (56, 64), (64, 64), (100, 96), (500, 96)])
def test_size_is_chosen_from_the_images(side, expected):
    files = {f"{c}/{i}.png": png(size=(side, side)) for c in "ab" for i in range(2)}
    assert load_images(zip_bytes(files)).image_size == expected


def test_size_can_be_forced_and_is_capped_by_memory():
    files = {f"{c}/{i}.png": png(size=(100, 100)) for c in "ab" for i in range(2)}
    assert load_images(zip_bytes(files), image_size=40).images.shape == (4, 1, 40, 40)
    assert load_images(zip_bytes(files), limits=ImageLimits(max_array_bytes=4 * 64 * 64)).image_size == 64
    with pytest.raises(DataError, match="too large"):
        load_images(zip_bytes(files), image_size=96, limits=ImageLimits(max_array_bytes=1000))


@pytest.mark.parametrize(("side", "prefer", "expected"), [
    (200, 128, 128),  # detailed pictures: at the model's side, not the loader's 96
    (300, 224, 224),
    (200, 224, 200),  # no more than the pictures hold
    (150, 224, 144),  # in steps of 8 px
    (120, 128, 120),
    (80, 128, 96),  # the standard size already holds all their detail
    (32, 128, 32),
    (200, 64, 64),  # a model reading smaller pictures gets them smaller
])
def test_a_models_preferred_side_is_loaded_where_the_pictures_hold_it(side, prefer, expected):
    assert choose_size([side] * 10, 3, prefer=prefer) == expected
    assert choose_size([side] * 10, 3) == choose_size([side] * 10, 3, prefer=None)


def test_a_preferred_side_that_does_not_fit_in_memory_falls_back_to_the_standard_one():
    roomy, tight = ImageLimits(max_array_bytes=10 * 3 * 128 * 128), ImageLimits(max_array_bytes=10 * 3 * 127 * 127)
    assert choose_size([200] * 10, 3, roomy, prefer=128) == 128
    assert choose_size([200] * 10, 3, tight, prefer=128) == 96


def test_pictures_load_at_the_larger_side_and_resize_like_the_loader():
    rng = np.random.default_rng(0)
    files = {}
    for c in "ab":
        for i in range(2):
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (160, 160), dtype=np.uint8)).save(buffer, "PNG")
            files[f"{c}/{i}.png"] = buffer.getvalue()
    data = load_images(zip_bytes(files), image_size=choose_size([160] * 4, 1, prefer=128))
    assert data.images.shape == (4, 1, 128, 128) and data.sizes == ((160, 160),) * 4
    small = resize_images(data.images, 96)
    assert small.shape == (4, 1, 96, 96) and small.dtype == np.uint8
    expected = np.asarray(Image.fromarray(data.images[0, 0]).resize((96, 96), Image.Resampling.BICUBIC))
    assert np.array_equal(small[0, 0], expected)
    assert resize_images(data.images, 128) is data.images


def test_wide_images_are_centre_cropped():
    wide = np.zeros((20, 60), dtype=np.uint8)
    wide[:, 20:40] = 255  # white centre, black sides
    buffer = io.BytesIO()
    Image.fromarray(wide).save(buffer, "PNG")
    data = load_images(zip_bytes(two_classes() | {"dog/wide.png": buffer.getvalue()}))
    assert data.images[data.paths.index("dog/wide.png")].min() > 200
    assert any("1 image is not square" in w for w in data.load.warnings)


def test_exif_orientation_is_applied():
    pixels = np.full((32, 32), 255, dtype=np.uint8)
    pixels[:, :8] = 0  # black stripe on the left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", exif=exif, quality=95)
    data = load_images(zip_bytes(two_classes() | {"dog/turned.jpg": buffer.getvalue()}))
    shown = data.images[data.paths.index("dog/turned.jpg"), 0].astype(int)
    assert shown[:8].mean() < 60 and shown[:, :8].mean() > 150  # the stripe is now along the top


# ---------------------------------------------------------------------------------- helpers


def test_is_image_source(tmp_path):
    assert is_image_source(tmp_path)
    assert is_image_source("photos.ZIP")
    assert not is_image_source(tmp_path / "table.csv")


def test_cache_returns_the_same_result_for_the_same_bytes():
    archive = zip_bytes(two_classes())
    first = load_images_cached(archive, "pets.zip")
    assert load_images_cached(io.BytesIO(archive), "pets.zip") is first
    other = load_images_cached(zip_bytes(two_classes(n=2)), "pets.zip")
    assert other is not first and len(other.labels) == 4


def test_cache_sees_a_changed_folder(tmp_path):
    root = write_folder(tmp_path, two_classes())
    first = load_images_cached(root)
    (root / "cat" / "9.png").write_bytes(png())
    assert len(load_images_cached(root).labels) == len(first.labels) + 1


def test_unlabelled_images_for_prediction():
    pairs = [("new/a.png", png(0, size=(50, 50))), ("b.png", png((0, 0, 255), mode="RGB")), ("c.txt", b"x")]
    images, names = load_unlabelled_images(pairs, image_size=32, channels=1)
    assert images.shape == (2, 1, 32, 32)
    assert names == ("b.png", "new/a.png")
    with pytest.raises(DataError, match="No readable images"):
        load_unlabelled_images([("c.txt", b"x")], image_size=32, channels=1)
