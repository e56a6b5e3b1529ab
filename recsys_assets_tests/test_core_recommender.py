import numpy as np
import pytest
import torch

from recsys_assets import Recommender
from recsys_assets.core.model_file import ModelFileError, load_model_file, save_model_file
from recsys_assets.core.model import BiasedMF
from recsys_assets.core.report import ModelReport
from recsys_assets.core.ranking import seen_matrix


@pytest.fixture
def model_file(tmp_path):
    torch.manual_seed(0)
    model = BiasedMF(3, 4, 2, global_mean=3.0, sparse=False)
    with torch.no_grad():
        model.user_bias.weight[:, 0] = torch.tensor([0.5, -0.5, 0.0])
        model.movie_bias.weight[:, 0] = torch.tensor([1.0, 0.0, -1.0, 0.2])
        model.user_factors.weight[:] = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
        model.movie_factors.weight[:] = torch.tensor([[2.0, 0.0], [0.0, 0.5], [0.0, 0.0], [0.3, 0.3]])
    users, movies = np.array([0, 0, 1, 2]), np.array([0, 1, 2, 3])
    indptr, indices = seen_matrix(users, movies, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    report = ModelReport(metrics={"val_rmse": 1.0}, weights_finite=True, seen_indptr=indptr, seen_indices=indices,
                         movie_counts=np.array([5, 1, 3, 9]))
    return save_model_file(
        tmp_path / "recommendation_model.pth", report,
        model_state=model.state_dict(), optimizer_state=opt.state_dict(),
        user_ids=np.array([10, 20, 30]), movie_ids=np.array([100, 200, 300, 400]),
        config={"rating_min": 0.5, "rating_max": 5.0}, history=[{"epoch": 1, "train_loss": 1.0, "val_loss": 1.1}],
    )


def test_file_loads_with_weights_only_and_has_the_documents_keys(model_file):
    payload = torch.load(model_file, weights_only=True)
    for key in ("model_state_dict", "user_mapping", "movie_mapping", "optimizer_state_dict", "config", "history", "metrics"):
        assert key in payload
    assert payload["user_mapping"] == {10: 0, 20: 1, 30: 2}
    assert not list(model_file.parent.glob("*.tmp"))


def test_predict_on_raw_ids_clamped_with_fallbacks(model_file):
    rec = Recommender.load(model_file)
    # user 10, movie 100: 3 + 0.5 + 1.0 + 2.0 = 6.5 -> clamped to 5
    # user 20, movie 200: 3 - 0.5 + 0 + 0.5 = 3.0
    # unknown user 99, movie 300: 3 + (-1.0) = 2.0 ; user 30, unknown movie: 3 + 0 = 3.0
    got = rec.predict([10, 20, 99, 30], [100, 200, 300, 12345])
    assert got == pytest.approx([5.0, 3.0, 2.0, 3.0])


def test_recommend_excludes_seen_movies(model_file):
    rec = Recommender.load(model_file)
    top = rec.recommend(10, k=10)
    assert 100 not in top["movie_id"].tolist() and 200 not in top["movie_id"].tolist()
    assert top["movie_id"].tolist() == [400, 300]  # 3.5+0.2+0.3=4.0 beats 3.5-1=2.5
    assert top["rank"].tolist() == [1, 2] and top.attrs["fallback"] is None
    assert top["score"].tolist() == pytest.approx([4.0, 2.5])


def test_unknown_user_gets_popular_movies_flagged(model_file):
    top = Recommender.load(model_file).recommend(999, k=2)
    assert top["movie_id"].tolist() == [400, 100] and top.attrs["fallback"] == "popularity"


def test_missing_and_foreign_files_fail_clearly(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_model_file(tmp_path / "nope.pth")
    other = tmp_path / "other.pth"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ModelFileError, match="not a recsys_assets model"):
        Recommender.load(other)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="not a readable model file"):
        Recommender.load(garbage)


def test_predict_frame_flags_unknown_ids(model_file):
    frame = Recommender.load(model_file).predict_frame([10, 99], [12345, 100])
    assert frame["unknown_user"].tolist() == [False, True]
    assert frame["unknown_movie"].tolist() == [True, False]


