"""The ``recsys`` command: recommend, similar, and their errors (no tracebacks)."""

from .model_files import ranked_pair


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


def test_cli_ranks_explains_and_folds_in(tmp_path, capsys):
    from recsys_assets.cli import main

    path, _, _, movie_ids = ranked_pair(tmp_path)
    assert main(["recommend", "--user", "1", "-k", "3", "--model", str(path)]) == 0
    out = capsys.readouterr().out
    assert "because you rated" in out and "predicted" in out
    assert main(["recommend", "--user", "1", "-k", "3", "--by", "rating", "--model", str(path)]) == 0
    assert "because you rated" not in capsys.readouterr().out
    assert (
        main(["recommend", "--rated", f"{movie_ids[20]}:5,{movie_ids[22]}:4.5", "-k", "3", "--model", str(path)]) == 0
    )
    assert "because you rated" in capsys.readouterr().out
    assert main(["recommend", "--rated", "318-5", "--model", str(path)]) == 2
    assert "MOVIE:RATING" in capsys.readouterr().err
    assert main(["recommend", "--model", str(path)]) == 2
    assert "either --user" in capsys.readouterr().err
    assert main(["similar", "--movie", "100", "-k", "2", "--model", str(path)]) == 0
    assert "movies like 100" in capsys.readouterr().out
    assert main(["recommend", "--user", str(2**70), "--model", str(path)]) == 2  # no traceback
    assert "out of range" in capsys.readouterr().err


def test_titles_cannot_drive_the_terminal(model_file, tmp_path, capsys):
    """A title holding escape codes is printed without its control characters (CLI and asset share the rule)."""
    from recsys_assets.cli import main
    from recsys_assets.core.presentation import read_titles

    movies = tmp_path / "movies.csv"
    movies.write_text(
        'movieId,title,genres\n300,"\x1b]0;owned\x07Gamma\x1b[31m (1992)",Drama\n400,"Delta\r (1993)",Comedy\n'
    )
    assert read_titles(movies).to_dict() == {300: "]0;ownedGamma[31m (1992)", 400: "Delta (1993)"}
    assert main(["recommend", "--user", "10", "-k", "2", "--model", str(model_file), "--movies", str(movies)]) == 0
    out = capsys.readouterr().out
    assert "Gamma" in out and "\x1b" not in out and "\x07" not in out and "\r" not in out


def test_paths_are_resolved_against_the_current_folder(model_file, tmp_path, monkeypatch, capsys):
    from recsys_assets.cli import main

    assert main(["recommend", "--user", "10", "--model", "/nope.pth"]) == 2
    assert "/nope.pth" in capsys.readouterr().err
    monkeypatch.chdir(model_file.parent)
    assert main(["recommend", "--user", "10", "-k", "1", "--model", model_file.name]) == 0
    assert main(["metrics", "--model", model_file.name]) == 0
    out = capsys.readouterr().out
    assert "validation RMSE 1.0000 (global mean n/a" in out and "ranking model: none published" in out


def test_a_progress_bar_only_on_a_terminal(tmp_path, monkeypatch, capsys):
    import io
    import sys

    from recsys_assets.cli import main

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert (
        main(
            ["sample", "--path", str(tmp_path / "a.csv"), "--n-ratings", "2000", "--n-users", "50", "--n-movies", "200"]
        )
        == 0
    )
    assert "writing" in terminal.getvalue() and "100%" in terminal.getvalue()
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal: no bar
    assert (
        main(
            ["sample", "--path", str(tmp_path / "b.csv"), "--n-ratings", "2000", "--n-users", "50", "--n-movies", "200"]
        )
        == 0
    )
    assert sys.stderr.getvalue() == ""
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_a_path_that_cannot_be_written_is_a_clear_error(tmp_path, capsys):
    from recsys_assets.cli import main

    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert (
        main(
            [
                "sample",
                "--path",
                str(blocker / "ratings.csv"),
                "--n-ratings",
                "100",
                "--n-users",
                "10",
                "--n-movies",
                "50",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("recsys: error:") and "Traceback" not in err


def test_sample_never_offers_to_overwrite_a_users_own_export(tmp_path, capsys):
    from recsys_assets.cli import main

    small = ["--n-ratings", "200", "--n-users", "20", "--n-movies", "50"]
    sample, mine = tmp_path / "sample.csv", tmp_path / "mine.csv"
    assert main(["sample", "--path", str(sample), *small]) == 0
    capsys.readouterr()
    assert main(["sample", "--path", str(sample), *small]) == 0
    assert "is a sample export; keeping it (--force writes a new sample)" in capsys.readouterr().out
    assert main(["sample", "--path", str(sample), "--seed", "3", "--force", *small]) == 0  # a sample: replaced
    mine.write_text("userId,movieId,rating,timestamp\n1,1,4.0,1\n")
    assert main(["sample", "--path", str(mine), *small]) == 0
    out = capsys.readouterr().out
    assert "is not a sample export; keeping it" in out.splitlines()[-1] and "--force" not in out.splitlines()[-1]
    assert main(["sample", "--path", str(mine), "--force", *small]) == 2
    assert "not a sample export" in capsys.readouterr().err
    assert mine.read_text() == "userId,movieId,rating,timestamp\n1,1,4.0,1\n"  # nothing lost
    sample.write_bytes(sample.read_bytes() + b"1,2,3.0,2\n")  # a sample edited by hand is the user's data now
    assert main(["sample", "--path", str(sample), "--force", *small]) == 2


def test_rated_by_rating_and_similar_by_title(tmp_path, capsys):
    from recsys_assets.cli import main

    path, _, _, movie_ids = ranked_pair(tmp_path)
    rated = f"{movie_ids[20]}:5,{movie_ids[22]}:4.5"
    assert main(["recommend", "--rated", rated, "-k", "3", "--by", "rating", "--model", str(path)]) == 0
    out = capsys.readouterr().out
    assert "because you rated" not in out and "predicted" in out
    assert str(movie_ids[20]) not in out.split()  # a rated movie is never recommended back
    movies = tmp_path / "movies.csv"
    movies.write_text(
        "movieId,title,genres\n"
        + "".join(f"{m},Movie {m} (2000),Drama\n" for m in movie_ids if m not in movie_ids[4:6])
        + f'{movie_ids[5]},"Toy Story 2 (1999)",Animation\n{movie_ids[4]},"Toy Story (1995)",Animation\n'
    )
    assert main(["similar", "--title", "toy story", "-k", "2", "--model", str(path), "--movies", str(movies)]) == 0
    assert f"movies like {movie_ids[4]} (Toy Story (1995))" in capsys.readouterr().out  # the exact title wins
    assert main(["similar", "--title", "no such film", "--model", str(path), "--movies", str(movies)]) == 2
    assert "no movie title contains" in capsys.readouterr().err
    assert main(["similar", "--model", str(path)]) == 2
    assert "either --movie" in capsys.readouterr().err
