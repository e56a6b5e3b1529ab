import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from recsys_assets.core.ingest import BusyError, CheckpointStore, ExportError, MovieDataLoader
from recsys_assets.core.sample_data import SampleSpec, write_sample_export

from .conftest import REPO_ROOT


def _values(df: pd.DataFrame) -> pd.DataFrame:
    return df[["line", "user_id", "movie_id", "rating", "timestamp", "error"]].reset_index(drop=True)


def test_loads_movielens_csv_with_line_numbers(tiny_export):
    df = MovieDataLoader(tiny_export, None).load()
    source = pd.read_csv(tiny_export)
    assert len(df) == len(source) == 4_000
    assert df["line"].tolist() == list(range(2, 4_002))
    assert (df["user_id"].to_numpy() == source["userId"].to_numpy()).all()
    assert (df["movie_id"].to_numpy() == source["movieId"].to_numpy()).all()
    assert np.allclose(df["rating"].to_numpy(), source["rating"].to_numpy())
    assert df["error"].isna().all()


@pytest.mark.parametrize("chunk_size,interval", [(250, 50_000), (7, 100), (1, 10), (1000, 333)])
def test_chunking_does_not_change_the_result(tiny_export, tmp_path, chunk_size, interval):
    expected = MovieDataLoader(tiny_export, None).load()
    loader = MovieDataLoader(tiny_export, tmp_path / "ckpt.json", chunk_size, interval, block_bytes=4096)
    got = loader.load()
    pd.testing.assert_frame_equal(_values(got), _values(expected))
    assert loader.stats.checkpoints_written == -(-4_000 // loader.rows_per_checkpoint)


def test_checkpoints_on_whole_chunks():
    loader = MovieDataLoader("x.csv", "c.json", chunk_size=250, checkpoint_interval=1_100)
    assert loader.rows_per_checkpoint == 1_250


class _Interrupt(Exception):
    pass


def _stop_after(n: int, seen: list | None = None):
    """An on_checkpoint callback that records progress and interrupts the load at checkpoint ``n``."""
    seen = [] if seen is None else seen

    def callback(rows, done, total):
        seen.append(rows)
        if len(seen) == n:
            raise _Interrupt

    return callback


def test_interrupted_load_resumes_without_rereading(tiny_export, tmp_path):
    ckpt = tmp_path / "ckpt.json"
    with pytest.raises(_Interrupt):
        MovieDataLoader(tiny_export, ckpt, 100, 500, on_checkpoint=_stop_after(3)).load()
    assert json.loads(ckpt.read_text())["body"]["rows"] == 1_500

    loader = MovieDataLoader(tiny_export, ckpt, 100, 500)
    resumed = loader.load()
    assert loader.stats.resumed_rows == 1_500
    assert loader.stats.read_rows == 2_500
    pd.testing.assert_frame_equal(_values(resumed), _values(MovieDataLoader(tiny_export, None).load()))


def test_completed_checkpoint_is_reused_then_discarded(tiny_export, tmp_path):
    ckpt = tmp_path / "ckpt.json"
    MovieDataLoader(tiny_export, ckpt, 100, 1000).load()
    again = MovieDataLoader(tiny_export, ckpt, 100, 1000)
    assert len(again.load()) == 4_000
    assert again.stats.read_rows == 0 and again.stats.resumed_rows == 4_000
    again.discard_checkpoint()
    assert not ckpt.exists() and not again.parts_dir.exists()


def test_changed_source_never_resumes(tmp_path):
    export = write_sample_export(tmp_path / "a.csv", SampleSpec(n_ratings=2_000, n_users=50, n_movies=200, seed=1))
    ckpt = tmp_path / "ckpt.json"
    MovieDataLoader(export, ckpt, 100, 500).load()
    write_sample_export(export, SampleSpec(n_ratings=3_000, n_users=50, n_movies=200, seed=2))
    loader = MovieDataLoader(export, ckpt, 100, 500)
    df = loader.load()
    assert len(df) == 3_000
    assert loader.stats.resumed_rows == 0
    assert "changed" in loader.stats.restart_reason


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_text("{not json"),
        lambda p: p.write_bytes(p.read_bytes()[:40]),
        lambda p: p.write_text(p.read_text().replace('"rows": 4000', '"rows": 3999', 1)),
    ],
    ids=["garbage", "truncated", "tampered"],
)
def test_corrupt_checkpoint_starts_over(tiny_export, tmp_path, damage, caplog):
    ckpt = tmp_path / "ckpt.json"
    with pytest.raises(_Interrupt):
        MovieDataLoader(tiny_export, ckpt, 100, 500, on_checkpoint=lambda *a: (_ for _ in ()).throw(_Interrupt)).load()
    MovieDataLoader(tiny_export, ckpt, 100, 1000).load()  # complete manifest with a "rows": 1000 part
    damage(ckpt)
    loader = MovieDataLoader(tiny_export, ckpt, 100, 1000)
    with caplog.at_level("WARNING"):
        df = loader.load()
    assert len(df) == 4_000 and loader.stats.resumed_rows == 0
    assert "corrupt" in loader.stats.restart_reason
    assert "not resumed" in caplog.text


