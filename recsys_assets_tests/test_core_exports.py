"""Which file is the current export (the drop folder's rule, shared by the sensor and the schedule), and the
limits on what an export may make the loader do (links out of the drop folder, gzip bombs, retries)."""

import errno
import gzip
import os
import re
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from recsys_assets.core.exports import current_export, refused_exports
from recsys_assets.core.ingest import ExportError, ExportTooLargeError, GzipLimits, MovieDataLoader, no_retry_can_fix
from recsys_assets.core.ingest.framing import open_export
from recsys_assets.core.sample_data import SampleSpec, write_sample_export


def _arrives_after(path: Path, earlier: Path) -> None:
    """Make sure ``path``'s change time is past ``earlier``'s (the kernel's clock for it ticks every few ms)."""
    while path.stat().st_ctime_ns <= earlier.stat().st_ctime_ns:
        time.sleep(0.002)
        os.chmod(path, path.stat().st_mode)  # sets the change time to now, nothing else


def test_drop_folder_newest_complete_file_is_the_current_export(tmp_path):
    drop = tmp_path / "exports"
    drop.mkdir()
    fixed = tmp_path / "fixed.csv"
    assert current_export(fixed, drop) == fixed
    older = drop / "2026-01.csv"
    older.write_text("x")
    os.utime(older, ns=(1, 1_000_000_000))
    newer = drop / "2026-02.csv"
    newer.write_text("y")
    _arrives_after(newer, older)
    (drop / "2026-03.csv.part").write_text("z")  # still being copied
    (drop / ".2026-03.csv.tmp").write_text("z")
    assert current_export(fixed, drop) == newer


def test_a_file_dated_in_the_future_does_not_shadow_the_exports_that_arrive_after_it(tmp_path):
    drop = tmp_path / "exports"
    drop.mkdir()
    future = drop / "2026-01.csv"
    future.write_text("x")
    ahead = time.time_ns() + 10 * 365 * 86_400 * 10**9
    os.utime(future, ns=(ahead, ahead))  # touch -d 2036-...: the modification time is the writer's choice
    assert current_export(tmp_path / "fixed.csv", drop) == future
    later = drop / "2026-02.csv"
    later.write_text("y")
    _arrives_after(later, future)
    assert current_export(tmp_path / "fixed.csv", drop) == later


def test_a_file_copied_with_its_old_date_is_current_when_it_arrives_last(tmp_path):
    drop = tmp_path / "exports"
    drop.mkdir()
    current = drop / "2026-05.csv"
    current.write_text("x")
    backfill = tmp_path / "archive" / "2020-01.csv"
    backfill.parent.mkdir()
    backfill.write_text("y")
    os.utime(backfill, ns=(1, 1_000_000_000))  # dated 1970
    copied = Path(shutil.copy2(backfill, drop / "2020-01.csv"))  # cp -p: the old date comes along
    _arrives_after(copied, current)
    assert copied.stat().st_mtime_ns < current.stat().st_mtime_ns
    assert current_export(tmp_path / "fixed.csv", drop) == copied


def test_a_link_out_of_the_drop_folder_is_not_followed_and_is_named(tmp_path):
    """Whoever can write into the drop folder must not make the pipeline read any file it can read."""
    drop = tmp_path / "exports"
    drop.mkdir()
    secret = tmp_path / "elsewhere" / "secret.csv"
    secret.parent.mkdir()
    secret.write_text("userId,movieId,rating,timestamp\n1,1,5,1\n")
    inside = drop / "2026-01.csv"
    inside.write_text("x")
    os.utime(inside, ns=(1, 1_000_000_000))  # older than the link's target
    (drop / "2026-02.csv").symlink_to(secret)
    (drop / "2026-03.csv.gz").symlink_to(Path("..") / "elsewhere" / "secret.csv")  # a relative way out
    (drop / "folder.csv").symlink_to(secret.parent)  # a link to a folder outside
    assert current_export(tmp_path / "fixed.csv", drop) == inside
    refused = refused_exports(drop)
    assert len(refused) == 3 and all("outside the drop folder: not followed" in line for line in refused)
    assert any(str(drop / "2026-02.csv") in line and str(secret) in line for line in refused)
    inside.unlink()  # nothing left but links out: the fixed path, never the links
    assert current_export(tmp_path / "fixed.csv", drop) == tmp_path / "fixed.csv"


def test_links_that_stay_inside_the_drop_folder_are_followed(tmp_path):
    real = tmp_path / "real_exports"
    real.mkdir()
    (real / "archive").mkdir()
    target = real / "archive" / "2026-05.csv"
    target.write_text("x")
    (real / "latest.csv").symlink_to(target)
    drop = tmp_path / "exports"
    drop.symlink_to(real)  # the drop folder itself may be a link (a mounted share)
    assert current_export(tmp_path / "fixed.csv", drop) == drop / "latest.csv"
    assert refused_exports(drop) == []
    loop = real / "loop.csv"
    loop.symlink_to(loop)  # a link loop leads nowhere: neither an export nor an error
    assert current_export(tmp_path / "fixed.csv", drop) == drop / "latest.csv"


