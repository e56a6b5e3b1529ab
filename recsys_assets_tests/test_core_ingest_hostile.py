"""Hostile inputs to the ingest (issue 14): each test failed before its fix."""

import gzip
import os

import pandas as pd
import pytest

from recsys_assets.core.cleaning import clean_rating_data
from recsys_assets.core.ingest import CheckpointStore, ExportError, MovieDataLoader, identity, read_lines
from recsys_assets.core.sample_data import SampleSpec, write_sample_export

HEADER = "userId,movieId,rating,timestamp\n"


def _errors(df: pd.DataFrame) -> dict:
    return {int(line): (e if isinstance(e, str) else None) for line, e in zip(df["line"], df["error"])}


# ------------------------------------------------------------------------- (4) exact ids
@pytest.mark.parametrize("quoted", [False, True], ids=["lenient", "quoted"])
def test_ids_above_2_to_the_53_stay_exact_next_to_a_non_numeric_field(tmp_path, quoted):
    big = 2**53 + 1
    path = tmp_path / "export.csv"
    first = f'"{big}","10","4.0","100"' if quoted else f"{big},10,4.0,100"
    path.write_text(HEADER + f"{first}\n{big + 2},11,abc,200\n{2**53},12,3.0,300\n")
    df = MovieDataLoader(path, tmp_path / "ckpt.json").load()
    assert df["user_id"].tolist() == [big, big + 2, 2**53]  # not all 2**53
    cleaned = clean_rating_data(df, max_rejected_fraction=None)
    assert sorted(cleaned.ratings["user_id"].tolist()) == [2**53, big]  # two users, nothing merged