def test_missing_part_starts_over(tiny_export, tmp_path):
    ckpt = tmp_path / "ckpt.json"
    loader = MovieDataLoader(tiny_export, ckpt, 100, 1000)
    loader.load()
    next(iter(sorted(loader.parts_dir.iterdir()))).unlink()
    again = MovieDataLoader(tiny_export, ckpt, 100, 1000)
    assert len(again.load()) == 4_000
    assert "unreadable" in again.stats.restart_reason


def test_checkpoint_is_json_not_pickle(tiny_export, tmp_path):
    ckpt = tmp_path / "checkpoint.pkl"  # the document's name still works as a path
    MovieDataLoader(tiny_export, ckpt, 100, 1000).load()
    doc = json.loads(ckpt.read_text())
    assert set(doc) == {"body", "checksum"}
    parts = sorted(MovieDataLoader(tiny_export, ckpt).parts_dir.iterdir())
    assert parts and all(p.suffix == ".arrow" for p in parts)
    for p in parts:  # Arrow IPC files: magic bytes at both ends, nothing pickled
        data = p.read_bytes()
        assert data[:6] == b"ARROW1" and data[-6:] == b"ARROW1"


def test_second_loader_on_same_checkpoint_is_refused(tiny_export, tmp_path):
    ckpt = tmp_path / "ckpt.json"
    with CheckpointStore(ckpt).locked():
        with pytest.raises(BusyError, match="in use"):
            MovieDataLoader(tiny_export, ckpt).load()


@pytest.mark.parametrize(
    "content,message",
    [
        (None, "not found"),
        (b"", "empty"),
        (b"userId,movieId,rating,timestamp\n", "no data rows"),
        (b"userId,movieId,rating,timestamp\r\n\r\n", "no data rows"),
        (b"alpha,beta,gamma\n1,2,3\n", "no recognizable column"),
        (b"\n1,2,3\n", "line 1 is empty"),
    ],
)
def test_unloadable_exports_fail_clearly(tmp_path, content, message):
    path = tmp_path / "export.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ExportError, match=message) as err:
        MovieDataLoader(path, tmp_path / "ckpt.json").load()
    assert str(path) in str(err.value)


ROWS = [(1, 10, 4.0, 100), (1, 20, 3.5, 200), (2, 10, 5.0, 300)]


def _expected():
    return pd.DataFrame(ROWS, columns=["user_id", "movie_id", "rating", "timestamp"])


