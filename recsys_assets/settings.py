"""Every environment variable recsys_assets reads: its name, its default and what it does.

This module is the one owner of the environment.  The resources, the executor
choice, the automation, the CLI and the scripts' defaults read their values
through it, and the README's table of settings is generated from it::

    python -m recsys_assets.settings       # prints the table the README shows
    python -m benchmarks.readme_blocks settings   # rewrites the README's settings block with it

A variable that is set but empty counts as unset (its default applies).

**The settings file.** Values that should outlive one shell go in ``recsys.env`` (``NAME=value``
lines; ``#`` comments, an optional ``export``, optional shell quotes), found through
``RECSYS_SETTINGS_FILE`` (default: ``recsys.env`` in the current folder; the scripts set it to the
repo root's). Importing this module fills every variable the environment does not set from it, so
``dg``, the daemon, every run worker and ``recsys`` read the same values; the environment wins::

    python -m recsys_assets.settings --set RECSYS_EXPORT_PATH=/data/ratings.csv   # write one value
    python -m recsys_assets.settings --shell     # `export` lines for the scripts (scripts/local_env.sh)

One writer (:func:`write_value`) and one reader (:func:`read_file`) share the file's one value syntax
(:func:`quote_value`, :func:`parse_value`): every value round-trips, apostrophes, quotes, spaces,
backslashes, ``$``, ``#`` and any Unicode included. Control characters and line breaks are refused
with a one-line error (:func:`check_value`): a value is one line of text, so no value can add a line
(another setting) to the file or to the ``--shell`` output.
"""

