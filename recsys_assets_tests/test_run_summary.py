"""The run summary's reading of a rejected model, on lines as `dg launch` prints them."""

import io

from recsys_assets.run_summary import Summary

RUN = "0123abcd-0123-4567-89ab-0123456789ab"


def _line(level: str, step: str, message: str, event: str = "") -> str:
    event_part = f"{event} - " if event else ""
    return (
        f"2026-12-07 18:00:00 +0000 - dagster - {level} - __ASSET_JOB - {RUN} - 4242 - {step} - {event_part}{message}"
    )


def test_a_rejected_model_names_its_failed_check_and_figures():
    out = io.StringIO()
    summary = Summary(out)
    why = "model not published (worse than the published model: held-back RMSE 2.1100 against 0.8600)"
    for line in (
        _line("ERROR", "recommendation_model", why),
        _line(
            "DEBUG",
            "recommendation_model",
            "Asset check 'not_worse_than_published' on 'recommendation_model' failed",
            "ASSET_CHECK_EVALUATION",
        ),
        _line("ERROR", "recommendation_model", "Execution of step failed.", "STEP_FAILURE"),
        "dagster._core.errors.DagsterAssetCheckFailedError: 1 blocking asset check failed with ERROR severity:",
        _line("ERROR", "RUN_FAILURE", "Execution of run failed."),
    ):
        summary.feed(line)
    summary.finish(None)
    text = out.getvalue()
    assert "==> run failed at recommendation_model" in text
    assert "reason: blocking check not_worse_than_published failed: model not published (worse than" in text
    assert "held-back RMSE 2.1100 against 0.8600" in text


def test_every_dagster_duration_format_is_shown_with_the_wall_time_and_the_loss_plot(tmp_path):
    """`1m4s`, `1h2m` and `523ms` used to print no time (the pattern knew `5.6s`-style times only)."""
    from recsys_assets.defs.resources import RecsysStorage
    from recsys_assets.run_summary import LOSS_PLOT

    assert LOSS_PLOT == RecsysStorage.LOSS_PLOT
    out = io.StringIO()
    summary = Summary(out, data_dir=str(tmp_path / "data"))
    summary.began -= 65  # the run took 65 seconds
    times = {
        "a": "0.83ms",
        "b": "523ms",
        "c": "5.61s",
        "d": "1m4s",
        "e": "34m12s",
        "f": "1h2m",
        "training_loss_plot": "1.0s",
    }
    for step, duration in times.items():
        message = f'Finished execution of step "{step}" in {duration}.'
        summary.feed(_line("DEBUG", step, message, "STEP_SUCCESS"))
    summary.feed(_line("DEBUG", "RUN_SUCCESS", "Finished execution of run."))
    summary.finish(None)
    lines = out.getvalue().splitlines()
    for step, duration in times.items():
        assert next(line for line in lines if line.split()[0] == step).split()[2] == duration
    assert lines[-2].startswith("==> run succeeded in 1m05s")
    assert lines[-1] == f"    loss plot: {tmp_path / 'data' / 'training_loss.png'}"
    out = io.StringIO()  # no plot drawn, no folder given: no plot line
    summary = Summary(out)
    summary.feed(_line("DEBUG", "RUN_SUCCESS", "Finished execution of run."))
    summary.finish(None)
    assert out.getvalue().startswith("==> run succeeded in 0s") and "loss plot" not in out.getvalue()
