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
    assert "--user --rated is required" in _refused(["recommend", "--model", str(path)], capsys)
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
    # said as what it is (the run uses the user's export), not as if their data had been at risk
    assert out.splitlines()[-1].startswith(f"using your export {mine}") and "--force" not in out.splitlines()[-1]
    assert "keeping it" not in out
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


def _refused(argv: list[str], capsys) -> str:
    """The one-line error of a command argparse refuses (rc 2), without a usage block or a traceback."""
    import pytest

    from recsys_assets.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "usage:" not in err and "Traceback" not in err, err
    return err


def test_out_of_range_numbers_are_refused_in_one_line(tmp_path, model_file, capsys, monkeypatch):
    """--port 99999 used to bind a random port while printing 99999; --reload-interval nan killed the
    watcher; --n-ratings -5 printed numpy's text and 0 wrote an empty sample; -k -3 printed an empty table."""

    def serve(*args, **kwargs):
        raise AssertionError(f"recsys serve started with {kwargs}")

    monkeypatch.setattr("recsys_assets.api.serve", serve)
    for port in ("99999", "0", "-1", "http"):
        assert "argument --port: " in _refused(["serve", "--port", port, "--data-dir", str(tmp_path)], capsys)
    assert "must be from 1 to 65535, got 99999" in _refused(["serve", "--port", "99999"], capsys)
    for interval in ("nan", "inf", "-inf", "0", "-1", "soon"):
        err = _refused(["serve", f"--reload-interval={interval}"], capsys)
        assert f"argument --reload-interval: must be a number of seconds above 0, got '{interval}'" in err
    for n in ("-5", "0", "99"):
        err = _refused(["sample", "--path", str(tmp_path / "s.csv"), "--n-ratings", n], capsys)
        assert f"argument --n-ratings: must be at least 100, got {n}" in err
    assert not (tmp_path / "s.csv").exists()
    assert "argument --n-users: must be at least 1, got 0" in _refused(["sample", "--n-users", "0"], capsys)
    assert "argument --seed: must be at least 0" in _refused(["sample", "--seed", "-1"], capsys)
    for command in (["similar", "--movie", "100"], ["recommend", "--user", "10"], ["recommend", "--rated", "100:4"]):
        for k in ("-3", "0"):
            err = _refused([*command, "-k", k, "--model", str(model_file)], capsys)
            assert err.startswith(f"recsys {command[0]}: error: argument -k: must be at least 1, got {k}")


def test_help_names_the_ranges(capsys):
    import pytest

    from recsys_assets.cli import main

    for command, text in [("serve", "1-65535"), ("sample", "at least 100"), ("similar", "1 or more")]:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert text in capsys.readouterr().out


def test_rated_movies_covering_the_catalogue_is_one_sentence_not_an_empty_table(tmp_path, model_file, capsys):
    from recsys_assets.cli import main

    path, _, _, movie_ids = ranked_pair(tmp_path / "pair")
    everything = ",".join(f"{m}:4" for m in movie_ids)
    for model, rated in [(path, everything), (model_file, "100:4,200:3,300:5,400:1")]:
        for by in ("ranking", "rating"):
            assert main(["recommend", "--rated", rated, "--by", by, "--model", str(model)]) == 2
            out, err = capsys.readouterr()
            assert err == "recsys: error: every movie of the catalogue is already rated; nothing to recommend\n"
            assert "rank" not in out and "Empty DataFrame" not in out
    assert main(["recommend", "--rated", "100:4,200:3,300:5", "--model", str(model_file)]) == 0  # one left
    assert "400" in capsys.readouterr().out