def test_recommend_many_and_similar_movies(model_file):
    rec = Recommender.load(model_file)
    many = rec.recommend_many([10, 999], k=2)
    assert many["user_id"].tolist() == [10, 10, 999, 999]
    assert many["fallback"].tolist() == [None, None, "popularity", "popularity"]
    similar = rec.similar_movies(100, k=2)
    # movie 100 has factors (2, 0): (0.3, 0.3) is at 45 degrees, (0, 0.5) at 90
    assert similar["movie_id"].tolist() == [400, 200]
    assert similar["similarity"].iloc[0] == pytest.approx(2 ** -0.5)
    with pytest.raises(KeyError, match="not known"):
        rec.similar_movies(42)


def test_cli_recommend_and_similar(model_file, tmp_path, capsys):
    from recsys_assets.cli import main

    movies = tmp_path / "movies.csv"
    movies.write_text("movieId,title,genres\n100,Alpha (1990),Drama\n300,Gamma (1992),Drama\n400,Delta (1993),Comedy\n")
    assert main(["recommend", "--user", "10", "-k", "2", "--model", str(model_file), "--movies", str(movies)]) == 0
    out = capsys.readouterr().out
    assert "Delta (1993)" in out and "Gamma (1992)" in out
    assert main(["similar", "--movie", "100", "-k", "1", "--model", str(model_file)]) == 0
    assert "400" in capsys.readouterr().out
    assert main(["recommend", "--user", "10", "--model", str(tmp_path / "missing.pth")]) == 2
    assert "model file not found" in capsys.readouterr().err
    assert main(["similar", "--movie", "7", "--model", str(model_file)]) == 2
    assert "not known" in capsys.readouterr().err


# --- with a ranking model beside the rating model ----------------------------------------------
def _ranked_pair(tmp_path):
    """A rating model and a ranking model fitted on the same small synthetic ratings."""
    from recsys_assets.core.dataset import IdMapping
    from recsys_assets.core.ranking import IALSParams, UserItems, fit_ials
    from recsys_assets.core.ranking.model import RankingModel

    rng = np.random.default_rng(0)
    n_users, n_movies = 60, 30
    users, movies = [], []
    for u in range(n_users):
        group = np.arange(15) if u % 2 == 0 else np.arange(15, 30)
        picks = rng.choice(group, 10, replace=False)
        users += [u] * 10
        movies += picks.tolist()
    users, movies = np.array(users), np.array(movies)
    ratings = rng.choice([3.0, 4.0, 5.0], len(users)).astype(np.float32)
    user_ids, movie_ids = np.arange(n_users) + 1, np.arange(n_movies) * 10 + 100
    torch.manual_seed(0)
    model = BiasedMF(n_users, n_movies, 4, global_mean=3.5, sparse=False)
    indptr, indices = seen_matrix(users, movies, n_users)
    report = ModelReport(metrics={"ndcg_at_10": 0.01}, weights_finite=True, seen_indptr=indptr, seen_indices=indices,
                         movie_counts=np.bincount(movies, minlength=n_movies))
    rating_file = save_model_file(
        tmp_path / "recommendation_model.pth", report, model_state=model.state_dict(),
        optimizer_state=torch.optim.SGD(model.parameters(), lr=0.1).state_dict(), user_ids=user_ids, movie_ids=movie_ids,
        config={}, history=[],
    )
    matrix = UserItems.from_pairs(users, movies, n_users, n_movies, ratings)
    params = IALSParams(factors=4, regularization=1.0, iterations=10)
    fitted = fit_ials(matrix, params)
    RankingModel(fitted.user_factors, fitted.item_factors, IdMapping(user_ids), IdMapping(movie_ids), matrix, params,
                 metrics={"val_ndcg_at_10": 0.2}).save(tmp_path / "ranking_model.pth")
    return rating_file, matrix, user_ids, movie_ids