import os
import re
import shlex
import sys
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TRUE_WORDS = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Setting:
    """One environment variable: ``name``, ``default`` (a string, as the environment holds it) and ``doc``.

    ``shown_default`` is how the README shows a default that is computed elsewhere."""

    name: str
    default: str
    doc: str
    shown_default: str = ""

    def get(self, environ: Mapping[str, str] | None = None) -> str:
        """The variable's value (surrounding spaces removed), else the default."""
        value = (os.environ if environ is None else environ).get(self.name, "").strip()
        return value or self.default

    def is_set(self, environ: Mapping[str, str] | None = None) -> bool:
        return bool((os.environ if environ is None else environ).get(self.name, "").strip())

    def flag(self, environ: Mapping[str, str] | None = None) -> bool:
        """True when the value is one of 1, true, yes, on (any case)."""
        return self.get(environ).lower() in TRUE_WORDS

    def integer(self, environ: Mapping[str, str] | None = None, *, minimum: int = 1, maximum: int | None = None) -> int:
        """The value as an integer within ``minimum``..``maximum``, or a ``ValueError`` naming the variable.

        Read it where it is used, not at import: a bad value then fails only what needs it."""
        text = self.get(environ)
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{self.name} must be a whole number, got {text!r}") from None
        if value < minimum:
            raise ValueError(f"{self.name} must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ValueError(f"{self.name} must be at most {maximum}, got {value}")
        return value


SETTINGS_FILE = Setting(
    "RECSYS_SETTINGS_FILE",
    "recsys.env",
    "the settings file: `NAME=value` lines for any variable of this table; the environment wins over it",
    shown_default="`recsys.env` (the scripts: the repo root's)",
)
EXPORT_PATH = Setting("RECSYS_EXPORT_PATH", "data/ratings_export.csv", "the export to ingest")
DATA_DIR = Setting(
    "RECSYS_DATA_DIR",
    "data",
    "tables, checkpoints, model files and plots: a folder or an fsspec URL such as `s3://bucket/recsys` "
    '(see "Production deployment")',
    shown_default="`data/`",
)
WORK_DIR = Setting(
    "RECSYS_WORK_DIR",
    "",
    "local folder for in-progress checkpoints and locks",
    shown_default="`RECSYS_DATA_DIR` when local, else a temp folder",
)
DROP_DIR = Setting(
    "RECSYS_DROP_DIR", "", "drop folder for new exports (below)", shown_default="`<RECSYS_DATA_DIR>/exports`"
)
GZIP_MAX_BYTES = Setting(
    "RECSYS_GZIP_MAX_BYTES",
    str(4 << 30),
    "the most bytes a gzip-compressed export may decompress to (4 GiB); over it the load fails at once with "
    "a message naming this setting (a small file can expand a thousandfold)",
)
GZIP_MAX_ROWS = Setting(
    "RECSYS_GZIP_MAX_ROWS",
    "100000000",
    "the most data rows a gzip-compressed export may hold; over it the load fails at once, naming this setting",
)
GZIP_MAX_RATIO = Setting(
    "RECSYS_GZIP_MAX_RATIO",
    "50",
    "the most a gzip-compressed export may expand (decompressed bytes per compressed byte; ratings exports "
    "compress 3 to 10 times, a gzip bomb a thousand times), judged from its first MiB on; over it the load "
    "stops at once, naming this setting",
)
MOVIES_PATH = Setting(
    "RECSYS_MOVIES_PATH",
    "",
    "MovieLens `movies.csv` for titles in `user_recommendations` and `recsys`",
    shown_default="unset",
)
EXECUTOR = Setting(
    "RECSYS_EXECUTOR",
    "in_process",
    "`in_process` (every step in the run's process: one import of PyTorch per run), `multiprocess` (a process "
    'per step), `k8s`, `celery` (see "Production deployment")',
)
DEVICE = Setting(
    "RECSYS_DEVICE",
    "auto",
    "`auto` (cuda, then mps, then cpu), `cpu`, `cuda`, `cuda:N`, `mps`; an unavailable device fails the "
    "training step before it starts",
)
KERNEL = Setting(
    "RECSYS_KERNEL",
    "auto",
    "the SGD step: `auto` runs the compiled kernel (Numba on the CPU, Triton on CUDA) when installed, "
    "`eager` plain PyTorch operations (same updates, slower)",
)
THREADS = Setting(
    "RECSYS_THREADS",
    "",
    "CPU threads of both models' training",
    shown_default="the CPUs this process may use (affinity mask, cgroup CPU quota)",
)
SENSOR_INTERVAL = Setting("RECSYS_SENSOR_INTERVAL", "30", "seconds between looks at the current export (below)")
RETRAIN_CRON = Setting("RECSYS_RETRAIN_CRON", "0 3 * * *", "when `retrain_schedule` runs (below)")
TIMEZONE = Setting("RECSYS_TIMEZONE", "UTC", "the time zone of `RECSYS_RETRAIN_CRON`")
RETRAIN_FORCE = Setting(
    "RECSYS_RETRAIN_FORCE",
    "",
    "`1`: the schedule retrains even when the export is unchanged",
    shown_default="off",
)
EXPORT_RETRIES = Setting(
    "RECSYS_EXPORT_RETRIES",
    "2",
    "how many times the sensor runs an export again after a run for it failed by accident (a crash, a kill, "
    "a transient error; not a rejected model or a bad export); then it says how to retry by hand",
)
STALE_RUN_MINUTES = Setting(
    "RECSYS_STALE_RUN_MINUTES",
    "60",
    "a started run that logged nothing for this many minutes is taken for dead: the sensor marks it failed "
    "and retries its export",
)
FORCE_PUBLISH = Setting(
    "RECSYS_FORCE_PUBLISH",
    "",
    "`1`: publish a new model even when the promotion rule rejects it",
    shown_default="off",
)
ACCEPT_NEW_LINEAGE = Setting(
    "RECSYS_ACCEPT_NEW_LINEAGE",
    "",
    "`1`: publish models of a new export lineage (no ids shared with the published models, so nothing can "
    "be compared); a published demo sample is replaced without it",
    shown_default="off",
)
VERBOSE = Setting(
    "RECSYS_VERBOSE",
    "",
    "`1`: `scripts/run_pipeline.sh` prints Dagster's whole event log instead of one line per step "
    "(the whole log is always in `$DAGSTER_HOME/last_run.log`)",
    shown_default="off",
)
SERVE_HOST = Setting(
    "RECSYS_SERVE_HOST",
    "127.0.0.1",
    "the address `recsys serve` binds (loopback; `0.0.0.0` exposes the API to the network)",
)
SERVE_PORT = Setting("RECSYS_SERVE_PORT", "8000", "the port of `recsys serve`")
CELERY_BROKER = Setting(
    "RECSYS_CELERY_BROKER", "", "Celery broker URL (`RECSYS_EXECUTOR=celery`)", shown_default="unset"
)
CELERY_BACKEND = Setting("RECSYS_CELERY_BACKEND", "", "Celery result backend URL", shown_default="unset")
MOVIELENS_DIR = Setting(
    "RECSYS_MOVIELENS_DIR",
    "",
    "the MovieLens ml-latest-small folder (`ratings.csv`, `movies.csv`) the tests and benchmarks that need "
    "real data read; they are skipped without it",
    shown_default="`../shared/datasets/ml-latest-small` beside the checkout",
)
TEST_WORKERS = Setting(
    "RECSYS_TEST_WORKERS",
    "2",
    "the pytest-xdist workers `scripts/test.sh` runs the suite on (0: one process)",
)
DAGSTER_HOME = Setting(
    "DAGSTER_HOME",
    "",
    "Dagster's run and event storage",
    shown_default="set by the scripts to `.dagster_home/`",
)

# every Setting above, in the order they are declared (the README's table shows them in this order)
SETTINGS: tuple[Setting, ...] = tuple(value for value in list(globals().values()) if isinstance(value, Setting))


def data_path(name: str, environ: Mapping[str, str] | None = None) -> str:
    """``name`` inside ``RECSYS_DATA_DIR`` (a folder or a URL), e.g. ``data/recommendation_model.pth``."""
    return f"{DATA_DIR.get(environ).rstrip('/')}/{name}"


def movielens_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``RECSYS_MOVIELENS_DIR``, else ``../shared/datasets/ml-latest-small`` beside the checkout."""
    if MOVIELENS_DIR.is_set(environ):
        return Path(MOVIELENS_DIR.get(environ)).expanduser()
    return Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ml-latest-small"


_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
_REFUSED = {"Cc": "a control character", "Cs": "not valid text", "Zl": "a line break", "Zp": "a line break"}


def check_value(name: str, value: str) -> str:
    """``value``, or a one-line ``ValueError`` when it holds a control character (C0, DEL, C1: newline, CR,
    NUL, escape, ...) or a line break: a setting is one line of text."""
    for position, char in enumerate(value, 1):
        what = _REFUSED.get(unicodedata.category(char))
        if what is not None:
            raise ValueError(
                f"{name}: a value may not hold control characters or line breaks "
                f"(U+{ord(char):04X}, {what}, at character {position})"
            )
    return value


def quote_value(value: str) -> str:
    """``value`` as the settings file and the ``--shell`` lines hold it: bare when it is plain
    (letters, digits, ``@%+=:,./-_``), else single-quoted as a POSIX shell reads it (``'`` as ``'"'"'``)."""
    return shlex.quote(value)


def parse_value(text: str) -> str:
    """The value a settings line holds after its ``=`` (surrounding spaces already removed).

    Unquoted text is taken as written (``#`` and spaces included). Text that starts with a quote is read
    as one POSIX shell word (what :func:`quote_value` writes: ``'...'`` literal, ``"..."`` with ``\\``
    escapes, runs of them), optionally followed by a ``# comment``."""
    if not text or text[0] not in "'\"":
        return text
    try:
        words = shlex.split(text, comments=True, posix=True)
    except ValueError:
        raise ValueError("a quote is not closed") from None
    if len(words) != 1:
        raise ValueError("a quoted value must be one word (quote all of it)")
    return words[0]


def _parse_line(line: str, known: set[str]) -> tuple[str, str] | None:
    """``(name, value)`` of one line, None for a blank or comment line, else a ``ValueError``."""
    if not line.strip() or line.lstrip().startswith("#"):
        return None
    match = _LINE.match(line)
    if match is None or match.group(1) not in known:
        raise ValueError(f"unknown setting {match.group(1)}" if match else "not a NAME=value line")
    name = match.group(1)
    return name, check_value(name, parse_value(match.group(2)))


def _file_lines(path: Path) -> list[str]:
    """The file's lines, split at line feeds only (``str.splitlines`` also splits at U+001C, U+0085,
    U+2028, ...: a value holding one would be cut, not refused); a UTF-8 byte-order mark is dropped."""
    text = path.read_bytes().decode("utf-8-sig")  # not read_text: it would turn a lone CR into a line end
    return text.removesuffix("\n").split("\n") if text else []


def _known() -> set[str]:
    return {s.name for s in SETTINGS} - {SETTINGS_FILE.name}


def read_file(path: str | os.PathLike) -> dict[str, str]:
    """The ``NAME=value`` pairs of a settings file; a line that is not one, a name this module does not
    declare, or a value that cannot be read is a ``ValueError`` naming the file and line."""
    known, values = _known(), {}
    for number, line in enumerate(_file_lines(Path(path)), 1):
        try:
            pair = _parse_line(line, known)
        except ValueError as exc:
            raise ValueError(
                f"{path}:{number}: {exc} (the settings are listed by python -m recsys_assets.settings)"
            ) from None
        if pair is not None:
            values[pair[0]] = pair[1]
    return values


def settings_file(environ: Mapping[str, str] | None = None) -> Path:
    return Path(SETTINGS_FILE.get(environ)).expanduser()


def apply_file(environ=None) -> dict[str, str]:
    """Fill the variables ``environ`` (default ``os.environ``) does not set from the settings file; the
    values taken."""
    environ = os.environ if environ is None else environ
    path = settings_file(environ)
    if not path.is_file():
        return {}
    taken = {name: value for name, value in read_file(path).items() if not environ.get(name, "").strip()}
    environ.update(taken)
    return taken


def write_value(name: str, value: str, path: str | os.PathLike) -> None:
    """Set ``name=value`` in the settings file at ``path`` (created if missing), keeping its other lines.

    A value :func:`check_value` refuses leaves the file as it was."""
    if name not in _known():
        raise ValueError(f"unknown setting {name}")
    line = f"{name}={quote_value(check_value(name, value))}"
    if parse_value(quote_value(value)) != value:  # the reader must give back what is written
        raise ValueError(f"{name}: the value cannot be written so that it reads back the same")
    path = Path(path)
    lines = _file_lines(path) if path.is_file() else []
    kept = [old for old in lines if not ((m := _LINE.match(old)) and m.group(1) == name)]
    from recsys_assets.core.atomic import atomic_write_bytes

    atomic_write_bytes(path, ("\n".join([*kept, line]) + "\n").encode())


def shell_lines(values: Mapping[str, str]) -> str:
    """``export NAME=value`` lines that bash can ``eval`` or ``source``: each value quoted by
    :func:`quote_value` and checked by :func:`check_value` (so no value adds a command or a line)."""
    return "".join(f"export {name}={quote_value(check_value(name, value))}\n" for name, value in values.items())


def markdown_table() -> str:
    """The README's table of settings."""
    rows = ["| variable | default | what it sets |", "| --- | --- | --- |"]
    for s in SETTINGS:
        default = s.shown_default or (f"`{s.default}`" if s.default else "unset")
        rows.append(f"| `{s.name}` | {default} | {s.doc} |")
    return "\n".join(rows)


def _main(argv: list[str]) -> int:
    if argv[:1] == ["--shell"]:  # the file's values the environment lacks, as `export` lines
        sys.stdout.write(shell_lines(FROM_FILE))
    elif argv[:1] == ["--set"] and len(argv) == 2 and "=" in argv[1]:
        name, value = argv[1].split("=", 1)
        write_value(name, value, settings_file())
        sys.stdout.write(f"{name}={value} saved in {settings_file()}\n")
    else:
        sys.stdout.write(markdown_table() + "\n")
    return 0


try:  # the settings file fills what the environment does not set, for every reader of this module
    FROM_FILE = apply_file()
except (OSError, ValueError) as exc:  # a clear one-line reason wherever the import happens (dg shows it)
    raise ValueError(f"the settings file {settings_file()} cannot be used: {exc}") from None

if __name__ == "__main__":
    try:
        raise SystemExit(_main(sys.argv[1:]))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
