"""A readable run: ``dg launch``'s event log in, one line per step and the failure's reason out.

    dg launch --assets '*' 2>&1 | python -m recsys_assets.run_summary --log .dagster_home/last_run.log

``scripts/run_pipeline.sh`` pipes the run through this filter (``RECSYS_VERBOSE=1`` shows the whole
log instead). Every line goes to the ``--log`` file unchanged; the terminal gets, per step, its time and
its checks, and a failed run ends with the error that failed it (the innermost exception of the failed
step, e.g. the export error), not only Dagster's "Materialization failed". A run that succeeded ends with
its wall time and, when the loss plot was drawn, where it is. When no run started (the code location did
not load), the end of the output is shown as it is. Text parsing only: no Dagster import, so it works for
any run the command prints.
"""

import argparse
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

EVENT = re.compile(
    r"^\S+ \S+ \S+ - dagster - (?P<level>[A-Z]+) - \S+ - (?P<run>[0-9a-f-]{36}) - (?:\d+ - )?"
    r"(?P<step>[\w.\[\]-]+) - (?:(?P<event>[A-Z_]+) - )?(?P<message>.*)$"
)
CHECK = re.compile(r"Asset check '(?P<check>[^']+)' on '(?P<asset>[^']+)' (?P<outcome>passed|failed)")
# every form of Dagster's format_duration (dagster_shared/utils/timing.py): 0.83ms, 533ms, 5.6s, 4m52s, 1h4m
DURATION = re.compile(r" in (?P<time>\d+h\d+m|\d+m\d+s|[\d.]+ms|[\d.]+s)\.$")
LOSS_PLOT = "training_loss.png"  # RecsysStorage.LOSS_PLOT (defs/resources.py), drawn by training_loss_plot
EXCEPTION = re.compile(r"^(?P<type>[A-Za-z_][\w.]*(?:Error|Exception|Failure|Interrupt|Exit)): (?P<message>.+)$")
TAIL_LINES = 15


@dataclass
class Summary:
    """What the filter has seen so far."""

    out: TextIO
    data_dir: str | None = None  # where the loss plot is (RECSYS_DATA_DIR), shown when it was drawn
    began: float = field(default_factory=time.monotonic)
    started: bool = False
    outcome: str | None = None  # "success" or "failure"
    failed_step: str | None = None
    reasons: dict[str, str] = field(default_factory=dict)  # failed step -> innermost exception line
    checks: dict[str, list[str]] = field(default_factory=dict)  # step -> ["name passed", ...]
    failed_checks: dict[str, list[str]] = field(default_factory=dict)  # step -> the names of its failed checks
    errors: dict[str, str] = field(default_factory=dict)  # step -> the first error it logged (its own words)
    skipped: int = 0
    succeeded: set[str] = field(default_factory=set)
    tail: list[str] = field(default_factory=list)
    _in_failure: str | None = None

    def feed(self, line: str) -> None:
        line = line.rstrip("\n")
        self.tail = [*self.tail[-(TAIL_LINES - 1) :], line]
        match = EVENT.match(line)
        if match is None:
            self._error_line(line)
            return
        self._in_failure = None
        self.started = True
        step, event = match.group("step"), match.group("event") or ""
        if not event and step.isupper():  # a run-level event: "<pid> - RUN_SUCCESS - Finished ..."
            step, event = "run", step
        if match.group("level") == "ERROR" and not event and step not in self.errors:
            self.errors[step] = match.group("message").strip()
        self._event(step, event, match.group("message"))

    def _error_line(self, line: str) -> None:
        """A line of a failed step's error text: keep its innermost exception as the reason."""
        exception = EXCEPTION.match(line.strip())
        if self._in_failure and exception:
            self.reasons[self._in_failure] = f"{exception.group('type').rsplit('.', 1)[-1]}: {exception['message']}"

    def _event(self, step: str, event: str, message: str) -> None:
        if event == "STEP_SUCCESS":
            self.succeeded.add(step)
            duration = DURATION.search(message)
            self._step_line(step, duration.group("time") if duration else "", "ok")
        elif event == "STEP_FAILURE":
            self.failed_step = self.failed_step or step
            self._in_failure = step
            self._step_line(step, "", "FAILED")
        elif event == "ASSET_CHECK_EVALUATION" and (check := CHECK.search(message)):
            self.checks.setdefault(step, []).append(f"{check['check']} {check['outcome']}")
            if check["outcome"] == "failed":
                self.failed_checks.setdefault(step, []).append(check["check"])
        elif "Not executing." in message:
            self.skipped += 1
        elif event in ("RUN_SUCCESS", "RUN_FAILURE"):
            self.outcome = "success" if event == "RUN_SUCCESS" else "failure"
            self._in_failure = "run" if event == "RUN_FAILURE" else None

    def _step_line(self, step: str, duration: str, status: str) -> None:
        checks = self.checks.pop(step, [])
        failed = [c.rsplit(" ", 1)[0] for c in checks if c.endswith("failed")]
        note = f"{len(checks)} checks" + (f", failed: {', '.join(failed)}" if failed else " passed") if checks else ""
        self.out.write(f"  {step:<24} {status:<6} {duration:>7}  {note}".rstrip() + "\n")
        self.out.flush()

    def finish(self, log_path: str | None) -> None:
        where = f" (the whole log: {log_path})" if log_path else ""
        if self.outcome == "success":
            self.out.write(f"==> run succeeded in {wall_time(time.monotonic() - self.began)}{where}\n")
            if self.data_dir and "training_loss_plot" in self.succeeded:
                self.out.write(f"    loss plot: {_beside(self.data_dir, LOSS_PLOT)}\n")
            return
        if not self.started:  # nothing ran: show what the command said
            self.out.write("\n".join(line for line in self.tail if line.strip()) + "\n")
            self.out.write(f"==> no run started{where}\n")
            return
        step = self.failed_step or "run"
        reason = self.reasons.get(step) or self.reasons.get("run") or "see the log"
        if "blocking asset check" in reason and step in self.failed_checks:  # name the checks, say why
            names = ", ".join(self.failed_checks[step])
            reason = f"blocking check {names} failed" + (f": {self.errors[step]}" if step in self.errors else "")
        skipped = f"; {self.skipped} later steps not run" if self.skipped else ""
        self.out.write(f"==> run failed at {step}{skipped}{where}\n    reason: {reason}\n")


def wall_time(seconds: float) -> str:
    """``42s``, ``3m05s`` or ``1h02m``: a run's wall time."""
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _beside(data_dir: str, name: str) -> str:
    """``name`` in the data folder: a local folder resolved against the current one, a URL as it is."""
    if "://" in data_dir:
        return f"{data_dir.rstrip('/')}/{name}"
    return str(Path(data_dir).expanduser().resolve() / name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log", help="write every line of the input here")
    parser.add_argument("--data-dir", help="the run's data folder (RECSYS_DATA_DIR): where the loss plot is")
    args = parser.parse_args(argv)
    summary = Summary(sys.stdout, data_dir=args.data_dir)
    with open(args.log, "w") if args.log else open("/dev/null", "w") as log:
        for line in sys.stdin:
            log.write(line)
            summary.feed(line)
    summary.finish(args.log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
