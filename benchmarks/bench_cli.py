"""How long the read-only ``recsys`` commands take on a published model, each in a fresh process.

    .venv/bin/python benchmarks/bench_cli.py                       # the models of RECSYS_DATA_DIR (data/)
    .venv/bin/python benchmarks/bench_cli.py --data-dir /tmp/run/data --user 1 --movie 1 --repeats 7

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
import time

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
    parser.add_argument("--data-dir", default=os.environ.get("RECSYS_DATA_DIR", "data"))
    parser.add_argument("--user", default="1")
    parser.add_argument("--movie", default="1")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    model = ["--model", os.path.join(args.data_dir, "recommendation_model.pth")]
    commands = {
        "recommend": ["recommend", "--user", args.user, *model],
        "recommend --rated": ["recommend", "--rated", f"{args.movie}:5", *model],
        "similar": ["similar", "--movie", args.movie, *model],
        "metrics": ["metrics", *model],
        "models": ["models", "--data-dir", args.data_dir],
    }
    rows = [(name, command, "") for name, command in commands.items()]
    rows.append(("recommend (torch imported)", commands["recommend"], "import torch\n"))
    print(f"| command | median s | fastest s | median CPU s | imports | (machine load {os.getloadavg()[0]:.1f}) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, command, pre in rows:
        _once(command, pre)  # warm the file cache
        runs = [_once(command, pre) for _ in range(args.repeats)]
        walls, cpus = [r[0] for r in runs], [r[1] for r in runs]
        print(
            f"| {name} | {statistics.median(walls):.2f} | {min(walls):.2f} | {statistics.median(cpus):.2f} "
            f"| {runs[-1][2]} | |"
        )


if __name__ == "__main__":
    main()
