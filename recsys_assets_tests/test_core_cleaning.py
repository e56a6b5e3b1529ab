import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys_assets.core.cleaning import DataQualityError, clean_rating_data
from recsys_assets.core.ingest import MovieDataLoader


def _frame(rows):
    return pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"])


def test_document_style_frame_is_cleaned():
    df = _frame([(1, 10, 4.0, 100), (1, 11, 3.5, 101), (2, 10, 5.0, 102)])
    result = clean_rating_data(df)
    assert result.ratings.columns.tolist() == ["user_id", "movie_id", "rating", "timestamp"]
    assert len(result.ratings) == 3 and result.quarantine.empty
    assert result.ratings["user_id"].dtype == np.int64 and result.ratings["rating"].dtype == np.float32


def test_each_reason_is_quarantined_with_line_and_raw_text():
    df = _frame(
        [
            (1, 10, 4.0, 100),
            (1, 10, 2.0, 300),  # later rating of the same pair wins
            (2, None, 3.0, 100),
            ("abc", 10, 3.0, 100),
            (-3, 10, 3.0, 100),
            (2, 11, 7.0, 100),
            (2, 12, float("nan"), 100),
            (2, 13, 0.0, 100),
            (2.5, 13, 3.0, 100),
        ]
        + [(9, m, 3.0, 1) for m in range(100)]
    )
    result = clean_rating_data(df, max_rejected_fraction=None)
    q = result.quarantine.set_index("line")
    assert q.loc[2, "reason"] == "duplicate_superseded" and q.loc[2, "raw"] == "1,10,4,100"
    assert q.loc[4, "reason"] == "missing_field"
    assert q.loc[5, "reason"] == "non_numeric"
    assert q.loc[6, "reason"] == "invalid_id"
    assert q.loc[7, "reason"] == q.loc[8, "reason"] == q.loc[9, "reason"] == "rating_off_scale"
    assert q.loc[10, "reason"] == "non_numeric"
    kept = result.ratings.set_index(["user_id", "movie_id"])
    assert kept.loc[(1, 10), "rating"] == 2.0
    assert result.reason_counts == {
        "rating_off_scale": 3,
        "non_numeric": 2,
        "missing_field": 1,
        "invalid_id": 1,
        "duplicate_superseded": 1,
    }
    assert len(result.ratings) + len(result.quarantine) == len(df)


def test_duplicate_ties_keep_the_later_line():
    result = clean_rating_data(_frame([(1, 10, 4.0, 5), (1, 10, 1.0, 5)]))
    assert result.ratings["rating"].tolist() == [1.0]
    assert result.quarantine["line"].tolist() == [2]


def test_rejected_share_over_threshold_fails_with_line_and_reason():
    rows = [(1, m, 3.0, 1) for m in range(90)] + [(1, 1000 + m, 9.0, 1) for m in range(10)]
    with pytest.raises(DataQualityError, match=r"10 of 100 rows \(10.0%\).*line 92: rating_off_scale") as err:
        clean_rating_data(_frame(rows), source="export.csv")
    assert "export.csv" in str(err.value)
    assert len(clean_rating_data(_frame(rows), max_rejected_fraction=0.2).ratings) == 90


def test_custom_scale():
    result = clean_rating_data(
        _frame([(1, 1, 1.0, 0), (1, 2, 10.0, 0), (1, 3, 0.5, 0)]),
        rating_min=1,
        rating_max=10,
        max_rejected_fraction=None,
    )
    assert sorted(result.ratings["rating"].tolist()) == [1.0, 10.0]


# --- property test: generated messy exports go through loader and cleaner without loss ---
good_line = st.tuples(
    st.integers(0, 50),
    st.integers(0, 50),
    st.sampled_from(["0.5", "3", "4.5", "5.0", "7", "-1", "nan"]),
    st.integers(0, 10**9),
).map(lambda t: f"{t[0]},{t[1]},{t[2]},{t[3]}")
junk_line = st.text(alphabet=st.sampled_from(list('0123456789,.-abc" \t:;')), min_size=0, max_size=20)
line = st.one_of(good_line, good_line, junk_line)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(line, min_size=1, max_size=60), crlf=st.booleans(), bom=st.booleans(), tail_newline=st.booleans())
def test_property_every_row_is_kept_or_quarantined(tmp_path_factory, lines, crlf, bom, tail_newline):
    sep = "\r\n" if crlf else "\n"
    text = (
        ("\ufeff" if bom else "")
        + "userId,movieId,rating,timestamp"
        + sep
        + sep.join(lines)
        + (sep if tail_newline else "")
    )
    path = tmp_path_factory.mktemp("prop") / "export.csv"
    path.write_bytes(text.encode("utf-8"))
    try:
        raw = MovieDataLoader(path, path.with_suffix(".ckpt"), chunk_size=3, checkpoint_interval=7).load()
    except Exception as exc:  # only the documented error: no data rows at all
        assert "no data rows" in str(exc)
        assert all(not ln.strip("\r") for ln in lines)
        return
    non_blank = sum(1 for ln in lines if ln != "")
    assert len(raw) == non_blank
    result = clean_rating_data(raw, max_rejected_fraction=None)
    assert len(result.ratings) + len(result.quarantine) == len(raw)
    assert set(result.quarantine["line"]).isdisjoint(set()) and result.quarantine["line"].is_unique
    if len(result.ratings):
        assert result.ratings["rating"].between(0.5, 5.0).all()
        assert not result.ratings.duplicated(["user_id", "movie_id"]).any()


