import re

from recsys_assets.core.ids import IdMapping
from recsys_assets.core.ranking.train import CandidateSettings, Ratings, train_ranking_model
from recsys_assets.core.sample_data import GENERATOR_VERSION, SampleSpec, generate_ratings

from .conftest import REPO_ROOT


def _ranking_on(spec):
    from recsys_assets.core.splits import split_ratings

    frame = generate_ratings(spec).to_pandas().rename(columns={"userId": "user_id", "movieId": "movie_id"})
    users, movies = IdMapping.fit(frame["user_id"]), IdMapping.fit(frame["movie_id"])
    train, val = split_ratings(frame)
    return frame, train_ranking_model(
        Ratings.from_frame(train, users, movies),
        Ratings.from_frame(val, users, movies),
        len(users),
        len(movies),
        factors=[128],
        regularization=[100.0],
        # iALS alone, as it is: what is tested is the data, not the candidate search or the fallback
        candidates=CandidateSettings(blend=False, support=False, fallback=False),
    )


def test_sample_export_is_movielens_like_and_taste_decides_what_is_rated():
    frame, tasteful = _ranking_on(SampleSpec())  # the demo sample scripts/run_pipeline.sh writes
    assert len(frame) == 100_000 and not frame.duplicated(["user_id", "movie_id"]).any()
    assert 3.3 <= frame["rating"].mean() <= 3.9 and set(frame["rating"] * 2) <= set(range(1, 11))
    # with taste-driven exposure a personal ranker beats most popular; with random exposure it cannot
    assert tasteful.comparison.ndcg >= 1.3 * tasteful.comparison.baseline_ndcg, tasteful.comparison.describe()
    _, random_exposure = _ranking_on(SampleSpec(taste_weight=0.0))
    assert random_exposure.comparison.gap < tasteful.comparison.gap


def test_benchmarks_name_the_generator_version_of_their_cached_exports():
    for name in ("bench_ingest.py", "bench_scale.py", "bench_ranking.py"):
        text = (REPO_ROOT / "benchmarks" / name).read_text()
        assert int(re.search(r"^GENERATOR_VERSION = (\d+)", text, re.M).group(1)) == GENERATOR_VERSION, name