def test_ids_beyond_int64_are_quarantined_as_invalid_id(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(HEADER + f"1,10,4.0,100\n{2**63},10,4.0,100\n2,{-(2**63) - 1},3.0,1\n3,10,x,1\n")
    df = MovieDataLoader(path, None).load()
    assert _errors(df) == {
        2: None,
        3: "invalid_id:user_id does not fit int64",
        4: "invalid_id:movie_id does not fit int64",
        5: "non_numeric:rating",
    }
    result = clean_rating_data(df, max_rejected_fraction=None)
    assert result.reason_counts == {"invalid_id": 2, "non_numeric": 1}
    # the same rule for a table handed to cleaning directly, as text or as floats
    text = pd.DataFrame({"userId": ["1", str(2**63)], "movieId": ["10", "10"], "rating": ["4", "4"]})
    floats = pd.DataFrame({"userId": [1.0, 1e19], "movieId": [10, 10], "rating": [4.0, 4.0]})
    for frame in (text, floats):
        assert clean_rating_data(frame, max_rejected_fraction=None).reason_counts == {"invalid_id": 1}


# --------------------------------------------------------------- (5) bad bytes and lone CRs
def test_non_utf8_bytes_and_lone_crs_quarantine_their_line_and_the_load_goes_on(tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes(
        HEADER.encode()
        + b"1,10,4.0,100\n"
        + b"2,1\xff0,3.0,200\n"  # not UTF-8, in a numeric field
        + b"3,10,2.0,300,caf\xe9\n"  # not UTF-8, in an extra field (too many fields as well)
        + b"4,1\r0,3.5,400\n"  # a lone CR that keeps the field count
        + b"5,10,1.0,500\r\n"  # CRLF is fine
        + b"6,x,1.0,600\n"  # non-numeric: the lenient path, which used to crash on the bytes above
    )
    loader = MovieDataLoader(path, tmp_path / "ckpt.json", chunk_size=1, checkpoint_interval=10)
    df = loader.load()
    assert _errors(df) == {
        2: None,
        3: "invalid_encoding:byte 0xff at column 4 is not UTF-8",
        4: "invalid_encoding:byte 0xe9 at column 17 is not UTF-8",
        5: "malformed_line:carriage return inside the line",
        6: None,
        7: "non_numeric:movie_id",
    }
    assert df.loc[df["line"] == 3, "raw"].item() == "2,1\ufffd0,3.0,200"
    result = clean_rating_data(df, max_rejected_fraction=None)
    assert result.reason_counts == {"invalid_encoding": 2, "malformed_line": 1, "non_numeric": 1}


def test_non_utf8_in_an_unused_column_is_quarantined_on_the_fast_path_too(tmp_path):
    rows = [f"{u},{m},3.0,{u * m},title{u}" for u in range(1, 40) for m in range(1, 30)]
    rows[500] = rows[500] + "\xe9"
    path = tmp_path / "export.csv"
    path.write_bytes(("userId,movieId,rating,timestamp,title\n" + "\n".join(rows) + "\n").encode("latin-1"))
    clean_fast = MovieDataLoader(path, tmp_path / "a.json", 10, 100).load()  # many clean segments, one bad
    exact = MovieDataLoader(path, tmp_path / "b.json", 1, 1).load()  # one line per segment
    bad = clean_fast[clean_fast["error"].notna()]
    assert bad["line"].tolist() == [502] and bad["error"].str.startswith("invalid_encoding").all()
    pd.testing.assert_frame_equal(clean_fast, exact)


# ----------------------------------------------------------------- (7) lock, then discard
def test_a_discard_never_pulls_the_checkpoint_from_under_a_newer_load(tiny_export, tmp_path):
    ckpt = tmp_path / "ckpt.json"
    finished = MovieDataLoader(tiny_export, ckpt, 100, 500)  # a load that has just finished
    calls = []

    def discard_in_the_gap(rows, done, total):
        if not calls:  # the finished load discards while the newer one is writing its parts
            calls.append(finished.discard_checkpoint())

    newer = MovieDataLoader(tiny_export, ckpt, 100, 500, on_checkpoint=discard_in_the_gap)
    assert len(newer.load()) == 4_000  # used to fail with FileNotFoundError on its next part
    assert calls == [False] and ckpt.exists()
    assert finished.discard_checkpoint() is True and not ckpt.exists() and not finished.parts_dir.exists()


def test_discard_happens_under_the_lock(tiny_export, tmp_path, monkeypatch):
    held = []
    real = CheckpointStore.discard
    monkeypatch.setattr(CheckpointStore, "discard", lambda self: (held.append(self.is_locked), real(self)))
    ckpt = tmp_path / "ckpt.json"
    loader = MovieDataLoader(tiny_export, ckpt, 100, 1_000)
    loader.load()
    ckpt.write_text("{garbage")  # the next load discards a corrupt checkpoint
    MovieDataLoader(tiny_export, ckpt, 100, 1_000).load()
    loader.discard_checkpoint()
    assert held == [True, True]


# ------------------------------------------------------- (6) linear reads, a maximum line length
def test_a_huge_first_line_is_read_in_linear_time(tmp_path):
    import time

    path = tmp_path / "junk.csv"
    path.write_bytes(b"x" * (48 << 20) + b"\n1,2,3\n")  # used to take ~O(n^2): tens of seconds
    started = time.perf_counter()
    with pytest.raises(ExportError, match="cannot recognise a separator"):
        MovieDataLoader(path, None, max_line_bytes=None).load()
    assert time.perf_counter() - started < 5


def test_a_too_long_header_fails_clearly_without_reading_it_all(tmp_path, monkeypatch):
    path = tmp_path / "junk.csv"
    path.write_bytes(b"userId,movieId,rating," + b"x" * (8 << 20) + b"\n1,2,3,4\n")
    with pytest.raises(ExportError, match=r"line 1 is longer than max_line_bytes \(1,048,576 bytes\)") as err:
        MovieDataLoader(path, tmp_path / "ckpt.json").load()
    assert str(path) in str(err.value) and not (tmp_path / "ckpt.json").exists()


def _long_line_export(tmp_path, junk_bytes: int, *, at_end: bool = False):
    clean = write_sample_export(tmp_path / "clean.csv", SampleSpec(n_ratings=3_000, n_users=50, n_movies=300, seed=4))
    lines = clean.read_bytes().split(b"\n")
    junk = b"7,8,3.0," + b"9" * junk_bytes  # would even parse, were it not too long
    path = tmp_path / "long.csv"
    if at_end:
        path.write_bytes(b"\n".join(lines[:-1]) + b"\n" + junk)
    else:
        path.write_bytes(b"\n".join(lines[:1_001]) + b"\n" + junk + b"\n" + b"\n".join(lines[1_001:]))
    return path


@pytest.mark.parametrize("block_bytes", [32 << 20, 64 << 10, 4_096])
@pytest.mark.parametrize("at_end", [False, True], ids=["middle", "last"])
def test_a_too_long_data_line_is_quarantined_with_its_number_and_the_load_goes_on(tmp_path, block_bytes, at_end):
    path = _long_line_export(tmp_path, 3 << 20, at_end=at_end)
    limit = 1 << 20
    loader = MovieDataLoader(path, tmp_path / "ckpt.json", 100, 500, block_bytes=block_bytes)
    df = loader.load()
    assert len(df) == 3_001
    junk_line = 3_002 if at_end else 1_002
    bad = df[df["error"].notna()]
    assert bad["line"].tolist() == [junk_line]
    assert bad["error"].item() == f"malformed_line:longer than {limit} bytes"
    assert bad["raw"].item().startswith("7,8,3.0,999") and len(bad["raw"].item()) < 1_100  # never the whole line
    good = df[df["error"].isna()]
    expected = pd.read_csv(tmp_path / "clean.csv")
    assert good["user_id"].tolist() == expected["userId"].tolist()
    assert good["line"].tolist() == [n for n in range(2, 3_003) if n != junk_line]
    assert loader.stats.malformed_rows == 1

    # a load interrupted after the cut line resumes at the right byte offset
    ckpt = tmp_path / "resume.json"
    seen = []

    def stop_after_the_junk(rows, done, total):
        seen.append(rows)
        if rows >= junk_line - 1:  # the part holding the junk line is written
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        MovieDataLoader(path, ckpt, 100, 500, block_bytes=block_bytes, on_checkpoint=stop_after_the_junk).load()
    resumed = MovieDataLoader(path, ckpt, 100, 500, block_bytes=block_bytes)
    pd.testing.assert_frame_equal(resumed.load(), df)
    assert resumed.stats.resumed_rows >= junk_line - 1


def test_max_line_bytes_is_configurable(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(HEADER + "1,10,4.0,100\n2,10,4.0," + "1" * 40 + "\n3,10,4.0,300\n")
    assert MovieDataLoader(path, None).load()["error"].tolist()[1] == "non_numeric:timestamp"  # 1 MiB: fine
    df = MovieDataLoader(path, None, max_line_bytes=35).load()
    assert _errors(df) == {2: None, 3: "malformed_line:longer than 35 bytes", 4: None}


def test_read_lines_skips_long_unwanted_lines_without_keeping_them(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(b"h\n" + b"x" * 100_000 + b"\nwanted\nlast")
    assert read_lines(path, [3, 4], block_bytes=1_000) == {3: "wanted", 4: "last"}


def test_a_huge_data_line_is_never_held_whole(tmp_path):
    import tracemalloc

    path = tmp_path / "export.csv"
    with open(path, "wb") as f:
        f.write(HEADER.encode() + b"1,10,4.0,100\n")
        f.write(b"2,10,4.0,")
        for _ in range(64):
            f.write(b"9" * (1 << 20))
        f.write(b"\n3,10,4.0,300\n")
    tracemalloc.start()
    try:
        df = MovieDataLoader(path, tmp_path / "ckpt.json", block_bytes=1 << 20).load()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert _errors(df) == {2: None, 3: "malformed_line:longer than 1048576 bytes", 4: None}
    assert peak < 24 << 20  # a 64 MiB line, read through a bounded buffer


# ------------------------------------------------------------------- (10) gzip exports, identity
def test_a_gzip_export_is_read_and_resumes(tiny_export, tmp_path):
    gz = tmp_path / "ratings.csv.gz"
    gz.write_bytes(gzip.compress(tiny_export.read_bytes()))
    expected = MovieDataLoader(tiny_export, None).load()
    pd.testing.assert_frame_equal(MovieDataLoader(gz, None).load(), expected)

    ckpt = tmp_path / "ckpt.json"
    progress = []

    def stop(rows, done, total):
        progress.append((done, total))
        if rows >= 2_000:
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        MovieDataLoader(gz, ckpt, 100, 500, block_bytes=4_096, on_checkpoint=stop).load()
    assert all(done <= total == gz.stat().st_size for done, total in progress)  # progress in file bytes
    resumed = MovieDataLoader(gz, ckpt, 100, 500, block_bytes=4_096)
    pd.testing.assert_frame_equal(resumed.load(), expected)
    assert resumed.stats.resumed_rows == 2_000 and resumed.stats.read_rows == 2_000


def test_a_damaged_gzip_export_fails_clearly(tiny_export, tmp_path):
    gz = tmp_path / "ratings.csv.gz"
    gz.write_bytes(gzip.compress(tiny_export.read_bytes())[:5_000])
    with pytest.raises(ExportError, match="damaged or truncated"):
        MovieDataLoader(gz, None).load()


def test_an_in_place_edit_keeping_size_and_mtime_is_noticed_in_a_sampled_block(tmp_path):
    export = write_sample_export(
        tmp_path / "big.csv", SampleSpec(n_ratings=150_000, n_users=500, n_movies=3_000, seed=9)
    )
    ckpt = tmp_path / "ckpt.json"
    with pytest.raises(RuntimeError):
        MovieDataLoader(
            export, ckpt, 250, 50_000, on_checkpoint=lambda *a: (_ for _ in ()).throw(RuntimeError())
        ).load()
    st = export.stat()
    data = bytearray(export.read_bytes())
    i = identity._sample_offsets(st.st_size)[0] + 100  # inside a sampled block, in the checkpointed rows
    while not chr(data[i]).isdigit():
        i += 1
    data[i] = ord("7") if data[i] != ord("7") else ord("8")  # one digit of one rating line, same size
    export.write_bytes(bytes(data))
    os.utime(export, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert export.stat().st_size == st.st_size and export.stat().st_mtime_ns == st.st_mtime_ns
    loader = MovieDataLoader(export, ckpt, 250, 50_000)
    loader.load()
    assert loader.stats.resumed_rows == 0 and "changed" in loader.stats.restart_reason


def test_a_gzip_export_in_the_drop_folder_counts_as_an_export(tmp_path):
    from recsys_assets.core.exports import is_complete_name

    assert is_complete_name(tmp_path / "ratings.csv.gz") and is_complete_name(tmp_path / "u.data.gz")
    assert not is_complete_name(tmp_path / "ratings.csv.gz.part")