def test_recommendations_come_from_the_ranking_model_with_rating_and_reason(tmp_path):
    path, matrix, user_ids, movie_ids = _ranked_pair(tmp_path)
    rec = Recommender.load(path)  # ranking_model.pth beside it is found
    assert rec.ranker is not None
    top = rec.recommend(1, k=5)
    assert top.attrs["by"] == "ranking" and top.attrs["fallback"] is None
    rated = set(movie_ids[matrix.row(0)].tolist())
    assert not rated & set(top["movie_id"].tolist())  # no seen movie
    assert set(top["because_movie_id"].tolist()) <= rated  # the reason is a movie the user rated
    assert np.all(np.diff(top["score"].to_numpy()) <= 0)
    assert top["predicted_rating"].tolist() == pytest.approx(rec.predict([1] * 5, top["movie_id"]).tolist())
    assert all((m - 100) // 10 < 15 for m in top["movie_id"][:3])  # user 1 (index 0) likes the first half
    by_rating = rec.recommend(1, k=5, by="rating")
    assert by_rating.attrs["by"] == "rating" and (by_rating["because_movie_id"] == -1).all()
    assert np.all(np.diff(by_rating["score"].to_numpy()) <= 0)
    with pytest.raises(ValueError, match="by must be"):
        rec.recommend(1, by="stars")


def test_recommend_many_is_recommend_for_each_user(tmp_path):
    path, *_ = _ranked_pair(tmp_path)
    rec = Recommender.load(path)
    many = rec.recommend_many([3, 1, 999], k=4)
    assert many["user_id"].tolist() == [3] * 4 + [1] * 4 + [999] * 4
    for user in (3, 1):
        one = rec.recommend(user, k=4)
        part = many[many["user_id"] == user].reset_index(drop=True)
        assert part["movie_id"].tolist() == one["movie_id"].tolist()
        assert part["because_movie_id"].tolist() == one["because_movie_id"].tolist()
    assert (many[many["user_id"] == 999]["fallback"] == "popularity").all()


def test_someone_new_gets_recommendations_from_a_few_ratings(tmp_path):
    path, _, _, movie_ids = _ranked_pair(tmp_path)
    rec = Recommender.load(path)
    liked = {int(movie_ids[20]): 5.0, int(movie_ids[22]): 4.5, 12345: 4.0}  # second-half movies, one unknown
    top = rec.recommend_for_ratings(liked, k=5)
    assert top.attrs["ignored"] == [12345] and top.attrs["fallback"] is None
    assert not {int(movie_ids[20]), int(movie_ids[22])} & set(top["movie_id"].tolist())
    assert all((m - 100) // 10 >= 15 for m in top["movie_id"][:3])  # the taste of the ratings, not popularity
    assert set(top["because_movie_id"].tolist()) <= {int(movie_ids[20]), int(movie_ids[22])}
    assert top["predicted_rating"].between(0.5, 5.0).all()
    unknown_only = rec.recommend_for_ratings({999999: 5.0}, k=3)
    assert unknown_only.attrs["fallback"] == "popularity"
    with pytest.raises(ValueError, match="within"):
        rec.recommend_for_ratings({int(movie_ids[0]): 9.0})


def test_similar_movies_use_the_better_ranker_and_name_the_query(tmp_path):
    path, *_ = _ranked_pair(tmp_path)
    rec = Recommender.load(path)
    assert rec.similar_by == "ranking"  # ranking NDCG 0.2 beats the rating model's 0.01
    frame = rec.similar_movies(100, k=3)
    assert frame.attrs == {"query_movie_id": 100, "by": "ranking"}
    assert 100 not in frame["movie_id"].tolist()
    rec.info["metrics"]["ndcg_at_10"] = 0.5
    assert rec.similar_by == "rating"


def test_cli_ranks_explains_and_folds_in(tmp_path, capsys):
    from recsys_assets.cli import main

    path, _, _, movie_ids = _ranked_pair(tmp_path)
    assert main(["recommend", "--user", "1", "-k", "3", "--model", str(path)]) == 0
    out = capsys.readouterr().out
    assert "because you rated" in out and "predicted" in out
    assert main(["recommend", "--user", "1", "-k", "3", "--by", "rating", "--model", str(path)]) == 0
    assert "because you rated" not in capsys.readouterr().out
    assert main(["recommend", "--rated", f"{movie_ids[20]}:5,{movie_ids[22]}:4.5", "-k", "3", "--model", str(path)]) == 0
    assert "because you rated" in capsys.readouterr().out
    assert main(["recommend", "--rated", "318-5", "--model", str(path)]) == 2
    assert "MOVIE:RATING" in capsys.readouterr().err
    assert main(["recommend", "--model", str(path)]) == 2
    assert "either --user" in capsys.readouterr().err
    assert main(["similar", "--movie", "100", "-k", "2", "--model", str(path)]) == 0
    assert "movies like 100" in capsys.readouterr().out
    assert main(["recommend", "--user", str(2**70), "--model", str(path)]) == 2  # no traceback
    assert "out of range" in capsys.readouterr().err
