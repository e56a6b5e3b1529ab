"""Hostile inputs to the ingest (issue 14): each test failed before its fix."""

import gzip
import json
import os
import threading

import numpy as np
import pandas as pd
import pytest

from recsys_assets.core.cleaning import clean_rating_data
from recsys_assets.core.ingest import CheckpointStore, ExportError, MovieDataLoader, read_lines
from recsys_assets.core.ingest import checkpoint as checkpoint_module
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
