"""Image folders and zips → one uint8 array N×C×H×W, decoded once and safely (ARCHITECTURE.md, "The flow").

A source is a folder with one sub-folder per class, a zip of one (as a path, bytes or an
uploaded file), or the browser's folder upload as ``(relative name, bytes)`` pairs. Archives
are read member by member in memory, never extracted; sizes are counted while decompressing,
never trusted from headers; Pillow opens only a short list of formats under a pixel limit.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import threading
import warnings
import zipfile
import zlib
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps

from core import limits as settings
from core.errors import DataError
from core.types import ImageData, LoadReport

#: Pillow plugins allowed to parse untrusted bytes (MPO is how Pillow names many phone JPEGs).
IMAGE_FORMATS = ("PNG", "JPEG", "MPO", "BMP", "GIF", "WEBP", "TIFF")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
ARCHIVE_SUFFIXES = frozenset({".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar"})
IGNORED_FILES = frozenset({"thumbs.db", "desktop.ini", "__macosx"})
#: Square sizes the loader picks from when none is asked for.
STANDARD_SIZES = (32, 64, 96)
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_WIDE_GRAY_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_CHUNK = 1 << 20

# Why a file was skipped (counted per reason in the load report).
NOT_AN_IMAGE = "not an image file"
NESTED_ARCHIVE = "an archive inside the upload (not opened)"
OUTSIDE_CLASS = "not inside a class folder"
UNPACK_FAILED = "cannot be unpacked (damaged, encrypted or unusual compression)"
UNREADABLE = "damaged or unreadable image"
IS_LINK = "a link (not followed)"


@dataclass(frozen=True)
class ImageLimits:
    """Caps that keep a hostile or accidental upload from exhausting memory or time
    (``max_files`` and ``max_total_bytes`` default to the ``core.limits`` settings: ``image_limits()``)."""

    max_files: int = settings.IMAGES.default
    max_file_bytes: int = 20 * 1024**2
    max_total_bytes: int = settings.IMAGES_MB.default * 1024**2
    max_pixels: int = 40_000_000
    max_array_bytes: int = 1_500_000_000

    @property
    def too_big_reason(self) -> str:
        return f"larger than {_megabytes(self.max_file_bytes)} unpacked"

    @property
    def too_many_pixels_reason(self) -> str:
        return f"more than {self.max_pixels / 1e6:g} million pixels"


def image_limits() -> ImageLimits:
    """The limits in force now: the defaults, with the file count and total size from their settings."""
    return ImageLimits(max_files=settings.IMAGES.value(), max_total_bytes=settings.IMAGES_MB.value() * 1024**2)


#: What an image upload may be (suffixes without the dot, for the upload widgets); a zip's largest
#: size is ``core.limits.IMAGES_MB``.
IMAGE_UPLOAD_TYPES = tuple(sorted(s.lstrip(".") for s in IMAGE_SUFFIXES))


@dataclass(frozen=True)
class _Entry:
    """One file of the source: its relative name and how to open it for reading."""

    name: str
    open: Callable[[], IO[bytes]]


@dataclass(frozen=True)
class _Probe:
    """An image whose header has been read (Pillow opens lazily); pixels are decoded later."""

    name: str
    label: str  # class name ("" when unlabelled)
    image: Image.Image
    size: tuple[int, int]  # width, height as stored (before any EXIF rotation)
    mode: str = ""  # Pillow mode as stored ("L", "RGB", "RGBA", "P", …)


class _Budget:
    """Counts bytes as they are decompressed and stops the whole load past the total cap."""

    def __init__(self, limits: ImageLimits) -> None:
        self.limits = limits
        self.total = 0

    def read(self, stream: IO[bytes]) -> bytes | None:
        """All of ``stream`` in chunks; None when the file passes the per-file cap."""
        parts, size = [], 0
        while chunk := stream.read(min(_CHUNK, self.limits.max_file_bytes + 1 - size)):
            size += len(chunk)
            self.total += len(chunk)
            if self.total > self.limits.max_total_bytes:
                raise DataError(f"The images add up to more than {_megabytes(self.limits.max_total_bytes)} once "
                                f"unpacked, the limit ({settings.IMAGES_MB.setting}). Use fewer or smaller images "
                                "(for example a sample of each class).")
            if size > self.limits.max_file_bytes:
                return None
            parts.append(chunk)
        return b"".join(parts)


# --------------------------------------------------------------------------------------------
# Public functions


def load_images(source: Any, name: str | None = None, *, image_size: int | None = None,
                limits: ImageLimits | None = None, channels: int | None = None,
                prefer_size: int | None = None) -> ImageData:
    """Decode a labelled image set (one folder per class) into an ``ImageData``.

    ``source``: a folder path, a zip path, zip bytes or a binary file-like (an uploaded file),
    or a list of ``(relative name, bytes)`` pairs (the browser's folder upload). ``image_size``
    and ``channels`` (1 or 3) force the output shape; otherwise both are chosen from the data
    (``prefer_size``: the side a model would rather read, where the pictures hold it: ``choose_size``).
    Raises ``DataError`` with a message for people when the set cannot be used.
    """
    limits = limits or image_limits()
    with ExitStack() as stack:
        entries, skipped, shown = _entries(source, name, limits, stack)
        images = _class_entries(entries, skipped, shown)
        probes = _probe_all(images, _Budget(limits), limits, skipped)
        class_names = _class_order({cls for _, cls, _ in images})
        array, kept = _decode(probes, image_size, channels, limits, skipped, shown, prefer_size)
    _check_classes(class_names, Counter(p.label for p in kept), shown, skipped)
    index = {c: i for i, c in enumerate(class_names)}
    labels = np.fromiter((index[p.label] for p in kept), dtype=np.int64, count=len(kept))
    return ImageData(images=array, labels=labels, class_names=tuple(class_names),
                     paths=tuple(p.name for p in kept), load=_report(shown, array, kept, skipped),
                     skipped=tuple(skipped), sizes=tuple(p.size for p in kept), modes=tuple(p.mode for p in kept))


def load_unlabelled_images(source: Any, name: str | None = None, *, image_size: int, channels: int,
                           limits: ImageLimits | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Images to predict on (any folder layout, no classes) at a model's size and channels.

    Returns the uint8 array N×C×S×S and the files' names; unreadable files are left out.
    """
    limits = limits or image_limits()
    with ExitStack() as stack:
        entries, skipped, shown = _entries(source, name, limits, stack)
        images = [(e.name, "", e) for e in _image_entries(entries, skipped)]
        probes = _probe_all(images, _Budget(limits), limits, skipped)
        array, kept = _decode(probes, image_size, channels, limits, skipped, shown)
    if not kept:
        raise DataError(_no_images_message(shown, skipped))
    return array, tuple(p.name for p in kept)


def is_image_source(path_or_name: str | os.PathLike[str]) -> bool:
    """True for a folder (which should hold one folder per class) or a .zip name: the CLI's dispatch."""
    path = Path(path_or_name)
    return path.suffix.lower() == ".zip" or path.is_dir()


def class_counts(data: ImageData) -> dict[str, int]:
    """Images per class, in class order."""
    counts = np.bincount(data.labels, minlength=len(data.class_names))
    return {name: int(n) for name, n in zip(data.class_names, counts, strict=True)}


_CACHE: OrderedDict[tuple[Any, ...], ImageData] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_ENTRIES = 4


def load_images_cached(source: Any, name: str | None = None, *, image_size: int | None = None,
                       limits: ImageLimits | None = None, channels: int | None = None) -> ImageData:
    """``load_images`` behind a small in-process LRU keyed by the source's content.

    Bytes and uploads are keyed by their sha256; paths by the names, sizes and modification
    times of their files, so an edited folder is decoded again. Callers must not modify the
    returned arrays: hits share them.
    """
    if not isinstance(source, (str, os.PathLike, list, tuple)):
        name = name or _source_name(source, None)
        source = _as_bytes(source)
    limits = limits or image_limits()
    key = (_content_key(source), name, image_size, limits, channels)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    data = load_images(source, name, image_size=image_size, limits=limits, channels=channels)
    with _CACHE_LOCK:
        _CACHE[key] = data
        while len(_CACHE) > _CACHE_ENTRIES:
            _CACHE.popitem(last=False)
    return data


# --------------------------------------------------------------------------------------------
# Sources → entries (names checked, nothing read yet)


def _entries(source: Any, name: str | None, limits: ImageLimits,
             stack: ExitStack) -> tuple[list[_Entry], list[tuple[str, str]], str]:
    """The source's files as entries, the files already skipped, and the source's display name."""
    shown = _source_name(source, name)
    if isinstance(source, (list, tuple)):
        return _upload_entries(source, limits), [], shown
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            entries, skipped = _folder_entries(path, limits)
            return entries, skipped, shown
        if not path.is_file():
            raise DataError(f"'{path}' was not found. Give the path of a folder of class folders or of a zip file.")
        if path.suffix.lower() in IMAGE_SUFFIXES:  # one picture (to predict on)
            return [_Entry(path.name, lambda: open(path, "rb"))], [], shown
        return _zip_entries(_open_zip(path, shown, stack), limits), [], shown
    if PurePosixPath(shown).suffix.lower() in IMAGE_SUFFIXES:
        data = _as_bytes(source)
        return [_Entry(shown, lambda: io.BytesIO(data))], [], shown
    stream = source if isinstance(source, io.IOBase) and source.seekable() else io.BytesIO(_as_bytes(source))
    stream.seek(0)
    return _zip_entries(_open_zip(stream, shown, stack), limits), [], shown


def _open_zip(file: Path | IO[bytes], shown: str, stack: ExitStack) -> zipfile.ZipFile:
    try:
        return stack.enter_context(zipfile.ZipFile(file))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise DataError(f"'{shown}' is not a readable zip file. Zip the folder of class folders again "
                        "(or load the folder itself) and try once more.") from None


def _zip_entries(archive: zipfile.ZipFile, limits: ImageLimits) -> list[_Entry]:
    """The archive's files; refuses the whole archive for unsafe names, links or too many members."""
    infos = archive.infolist()
    _check_count(len(infos), limits)
    entries = []
    for info in infos:
        safe_member_name(info.filename)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise DataError(f"The zip contains a link ('{info.filename}'), which is not allowed. "
                            "Zip the real files instead (for example without zip's -y option).")
        if not info.is_dir():
            entries.append(_Entry(info.filename, lambda info=info: archive.open(info)))
    return entries


def _folder_entries(root: Path, limits: ImageLimits) -> tuple[list[_Entry], list[tuple[str, str]]]:
    """Every file under ``root``; links are skipped, never followed; hidden folders are not walked."""
    entries, skipped = [], []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not _is_ignored([d]))
        for file in sorted(files):
            path = Path(folder, file)
            relative = path.relative_to(root).as_posix()
            if path.is_symlink():
                skipped.append((relative, IS_LINK))
            else:
                entries.append(_Entry(relative, lambda path=path: open(path, "rb")))
        _check_count(len(entries) + len(skipped), limits)
    return entries, skipped