# --- int64 precision: ids above 2**53 and nanosecond timestamps never pass through float64 ---
BIG = 2**53  # BIG and BIG + 1 are the same float64


def test_ids_above_2_to_the_53_do_not_merge():
    df = pd.DataFrame(
        {
            "userId": [BIG, BIG + 1, BIG + 3],
            "movieId": [2**62 + 1, 2**62 + 1, 5],
            "rating": [4.0, 3.0, 2.0],
            "timestamp": [1, 2, 3],
        }
    )
    result = clean_rating_data(df)
    assert result.quarantine.empty
    assert result.ratings["user_id"].tolist() == [BIG, BIG + 1, BIG + 3]
    assert result.ratings["movie_id"].tolist() == [2**62 + 1, 2**62 + 1, 5]


def test_nanosecond_timestamps_keep_their_order_and_value():
    ns = 1_700_000_000_123_456_789
    # the same pair twice: the later timestamp (1 ns later, on the earlier line) wins
    df = pd.DataFrame({"userId": [1, 1], "movieId": [10, 10], "rating": [2.0, 4.0], "timestamp": [ns + 1, ns]})
    result = clean_rating_data(df)
    assert result.ratings["rating"].tolist() == [2.0]
    assert result.ratings["timestamp"].tolist() == [ns + 1]
    assert result.quarantine["line"].tolist() == [3]
    assert result.quarantine["raw"].tolist() == [f"1,10,4,{ns}"]


def test_big_ids_survive_loader_nulls_and_text_input(tmp_path):
    path = tmp_path / "export.csv"
    ns = 1_700_000_000_123_456_789
    path.write_text(
        "userId,movieId,rating,timestamp\n"
        f"{BIG},1,4.0,{ns}\n{BIG + 1},1,3.0,{ns + 1}\nbroken\n" + "".join(f"1,{m},3.0,1\n" for m in range(40))
    )
    raw = MovieDataLoader(path, None).load()
    result = clean_rating_data(raw)
    assert result.ratings["user_id"].tolist()[:2] == [BIG, BIG + 1]
    assert result.ratings["timestamp"].tolist()[:2] == [ns, ns + 1]
    assert result.quarantine["reason"].tolist() == ["malformed_line"]
    text = pd.DataFrame(
        {
            "userId": [str(BIG), str(BIG + 1), "x"],
            "movieId": ["1", "1", "1"],
            "rating": ["4", "3", "2"],
            "timestamp": [str(ns), "", "5"],
        }
    )
    result = clean_rating_data(text, max_rejected_fraction=None)
    assert result.ratings["user_id"].tolist() == [BIG, BIG + 1]
    assert result.ratings["timestamp"].tolist() == [ns, 0]
    assert result.quarantine["reason"].tolist() == ["non_numeric"]


def test_all_valid_input_fast_path_matches_and_does_not_alias_the_input():
    n = 5_000
    rng = np.random.default_rng(0)
    keys = rng.choice(10**6, size=n, replace=False)
    df = pd.DataFrame(
        {
            "line": np.arange(2, n + 2),
            "user_id": keys // 1000,
            "movie_id": keys % 1000,
            "rating": rng.integers(1, 11, n) / 2,
            "timestamp": rng.integers(0, 10**9, n),
            "error": pd.array([None] * n, dtype="string"),
            "raw": pd.array([None] * n, dtype="string"),
        }
    )
    result = clean_rating_data(df)
    assert result.quarantine.empty and list(result.quarantine.columns) == [
        "line",
        "raw",
        "raw_rebuilt",
        "reason",
        "detail",
    ]
    assert result.ratings.dtypes.tolist() == [np.int64, np.int64, np.float32, np.int64]
    assert (result.ratings["user_id"].to_numpy() == df["user_id"].to_numpy()).all()
    result.ratings.loc[0, "user_id"] = -1  # the result is writable and does not write through to the input
    assert df["user_id"].iloc[0] == keys[0] // 1000
    # one duplicate pair among otherwise valid rows: the same rule as the slow path
    dup = pd.concat([df, df.iloc[[10]].assign(line=n + 2, timestamp=df["timestamp"].iloc[10] + 1)], ignore_index=True)
    result = clean_rating_data(dup)
    assert result.quarantine["line"].tolist() == [12]
    assert result.quarantine["reason"].tolist() == ["duplicate_superseded"]
    assert len(result.ratings) == n


@pytest.mark.parametrize("bad", [float("nan"), -0.1, 1.5])
def test_an_impossible_rejection_threshold_is_refused(bad):
    """NaN used to switch the 5% gate off silently."""
    with pytest.raises(ValueError, match="max_rejected_fraction must be between 0 and 1"):
        clean_rating_data(_frame([(1, 1, 4.0, 1)]), max_rejected_fraction=bad)


def test_a_rejected_export_still_carries_its_quarantine():
    rows = [(u, 1, 4.0, u) for u in range(1, 91)] + [(u, 2, 9.0, u) for u in range(91, 101)]
    with pytest.raises(DataQualityError) as err:
        clean_rating_data(_frame(rows))
    assert err.value.quarantine is not None and len(err.value.quarantine) == 10
    assert set(err.value.quarantine["reason"]) == {"rating_off_scale"}
