"""Which file is the current export (the drop folder's rule, shared by the sensor and the schedule)."""

import os

from recsys_assets.core.exports import current_export


def test_drop_folder_newest_complete_file_is_the_current_export(tmp_path):
    drop = tmp_path / "exports"
    drop.mkdir()
    fixed = tmp_path / "fixed.csv"
    assert current_export(fixed, drop) == fixed
    older = drop / "2026-01.csv"
    older.write_text("x")
    newer = drop / "2026-02.csv"
    newer.write_text("y")
    os.utime(older, ns=(1, 1_000_000_000))
    (drop / "2026-03.csv.part").write_text("z")  # still being copied
    (drop / ".2026-03.csv.tmp").write_text("z")
    assert current_export(fixed, drop) == newer