def _upload_entries(items: Sequence[Any], limits: ImageLimits) -> list[_Entry]:
    """Entries from ``(name, bytes)`` pairs or uploaded-file objects (``.name`` + ``.getvalue()``)."""
    _check_count(len(items), limits)
    entries = []
    for item in items:
        name, data = _upload_item(item)
        safe_member_name(name)
        entries.append(_Entry(name, lambda data=data: io.BytesIO(data)))
    return entries


_DRIVE = re.compile(r"^[A-Za-z]:")


def safe_member_name(name: str) -> str:
    """``name`` as a plain relative path ("cats/1.png"); refuses (``DataError``) a name that would
    point outside its folder if anything ever extracted it. The one check for every upload."""
    if name.startswith(("/", "\\")) or _DRIVE.match(name) or ".." in _parts(name) or "\x00" in name:
        raise DataError(f"The upload contains an unsafe file name ('{name}') that points outside its folder. "
                        "Create the zip again from a plain folder of class folders.")
    return "/".join(_parts(name))


def _check_count(n: int, limits: ImageLimits) -> None:
    if n > limits.max_files:
        raise DataError(f"The upload holds more than {limits.max_files:,} files, the limit "
                        f"({settings.IMAGES.setting}). Use fewer images (for example a sample of each class).")


