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