def test_a_bad_serve_port_fails_only_serve(tmp_path, model_file):
    """RECSYS_SERVE_PORT used to be read when the parser was built, so every command ended in a traceback."""
    import os
    import subprocess
    import sys

    def recsys(*args, port):
        env = {**os.environ, "RECSYS_SERVE_PORT": port}
        return subprocess.run(
            [sys.executable, "-m", "recsys_assets.cli", *args], env=env, capture_output=True, text=True
        )

    for port, reason in [("abc", "must be a whole number, got 'abc'"), ("99999", "must be at most 65535, got 99999")]:
        for args in (["models", "--help"], ["rollback", "--help"], ["metrics", "--model", str(model_file)]):
            proc = recsys(*args, port=port)
            assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        proc = recsys("serve", "--data-dir", str(tmp_path), port=port)
        assert proc.returncode == 2 and proc.stdout == "", proc.stdout
        assert proc.stderr == f"recsys: error: RECSYS_SERVE_PORT {reason}\n"
    proc = recsys(
        "sample",
        "--path",
        str(tmp_path / "s.csv"),
        "--n-ratings",
        "200",
        "--n-users",
        "20",
        "--n-movies",
        "50",
        port="abc",
    )
    assert proc.returncode == 0 and (tmp_path / "s.csv").exists(), proc.stderr


def test_version_and_only_the_options_a_command_uses(capsys):
    import importlib.metadata

    import pytest

    from recsys_assets.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"recsys {importlib.metadata.version('recsys_assets')}"
    with pytest.raises(SystemExit):
        main(["metrics", "--help"])
    out = capsys.readouterr().out
    assert "--model" in out and "-k" not in out.split() and "--movies" not in out  # metrics lists no movies
    assert "unrecognized arguments: -k 3" in _refused(["metrics", "-k", "3"], capsys)


def test_user_and_rated_exclude_each_other(model_file, capsys):
    err = _refused(["recommend", "--user", "10", "--rated", "100:4", "--model", str(model_file)], capsys)
    assert "argument --rated: not allowed with argument --user" in err
    assert "one of the arguments --user --rated is required" in _refused(["recommend"], capsys)


def test_help_shows_the_resolved_defaults(tmp_path, monkeypatch, capsys):
    import pytest

    from recsys_assets.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECSYS_DATA_DIR", "models_here")
    for command, shown in [("recommend", "models_here/recommendation_model.pth"), ("models", "models_here")]:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = " ".join(capsys.readouterr().out.split())  # argparse wraps long paths
        assert "$RECSYS" not in out
        assert str(tmp_path / shown) in out.replace(" ", "") or str(tmp_path / shown) in out


def test_a_missing_model_names_the_folder_and_recsys_data_dir(tmp_path, monkeypatch, capsys):
    from recsys_assets.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECSYS_DATA_DIR", raising=False)
    assert main(["recommend", "--user", "1", "--model", "data/recommendation_model.pth"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"recsys: error: model file not found: {tmp_path}/data/recommendation_model.pth")
    assert f"looked in {tmp_path}/data" in err and "RECSYS_DATA_DIR" in err and "Traceback" not in err


def test_similar_by_title_names_the_other_matches_and_tables_shorten_long_titles(tmp_path, capsys):
    from recsys_assets.cli import main

    path, _, _, movie_ids = ranked_pair(tmp_path)
    long_title = "A " + "very " * 20 + "long title (2001)"
    movies = tmp_path / "movies.csv"
    movies.write_text(
        "movieId,title,genres\n"
        + "".join(f"{m},Star Wars {i} (19{70 + i})\n" for i, m in enumerate(movie_ids[:8]))
        + "".join(f'{m},"{long_title}",Drama\n' for m in movie_ids[8:])
    )
    assert main(["similar", "--title", "star wars", "--model", str(path), "--movies", str(movies)]) == 0
    out = capsys.readouterr().out
    also = next(line for line in out.splitlines() if line.startswith("also matched: "))
    assert also.count("Star Wars") == 5 and "and 2 more" in also  # 7 others: five named, the rest counted
    assert "embedding space" not in out
    header = next(line for line in out.splitlines() if line.startswith("movies like "))
    assert "movie factors" in header  # this ranking model has no item-item weights: the factors' cosine
    assert main(["recommend", "--user", "1", "--model", str(path), "--movies", str(movies), "-k", "10"]) == 0
    out = capsys.readouterr().out
    assert long_title not in out and long_title[:59].rstrip() + "…" in out
    assert all(len(line) < 200 for line in out.splitlines())
