import numpy as np
import pytest
import torch

from recsys_assets import Recommender
from recsys_assets.core.artifact import ModelFileError, load_model_file, save_model_file
from recsys_assets.core.model import BiasedMF
from recsys_assets.core.training import seen_matrix


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
    return save_model_file(
        tmp_path / "recommendation_model.pth",
        model_state=model.state_dict(), optimizer_state=opt.state_dict(),
        user_ids=np.array([10, 20, 30]), movie_ids=np.array([100, 200, 300, 400]),
        config={"rating_min": 0.5, "rating_max": 5.0}, history=[{"epoch": 1, "train_loss": 1.0, "val_loss": 1.1}],
        metrics={"val_rmse": 1.0}, seen_indptr=indptr, seen_indices=indices, movie_counts=np.array([5, 1, 3, 9]),
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