def _parts(name: str) -> list[str]:
    """Path parts of a member name; backslashes count as separators (zips made on Windows)."""
    return [p for p in re.split(r"[/\\]", name) if p not in ("", ".")]


# --------------------------------------------------------------------------------------------
# Entries → images with a class


def _is_ignored(parts: list[str]) -> bool:
    """System clutter that is silently left out: macOS resource forks, dotfiles, Thumbs.db."""
    return any(p.startswith(".") or p.lower() in IGNORED_FILES for p in parts)


def _image_entries(entries: Iterable[_Entry], skipped: list[tuple[str, str]]) -> list[_Entry]:
    """Entries that look like images by name; archives and other files are skipped with a reason."""
    images = []
    for entry in entries:
        parts = _parts(entry.name)
        if not parts or _is_ignored(parts):
            continue
        suffix = PurePosixPath(parts[-1]).suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            images.append(entry)
        else:
            skipped.append((entry.name, NESTED_ARCHIVE if suffix in ARCHIVE_SUFFIXES else NOT_AN_IMAGE))
    return images


def _class_entries(entries: list[_Entry], skipped: list[tuple[str, str]],
                   shown: str) -> list[tuple[str, str, _Entry]]:
    """``(name, class, entry)`` for each image in a class folder, the class folders being found
    at the top or under a chain of single top-level folders (``digits/0/x.png``)."""
    images = _image_entries(entries, skipped)
    if not images:
        raise DataError(_no_images_message(shown, skipped))
    parts = [_parts(e.name) for e in images]
    depth = 0
    while len({p[depth] for p in parts if len(p) > depth + 1}) == 1 and any(len(p) > depth + 2 for p in parts):
        depth += 1
    classified = []
    for entry, p in zip(images, parts, strict=True):
        if len(p) - depth >= 2:
            classified.append((entry.name, p[depth], entry))
        else:
            skipped.append((entry.name, OUTSIDE_CLASS))
    if not classified:
        raise DataError(f"The images in '{shown}' are not in class folders. Put each class's images in a "
                        "folder named after the class (for example cats/ and dogs/), then load the folder "
                        "or a zip of it.")
    return classified


