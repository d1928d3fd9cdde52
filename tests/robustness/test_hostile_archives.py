"""Hostile archives and images, uploaded as the Data page does (saved into the session's private
folder, then loaded): refused or skipped with their reason, in bounded time and memory, and nothing
written outside that folder."""

from __future__ import annotations

import io
import resource
import stat
import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import pytest
from PIL import Image

from core.errors import DataError
from core.images import NESTED_ARCHIVE, UNREADABLE, load_images, load_images_cached
from tests.robustness.conftest import written_outside
from tests.robustness.fuzz import time_bound
from ui import state

#: Generous bounds (a shared 2-core machine): far above what these take, far below a hang or a blow-up.
SECONDS = 60
PEAK_BYTES = 300 * 2**20


def png(value: int = 128, size: tuple[int, int] = (16, 16)) -> bytes:
    out = io.BytesIO()
    Image.new("L", size, value).save(out, format="PNG")
    return out.getvalue()


def jpeg(size: tuple[int, int] = (64, 64)) -> bytes:
    out = io.BytesIO()
    Image.effect_noise(size, 60).convert("RGB").save(out, format="JPEG", quality=90)
    return out.getvalue()


def huge_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A real, valid 20,000 × 20,000 black-and-white PNG (400 million pixels) of about 60 KB."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    packer = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + 1 bit per pixel
    pixels = b"".join(packer.compress(row * 1000) for _ in range(height // 1000)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def classes(n: int = 3) -> dict[str, bytes]:
    files = {f"cats/{i}.png": png(20 + i) for i in range(n)}
    files.update({f"dogs/{i}.png": png(230 - i) for i in range(n)})
    return files


def zipped(files: dict[str | zipfile.ZipInfo, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def link(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def upload(name: str, payload: bytes, traced: bool = True):
    """As the Data page: write into the session's folder, load from there; bounded time and memory.
    Memory is traced allocations' peak, or (``traced=False``, where tracing makes it 9× slower) the
    growth of the process's peak resident size."""
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if traced:
        tracemalloc.start()
    try:
        with time_bound(SECONDS):
            path = state.save_upload(name, payload)
            return load_images_cached(path, name=name)
    finally:
        if traced:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
        assert peak < PEAK_BYTES, f"{name}: {peak / 2**20:.0f} MB at peak"


@pytest.mark.parametrize("member", ["../x", "/x", "C:\\x", "..\\x", "cats/../../x", "C:/x"])
def test_zip_slip_names_refuse_the_whole_archive(sandbox, member):
    with pytest.raises(DataError, match="unsafe file name") as refused:
        upload("slip.zip", zipped({**classes(), member: b"owned"}))
    assert member in str(refused.value)
    assert written_outside(sandbox) == []
    assert not Path("/x").exists() or Path("/x").stat().st_size != 5


def test_a_symlink_member_refuses_the_archive(sandbox):
    with pytest.raises(DataError, match="link"):
        upload("links.zip", zipped({**classes(), link("cats/passwd.png", "/etc/passwd"): b"/etc/passwd"}))
    assert written_outside(sandbox) == []


def test_nested_zips_are_skipped_with_their_reason(sandbox):
    inner = zipped({"cats/9.png": png(), "../../x": b"owned"})
    data = upload("nested.zip", zipped({**classes(), "cats/more.zip": inner, "dogs/deeper.zip": zipped({"a.zip": inner})}))
    assert dict(data.skipped) == {"cats/more.zip": NESTED_ARCHIVE, "dogs/deeper.zip": NESTED_ARCHIVE}
    assert len(data.labels) == 6
    assert written_outside(sandbox) == []


def test_a_20000_by_20000_png_is_skipped_before_decoding(sandbox):
    data = upload("huge.zip", zipped({**classes(), "cats/huge.png": huge_png()}))
    assert dict(data.skipped) == {"cats/huge.png": "more than 40 million pixels"}
    assert written_outside(sandbox) == []


def test_a_truncated_jpeg_and_a_text_file_named_png_are_skipped(sandbox):
    whole = jpeg()
    data = upload("broken.zip", zipped({**classes(), "cats/cut.jpg": whole[: len(whole) // 2],
                                        "dogs/notes.png": b"these are my notes, not a picture\n"}))
    assert dict(data.skipped) == {"cats/cut.jpg": UNREADABLE, "dogs/notes.png": UNREADABLE}
    assert "2 files skipped: 2 damaged or unreadable image" in data.load.warnings[0]
    assert written_outside(sandbox) == []


def test_a_zip_of_100000_tiny_members_is_refused_naming_the_limit(sandbox):
    members = {f"cats/{i}.png": b"x" for i in range(100_000)}
    with pytest.raises(DataError, match="more than 50,000 files.*TRAINBOARD_MAX_IMAGES"):
        upload("many.zip", zipped(members, zipfile.ZIP_STORED), traced=False)
    assert written_outside(sandbox) == []


def test_a_zip_bomb_stops_at_the_unpacked_total_naming_the_limit(sandbox, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_MAX_IMAGES_MB", "8")
    bomb = {f"cats/{i}.png": b"\x00" * (4 * 2**20) for i in range(4)}  # 16 MB unpacked, 16 KB zipped
    with pytest.raises(DataError, match="more than 8 MB once unpacked.*TRAINBOARD_MAX_IMAGES_MB"):
        upload("bomb.zip", zipped({**classes(), **bomb}))
    assert written_outside(sandbox) == []


def test_a_folder_upload_with_unsafe_names_is_refused_before_anything_is_written(sandbox):
    with pytest.raises(DataError, match="unsafe file name"):
        load_images([("cats/1.png", png()), ("../../x.png", png())])
    assert written_outside(sandbox) == []


def test_upload_names_cannot_leave_the_session_folder(sandbox):
    for name in ("../../x.csv", "/etc/passwd", "C:\\Windows\\x.csv", "..", "a/../../b.csv", "\x00.csv"):
        path = state.save_upload(name, b"a,b\n1,2\n")
        assert state.session().upload_dir in path.parents, name
    assert written_outside(sandbox) == []
