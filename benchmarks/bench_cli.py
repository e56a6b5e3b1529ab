"""How long the read-only ``recsys`` commands take on a published model, each in a fresh process.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_cli.py     # publishes ml-latest-small's models, writes the docs block
    .venv/bin/python benchmarks/bench_cli.py --data-dir data --user 1 --movie 1 --repeats 7   # your own models

Each command runs ``--repeats`` times in a new interpreter (what a person typing it waits for: start-up,
imports, loading both files, the answer); the table shows the median and the fastest wall time, the
median CPU time, and whether the process imported PyTorch or Numba (the read path should import
neither: ``core/weights_file.py``). The goal (issue 35): every row at most 1.5 s. A row ``recommend
(torch imported)`` runs the same command with PyTorch imported first, what each call cost before the
read path was torch-free. The machine is usually shared: compare rows of one run.
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROBE = (
    "import sys\n"
    "{pre}from recsys_assets.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "heavy = sorted({{m.split('.')[0] for m in sys.modules}} & {{'torch', 'numba'}})\n"
    "print('HEAVY=' + (','.join(heavy) or 'none'), file=sys.stderr)\n"
    "raise SystemExit(code)\n"
)


def _once(args: list[str], pre: str = "") -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child, the heavy modules it imported)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(pre=pre), *args], capture_output=True, text=True, env=dict(os.environ)
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"recsys {' '.join(args)} failed:\n{proc.stderr}")
    heavy = next((line[6:] for line in proc.stderr.splitlines() if line.startswith("HEAVY=")), "?")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="published models to time (default: publish ml-latest-small's first)")
    parser.add_argument("--user", default="1")
    parser.add_argument("--movie", default="1")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.data_dir:
        print(table(args.data_dir, args.user, args.movie, args.repeats, "your models"))
        return
    from benchmarks.bench_serve import publish_models
    from benchmarks.readme_blocks import replace_block
    from recsys_assets.settings import movielens_dir

    with tempfile.TemporaryDirectory() as tmp:
        export, source = movielens_dir() / "ratings.csv", "ml-latest-small"
        if not export.exists():
            from recsys_assets.core.sample_data import SampleSpec, write_sample_export

            export, source = write_sample_export(Path(tmp) / "ratings.csv", SampleSpec()), "the 100,000-rating sample"
        publish_models(Path(tmp) / "data", export, seed=42)
        text = table(str(Path(tmp) / "data"), args.user, args.movie, args.repeats, source)
    print(text)
    replace_block("bench_cli", text)


def table(data_dir: str, user: str, movie: str, repeats: int, source: str) -> str:
    model = ["--model", os.path.join(data_dir, "recommendation_model.pth")]
    commands = {
        "recommend": ["recommend", "--user", user, *model],
        "recommend --rated": ["recommend", "--rated", f"{movie}:5", *model],
        "similar": ["similar", "--movie", movie, *model],
        "metrics": ["metrics", *model],
        "models": ["models", "--data-dir", data_dir],
    }
    rows = [(name, command, "") for name, command in commands.items()]
    rows.append(("recommend (torch imported)", commands["recommend"], "import torch\n"))
    load = os.getloadavg()[0]
    lines = ["| `recsys` command | median | fastest | median CPU | imports |", "| --- | ---: | ---: | ---: | --- |"]
    for name, command, pre in rows:
        _once(command, pre)  # warm the file cache
        runs = [_once(command, pre) for _ in range(repeats)]
        walls, cpus = [r[0] for r in runs], [r[1] for r in runs]
        median = statistics.median(walls)
        shown = f"**{median:.2f} s**" if name == "recommend" else f"{median:.2f} s"
        lines.append(f"| `{name}` | {shown} | {min(walls):.2f} s | {statistics.median(cpus):.2f} s | {runs[-1][2]} |")
    lines += [
        "",
        f"(`benchmarks/bench_cli.py`: each command {repeats} times in a fresh interpreter after one warm-up, models "
        f"published from {source}; goal 1.5 s; the last row imports PyTorch first, what every call cost before the "
        f"read path was torch-free; machine load {load:.1f}, 2 cores)",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