def _class_order(names: set[str]) -> list[str]:
    """Numbers in numeric order ("2" before "10"), other names alphabetically."""
    if all(n.isdigit() for n in names):
        return sorted(names, key=lambda n: (int(n), n))
    return sorted(names, key=lambda n: (n.casefold(), n))


def _check_classes(class_names: list[str], counts: Counter[str], shown: str,
                   skipped: list[tuple[str, str]]) -> None:
    if not counts:
        raise DataError(_no_images_message(shown, skipped))
    if len(class_names) < 2:
        raise DataError(f"Only one class folder was found ('{class_names[0]}'). Add a folder for each class "
                        "the model should tell apart: at least two.")
    small = [c for c in class_names if counts[c] < 2]
    if small:
        listed = ", ".join(f"'{c}' ({counts[c]})" for c in small[:5])
        raise DataError(f"Some classes have fewer than 2 readable images: {listed}. Add more images to them "
                        "(dozens per class work far better) or remove those folders.")


def _no_images_message(shown: str, skipped: list[tuple[str, str]]) -> str:
    why = f" Skipped: {_skip_summary(skipped)}." if skipped else ""
    return (f"No readable images were found in '{shown}'.{why} Use PNG, JPEG, BMP, GIF, WEBP or TIFF "
            "files.")


# --------------------------------------------------------------------------------------------
# Decoding