@pytest.mark.parametrize(
    "name,text",
    [
        ("crlf.csv", "userId,movieId,rating,timestamp\r\n1,10,4.0,100\r\n1,20,3.5,200\r\n2,10,5.0,300\r\n"),
        ("bom.csv", "\ufeffuserId,movieId,rating,timestamp\n1,10,4.0,100\n1,20,3.5,200\n2,10,5.0,300\n"),
        (
            "quoted.csv",
            '"userId","movieId","rating","timestamp"\n"1","10","4.0","100"\n1,20,3.5,200\n"2",10,"5.0",300\n',
        ),
        ("ratings.dat", "1::10::4::100\n1::20::3.5::200\n2::10::5::300\n"),
        ("u.data", "1\t10\t4\t100\n1\t20\t3.5\t200\n2\t10\t5\t300\n"),
        ("no_newline.csv", "userId,movieId,rating,timestamp\n1,10,4.0,100\n1,20,3.5,200\n2,10,5.0,300"),
        ("reordered.csv", "rating,timestamp,movieId,userId,extra\n4.0,100,10,1,x\n3.5,200,20,1,y\n5.0,300,10,2,z\n"),
        ("aliases.csv", "user_id,item_id,score,time\n1,10,4.0,100\n1,20,3.5,200\n2,10,5.0,300\n"),
    ],
)
def test_formats(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    df = MovieDataLoader(path, tmp_path / "ckpt.json", chunk_size=1, checkpoint_interval=2).load()
    assert df["error"].isna().all(), df
    pd.testing.assert_frame_equal(
        df[["user_id", "movie_id", "rating", "timestamp"]].reset_index(drop=True), _expected(), check_dtype=False
    )


def test_column_map_for_other_headers(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("who,what,stars,when\n1,10,4.0,100\n1,20,3.5,200\n2,10,5.0,300\n")
    with pytest.raises(ExportError, match="column_map"):
        MovieDataLoader(path).load()
    df = MovieDataLoader(path, column_map={"who": "user_id", "what": "movie_id", "when": "timestamp"}).load()
    pd.testing.assert_frame_equal(df[["user_id", "movie_id", "rating", "timestamp"]], _expected(), check_dtype=False)


def test_messy_lines_are_kept_with_reasons(tmp_path):
    path = tmp_path / "messy.csv"
    path.write_bytes(
        b"userId,movieId,rating,timestamp\n"
        b"1,10,4.0,100\n"
        b"1,20\n"  # malformed
        b"\n"  # blank
        b"x,20,3.0,200\n"  # non-numeric id
        b"2,,3.0,200\n"  # missing field
        b"2,30,abc,200\n"  # non-numeric rating
        b"2,40,nan,200\n"  # NaN rating: parsed, cleaning rejects it
        b"3,10,5.0,300,9\n"  # too many fields
        b"3,11,2.0,3"  # half-written last line that still parses
    )
    loader = MovieDataLoader(path, tmp_path / "ckpt.json", chunk_size=2, checkpoint_interval=3)
    df = loader.load()
    assert df["line"].tolist() == [2, 3, 5, 6, 7, 8, 9, 10]
    errors = {line: (e if isinstance(e, str) else None) for line, e in zip(df["line"], df["error"])}
    assert errors == {
        2: None,
        3: "malformed_line:expected 4 fields",
        5: "non_numeric:user_id",
        6: "missing_field:movie_id",
        7: "non_numeric:rating",
        8: None,
        9: "malformed_line:expected 4 fields",
        10: None,
    }
    assert df.loc[df["line"] == 7, "raw"].item() == "2,30,abc,200"
    assert np.isnan(df.loc[df["line"] == 8, "rating"].item())
    assert loader.stats.blank_lines == 1 and loader.stats.malformed_rows == 2


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from recsys_assets.core.ingest import MovieDataLoader
    def slow(rows, done, total):
        print(rows, flush=True)
        time.sleep(0.05)
    MovieDataLoader(sys.argv[1], sys.argv[2], 250, 5000, on_checkpoint=slow).load()
    print("finished", flush=True)
    """
)


def test_sigkill_mid_load_then_resume_equals_uninterrupted(tmp_path):
    export = write_sample_export(
        tmp_path / "big.csv", SampleSpec(n_ratings=200_000, n_users=2_000, n_movies=5_000, seed=3)
    )
    ckpt = tmp_path / "ckpt" / "raw.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(export), str(ckpt)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    printed = 0
    deadline = time.monotonic() + 120
    while printed < 8 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line and line.strip() != "finished", "the load ended before it could be killed"
        printed += 1
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    checkpointed = json.loads(ckpt.read_text())["body"]["rows"]
    assert 40_000 <= checkpointed < 200_000
    loader = MovieDataLoader(export, ckpt, 250, 5000)
    resumed = loader.load()
    assert loader.stats.resumed_rows == checkpointed
    assert loader.stats.read_rows == 200_000 - checkpointed
    assert loader.stats.reread_rows <= 5_000
    pd.testing.assert_frame_equal(_values(resumed), _values(MovieDataLoader(export, None).load()))


def test_read_lines_returns_exact_text(tmp_path):
    from recsys_assets.core.ingest import read_lines

    path = tmp_path / "f.csv"
    path.write_bytes(b"\xef\xbb\xbfh1\r\na,b\r\n\r\nlast")
    assert read_lines(path, [1, 2, 3, 4, 9]) == {1: "h1", 2: "a,b", 3: "", 4: "last"}
    assert read_lines(path, [4, 2], block_bytes=3) == {2: "a,b", 4: "last"}


# --- fast path (one Arrow call over many checkpoint segments) against the exact per-line path ---
def _exact_parse(path):
    """The whole data region through the exact line-by-line parser, as one segment."""
    from recsys_assets.core.ingest import parse_segment

    layout = MovieDataLoader(path).read_layout()
    parsed = parse_segment(path.read_bytes()[layout.data_offset :], layout.first_line, layout.fmt)
    return parsed.table.to_pandas(), parsed.blank, parsed.malformed


MESSY_BLOCK = (
    b"1,20\n"  # malformed
    b"\n"  # blank
    b'"7","8","3.5","9"\n'  # quoted
    b"x,20,3.0,200\n"  # non-numeric id
    b"2,,3.0,200\n"  # missing field
    b"2,30,abc,200\n"  # non-numeric rating
    b"3,10,5.0,300,9\n"  # too many fields
    b"4,11,2.0,3\r5,12,1.0,4\n"  # a carriage return inside a line
    b"6,13,4.5,5\r\n"  # CRLF
)


@pytest.mark.parametrize("interval,block_bytes", [(1_000, 32 << 20), (1_000, 8_192), (7, 4_096), (50_000, 32 << 20)])
def test_messy_lines_inside_a_large_clean_file_match_the_exact_path(tmp_path, interval, block_bytes):
    clean = write_sample_export(
        tmp_path / "clean.csv", SampleSpec(n_ratings=30_000, n_users=300, n_movies=2_000, seed=5)
    )
    lines = clean.read_bytes().split(b"\n")
    path = tmp_path / "messy.csv"
    path.write_bytes(b"\n".join(lines[:15_001]) + b"\n" + MESSY_BLOCK + b"\n".join(lines[15_001:]))
    expected, blank, malformed = _exact_parse(path)
    loader = MovieDataLoader(path, tmp_path / "ckpt.json", 100, interval, block_bytes=block_bytes)
    got = loader.load_table().to_pandas()
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected)
    assert got["error"].notna().sum() == 6 and got["line"].iloc[-1] == 1 + 30_000 + 9
    assert (loader.stats.blank_lines, loader.stats.malformed_rows) == (blank, malformed) == (1, 3)
    # the clean lines around the messy block keep consecutive line numbers
    assert got["line"].iloc[:15_000].tolist() == list(range(2, 15_002))


def test_clean_file_matches_the_exact_path(tiny_export, tmp_path):
    expected, _, _ = _exact_parse(tiny_export)
    got = MovieDataLoader(tiny_export, tmp_path / "ckpt.json", 100, 1_000).load_table().to_pandas()
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected)


def test_checkpoint_interval_longer_than_a_read_block(tiny_export, tmp_path):
    expected = MovieDataLoader(tiny_export, None).load()
    ckpt = tmp_path / "ckpt.json"
    seen = []

    # 1,500 rows per checkpoint is ~30 KB of text, read 1 KB at a time
    with pytest.raises(_Interrupt):
        MovieDataLoader(tiny_export, ckpt, 100, 1_500, block_bytes=1_024, on_checkpoint=_stop_after(2, seen)).load()
    assert seen == [1_500, 3_000]
    loader = MovieDataLoader(tiny_export, ckpt, 100, 1_500, block_bytes=1_024)
    got = loader.load()
    assert loader.stats.resumed_rows == 3_000 and loader.stats.read_rows == 1_000
    assert loader.stats.reread_rows == 0
    pd.testing.assert_frame_equal(_values(got), _values(expected))
    fresh = MovieDataLoader(tiny_export, tmp_path / "other.json", 100, 1_500, block_bytes=1_024)
    pd.testing.assert_frame_equal(_values(fresh.load()), _values(expected))
    assert fresh.stats.checkpoints_written == 3


def test_dat_and_tab_formats_take_the_fast_path_consistently(tmp_path):
    rows = [(u, m, 0.5 + (u * m) % 10 / 2, 1_000 + u + m) for u in range(1, 60) for m in range(1, 40)]
    for name, sep in (("ratings.dat", "::"), ("u.data", "\t")):
        path = tmp_path / name
        path.write_text("".join(f"{u}{sep}{m}{sep}{r:g}{sep}{t}\n" for u, m, r, t in rows))
        df = MovieDataLoader(path, tmp_path / f"{name}.json", 10, 200).load()
        assert df["error"].isna().all() and df["line"].tolist() == list(range(1, len(rows) + 1))
        assert df[["user_id", "movie_id", "timestamp"]].to_numpy().tolist() == [[u, m, t] for u, m, _, t in rows]
        expected, _, _ = _exact_parse(path)
        pd.testing.assert_frame_equal(df.reset_index(drop=True), expected)


def test_ids_and_timestamps_beyond_2_to_the_53_stay_exact(tmp_path):
    big, ns = 2**53 + 1, 1_700_000_000_123_456_789
    path = tmp_path / "big.csv"
    path.write_text(f"userId,movieId,rating,timestamp\n{big},{2**62 + 3},4.0,{ns}\n1,2\n{big + 2},7,3.5,{ns + 1}\n")
    df = MovieDataLoader(path, tmp_path / "ckpt.json").load()
    assert df["user_id"].dtype == "Int64"  # a malformed row: nullable, never float64
    assert df["user_id"].tolist()[0] == big and df["user_id"].tolist()[2] == big + 2
    assert df["movie_id"].tolist()[0] == 2**62 + 3 and df["timestamp"].tolist()[2] == ns + 1
    clean = path.with_name("clean.csv")
    clean.write_text(f"userId,movieId,rating,timestamp\n{big},{2**62 + 3},4.0,{ns}\n")
    df = MovieDataLoader(clean, None).load()
    assert df["user_id"].dtype == np.int64 and df["user_id"].item() == big and df["timestamp"].item() == ns