def test_gzip_bombs_stop_at_the_decompressed_size_cap(tmp_path):
    """A real bomb: 64 MiB of one long line of zeros (and one of valid rows) in well under a MiB on disk."""
    zeros = tmp_path / "zeros.csv.gz"
    with gzip.open(zeros, "wb", compresslevel=9) as f:
        f.write(b"userId,movieId,rating,timestamp\n")
        for _ in range(64):
            f.write(bytes(1 << 20))
    rows = tmp_path / "rows.csv.gz"
    with gzip.open(rows, "wb", compresslevel=9) as f:
        f.write(b"userId,movieId,rating,timestamp\n" + b"1,1,4.0,0\n" * 3_000_000)
    assert zeros.stat().st_size < 1 << 20 and rows.stat().st_size < 1 << 20
    limits = GzipLimits(max_bytes=8 << 20)
    for bomb in (zeros, rows):
        with pytest.raises(ExportTooLargeError, match=r"more than 8,388,608 bytes.*RECSYS_GZIP_MAX_BYTES"):
            MovieDataLoader(bomb, tmp_path / f"{bomb.name}.ckpt.json", gzip_limits=limits, block_bytes=1 << 20).load()
    assert issubclass(ExportTooLargeError, ExportError)  # an ExportError: the pipeline never retries it


def test_gzip_exports_stop_at_the_row_cap_and_plain_files_are_not_capped(tiny_export, tmp_path):
    gz = tmp_path / "ratings.csv.gz"
    gz.write_bytes(gzip.compress(tiny_export.read_bytes()))
    with pytest.raises(ExportTooLargeError, match=r"more than 1,000 rows.*RECSYS_GZIP_MAX_ROWS"):
        MovieDataLoader(gz, None, 100, 500, gzip_limits=GzipLimits(max_rows=1_000), block_bytes=4_096).load()
    limits = GzipLimits(max_bytes=1 << 20, max_rows=4_000)  # exactly at the caps: loaded
    assert len(MovieDataLoader(gz, None, gzip_limits=limits).load()) == 4_000
    small = GzipLimits(max_bytes=1_000, max_rows=10)
    assert len(MovieDataLoader(tiny_export, None, gzip_limits=small).load()) == 4_000  # caps are for gzip


def test_a_gzip_bomb_stops_early_at_the_ratio_cap_and_a_real_export_loads(tmp_path):
    """16 MB of identical rows in a few KiB: stopped after about a MiB, long before the size and row caps."""
    bomb = tmp_path / "bomb.csv.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as f:
        f.write(b"userId,movieId,rating,timestamp\n" + b"1,1,4.0,0\n" * 1_600_000)
    limits = GzipLimits(max_bytes=1 << 30, max_rows=10**9, max_ratio=50)
    with pytest.raises(ExportTooLargeError, match=r"expands more than 50 times .*RECSYS_GZIP_MAX_RATIO") as caught:
        MovieDataLoader(bomb, tmp_path / "bomb.ckpt.json", gzip_limits=limits).load()
    decompressed = int(re.search(r"\(([\d,]+) bytes from", str(caught.value)).group(1).replace(",", ""))
    assert decompressed <= 2 << 20  # judged from the first MiB on, every MiB at most: stopped early
    assert "\n" not in str(caught.value) and no_retry_can_fix(caught.value)

    export = write_sample_export(tmp_path / "real.csv", SampleSpec(n_ratings=100_000, n_users=600, n_movies=2_000))
    real = tmp_path / "real.csv.gz"
    real.write_bytes(gzip.compress(export.read_bytes()))
    assert export.stat().st_size > 2 << 20  # long enough for the ratio to be judged (a few times over)
    loaded = MovieDataLoader(real, None, gzip_limits=GzipLimits(max_ratio=50), block_bytes=1 << 20).load()
    pd.testing.assert_frame_equal(loaded, MovieDataLoader(export, None).load())


def test_the_ratio_cap_is_checked_while_a_big_block_is_read(tmp_path):
    bomb = tmp_path / "zeros.csv.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as f:
        f.write(b"userId,movieId,rating,timestamp\n" + bytes(64 << 20))
    with open_export(bomb, GzipLimits(max_ratio=50)) as f:
        buf = bytearray(32 << 20)  # the loader's default block: the cap does not wait for all of it
        with pytest.raises(ExportTooLargeError, match="RECSYS_GZIP_MAX_RATIO"):
            f.readinto(buf)
        assert f.tell() <= 2 << 20


@pytest.mark.parametrize(
    "exc, permanent",
    [
        (ExportError("damaged"), True),
        (ValueError("RECSYS_GZIP_MAX_ROWS must be a whole number"), True),
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (OSError(errno.ELOOP, "Too many levels of symbolic links"), True),
        (PermissionError(errno.EACCES, "Permission denied"), True),
        (OSError(errno.EIO, "Input/output error"), False),
        (OSError(errno.ESTALE, "Stale file handle"), False),
        (FileNotFoundError(errno.ENOENT, "No such file or directory"), False),  # replaced while read
        (TimeoutError("the object store did not answer"), False),
        (RuntimeError("something else"), False),
    ],
)
def test_only_errors_a_retry_can_fix_are_retried(exc, permanent):
    assert no_retry_can_fix(exc) is permanent