def _probe_all(images: list[tuple[str, str, _Entry]], budget: _Budget, limits: ImageLimits,
               skipped: list[tuple[str, str]]) -> list[_Probe]:
    """Read each file (capped) and parse its header; bad files are skipped with a reason."""
    probes = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        for name, label, entry in sorted(images, key=lambda item: item[0]):
            try:
                with entry.open() as stream:
                    data = budget.read(stream)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError):
                skipped.append((name, UNPACK_FAILED))
                continue
            if data is None:
                skipped.append((name, limits.too_big_reason))
                continue
            image, why = _open_image(data, limits)
            if image is None:
                skipped.append((name, why))
            else:
                probes.append(_Probe(name, label, image, image.size, image.mode))
    return probes


def _open_image(data: bytes, limits: ImageLimits) -> tuple[Image.Image | None, str]:
    """Parse the header with the allowed plugins only and check the pixel count before decoding."""
    try:
        image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None, limits.too_many_pixels_reason
    except Exception:  # Pillow raises many exception types on malformed input; any means "unreadable"
        return None, UNREADABLE
    width, height = image.size
    if width * height > limits.max_pixels:
        return None, limits.too_many_pixels_reason
    if width < 1 or height < 1:
        return None, UNREADABLE
    return image, ""


def _decode(probes: list[_Probe], image_size: int | None, channels: int | None, limits: ImageLimits,
            skipped: list[tuple[str, str]], shown: str, prefer_size: int | None = None
            ) -> tuple[np.ndarray, list[_Probe]]:
    """Decode every probed image into one preallocated uint8 array N×C×S×S."""
    channels = channels or (1 if all(p.image.mode in GRAY_MODES for p in probes) else 3)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, not {channels}")
    size = image_size or choose_size([min(p.size) for p in probes], channels, limits, prefer_size)
    if len(probes) * channels * size * size > limits.max_array_bytes:
        raise DataError(f"'{shown}' is too large to hold in memory at {size}×{size} px. "
                        "Use fewer images or a smaller image size.")
    array = np.empty((len(probes), channels, size, size), dtype=np.uint8)
    kept = []
    for probe in probes:
        try:
            array[len(kept)] = _pixels(probe.image, size, channels)
        except Exception:  # truncated or corrupt data only shows while decoding; skip, never crash
            skipped.append((probe.name, UNREADABLE))
            continue
        finally:
            probe.image.close()
        kept.append(probe)
    return (array if len(kept) == len(probes) else array[:len(kept)].copy()), kept


def choose_size(short_sides: Sequence[int], channels: int, limits: ImageLimits | None = None,
                prefer: int | None = None) -> int:
    """The side a set of pictures is loaded at: the largest standard size that enlarges the typical
    picture by at most 25%, within memory. ``prefer``: the side a model reads pictures at (the
    pretrained network's input), loaded instead where the pictures hold that much detail — else at
    their own typical size (in steps of 8 px: enlarging them adds nothing the model cannot do
    itself) — and the array fits in memory (else the standard size)."""
    limits = limits or image_limits()
    own = _standard_size(short_sides, channels, limits)
    if not prefer or not short_sides:
        return own
    typical = float(np.median(short_sides))
    top = min(int(prefer), max(STANDARD_SIZES[0], int(typical) // 8 * 8))
    if top <= own:
        return min(own, int(prefer))
    return top if len(short_sides) * channels * top * top <= limits.max_array_bytes else own


def _standard_size(short_sides: Sequence[int], channels: int, limits: ImageLimits) -> int:
    if not short_sides:
        return STANDARD_SIZES[0]
    typical = float(np.median(short_sides))
    fitting = [s for s in STANDARD_SIZES if s <= typical * 1.25] or [STANDARD_SIZES[0]]
    for size in reversed(fitting):
        if len(short_sides) * channels * size * size <= limits.max_array_bytes:
            return size
    return STANDARD_SIZES[0]


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Square uint8 pictures N×C×S×S at another side, resampled as the loader resamples files (bicubic):
    a sample read for one model at the size another reads it at (``core.probe``)."""
    if images.shape[-1] == size:
        return images
    out = np.empty((len(images), images.shape[1], size, size), dtype=np.uint8)
    for i, picture in enumerate(images):
        pil = Image.fromarray(picture[0] if picture.shape[0] == 1 else picture.transpose(1, 2, 0))
        pixels = np.asarray(pil.resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8)
        out[i] = pixels[None] if picture.shape[0] == 1 else pixels.transpose(2, 0, 1)
    return out


def _pixels(image: Image.Image, size: int, channels: int) -> np.ndarray:
    """One image as uint8 C×S×S: upright (EXIF), flattened onto white, centre-cropped, resized."""
    mode = "L" if channels == 1 else "RGB"
    if image.format in ("JPEG", "MPO"):
        image.draft(mode, (size, size))  # JPEG decodes straight at a reduced scale: far faster for photos
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block: keep the pixels as stored (bad pixels fail just below)
        pass
    image = _flatten(image, mode)
    # Centre-crop rather than pad: padding adds borders whose width depends on each image's aspect
    # ratio (a shortcut a model can learn) and wastes pixels; subjects are usually centred.
    image = ImageOps.fit(image, (size, size), method=Image.Resampling.BICUBIC)
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def _flatten(image: Image.Image, mode: str) -> Image.Image:
    """Convert to ``mode`` ("L" or "RGB"): transparency onto white, 16-bit/float scaled to 0–255."""
    if image.mode == mode:
        return image
    if image.mode in _WIDE_GRAY_MODES:
        values = np.asarray(image, dtype=np.float32)
        high = float(values.max()) if values.size else 0.0
        scaled = values * (255.0 / high) if high > 255 else values
        return Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8)).convert(mode)
    if image.mode in ("RGBA", "LA", "La", "PA", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert(mode)
    return image.convert(mode)


def _report(shown: str, array: np.ndarray, kept: list[_Probe], skipped: list[tuple[str, str]]) -> LoadReport:
    notes = []
    if skipped:
        notes.append(f"{len(skipped)} file{'s' if len(skipped) != 1 else ''} skipped: {_skip_summary(skipped)}.")
    not_square = sum(1 for p in kept if p.size[0] != p.size[1])
    if not_square:
        notes.append(f"{not_square} image{'s are' if not_square != 1 else ' is'} not square: "
                     "the centre of each was cropped to a square.")
    return LoadReport(source=shown, format="images", n_rows=int(array.shape[0]), n_columns=0, warnings=tuple(notes))


def _skip_summary(skipped: list[tuple[str, str]]) -> str:
    """'3 not an image file, 1 damaged or unreadable image' (most common reason first)."""
    return ", ".join(f"{n} {why}" for why, n in Counter(why for _, why in skipped).most_common())


# --------------------------------------------------------------------------------------------
# Small helpers


def _source_name(source: Any, name: str | None) -> str:
    if name:
        return name
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name or str(source)
    if isinstance(source, (list, tuple)):
        return "uploaded folder"
    return str(getattr(source, "name", None) or "upload")


def _upload_item(item: Any) -> tuple[str, bytes]:
    """``(name, bytes)`` from a pair or from an uploaded-file object."""
    if isinstance(item, (tuple, list)):
        name, data = item
        return str(name), bytes(data)
    return str(item.name), item.getvalue()


def _as_bytes(source: Any) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if hasattr(source, "getvalue"):
        return source.getvalue()
    if hasattr(source, "read"):
        if hasattr(source, "seek"):
            source.seek(0)
        return source.read()
    raise TypeError(f"Cannot load images from a {type(source).__name__}")


def _content_key(source: Any) -> str:
    """A sha256 that changes whenever the source's content (or, for paths, any file's stat) does."""
    digest = hashlib.sha256()
    if isinstance(source, bytes):
        digest.update(source)
    elif isinstance(source, (list, tuple)):
        for item in source:
            name, data = _upload_item(item)
            digest.update(f"{name}\0{len(data)}\0".encode())
            digest.update(data)
    else:
        root = Path(source).resolve()
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            info = path.stat()
            digest.update(f"{path}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _megabytes(n: int) -> str:
    return f"{n / 1024**3:g} GB" if n >= 1024**3 else f"{n / 1024**2:g} MB"
