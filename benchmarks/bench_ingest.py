"""Ingest throughput: raw_ratings + cleaned_ratings against pyarrow.csv.read_csv.

For each export size (synthetic exports from the project's own generator,
cached in ``benchmarks/output/``) this runs, alternating and repeated, each in
a fresh subprocess so that peak RSS is per measurement:

* ``pyarrow``  - ``pyarrow.csv.read_csv(path)`` of the same file (the anchor);
* ``default``  - ``MovieDataLoader(path, <tmp>/ckpt.json, chunk_size=250,
  checkpoint_interval=50000).load()`` then ``clean_rating_data(df)``: the
  ``raw_ratings`` + ``cleaned_ratings`` path at the training document's defaults;
* ``tuned``    - the same with ``checkpoint_interval=1_000_000`` (``--tuned-interval``);
* ``nockpt``   - the same with ``checkpoint_file=None``.

It reports rows/s, the ratio to pyarrow measured in the same run (the machine
is shared and noisy: compare ratios, not absolute times), seconds split into
load and clean, and peak RSS (``VmHWM``) of each child.  The Markdown table is
printed and written to ``benchmarks/output/ingest.md`` (JSON next to it).

    .venv/bin/python benchmarks/bench_ingest.py                  # 1M, 5M, 25M
    .venv/bin/python benchmarks/bench_ingest.py --sizes 1M,5M --repeats 3
    .venv/bin/python benchmarks/bench_ingest.py --sizes 5M --profile default

Goals (the issue): ``default`` at least 0.5x pyarrow; 25M rows ingest on a 24 GB machine.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "benchmarks" / "output"
# recsys_assets.core.sample_data.GENERATOR_VERSION of the cached exports (a test keeps them equal)
GENERATOR_VERSION = 2
VARIANTS = {
    "pyarrow": "pyarrow.csv.read_csv(path)",
    "default": "chunk 250, interval 50,000, checkpointed (document defaults)",
    "tuned": "chunk 250, interval {tuned:,}, checkpointed",
    "nockpt": "chunk 250, interval 50,000, no checkpoint",
}
N_USERS, N_MOVIES, SEED = 162_000, 59_000, 20240501  # ml-25m-like shape


# ----------------------------------------------------------------- helpers
def parse_size(text: str) -> int:
    text = text.strip().upper().replace("_", "")
    mult = {"K": 1_000, "M": 1_000_000, "G": 1_000_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if text[-1:] in "KMG" else text) * mult)


def size_label(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def export_path(n: int) -> Path:
    return OUTPUT / f"ratings_{size_label(n)}_u{N_USERS}_m{N_MOVIES}_s{SEED}_g{GENERATOR_VERSION}.csv"


def peak_rss_mb() -> float:
    """Peak resident set size of this process (VmHWM), in MB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_of(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def machine_line() -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1024**2:.1f} GiB RAM"
    except OSError:
        pass
    import numpy
    import pandas
    import pyarrow

    return (
        f"nproc {os.cpu_count()}, {cpu}, {mem}; Python {platform.python_version()}, "
        f"pyarrow {pyarrow.__version__}, pandas {pandas.__version__}, numpy {numpy.__version__}"
    )


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ------------------------------------------------------------------ children
def import_core_only() -> None:
    """Make ``recsys_assets.core.*`` importable without ``recsys_assets/__init__.py``.

    The package's ``__init__`` imports torch and the training code (~370 MB RSS, seconds
    of import); the ingest path needs neither, so peak RSS measures ingest alone, and a
    broken edit elsewhere in the package does not stop the benchmark.
    """
    import types

    if "recsys_assets" not in sys.modules:
        pkg = types.ModuleType("recsys_assets")
        pkg.__path__ = [str(ROOT / "recsys_assets")]
        sys.modules["recsys_assets"] = pkg


def child_generate(args) -> dict:
    from recsys_assets.core.sample_data import SampleSpec, write_sample_export

    base = peak_rss_mb()
    t0 = time.perf_counter()
    write_sample_export(args.path, SampleSpec(n_ratings=args.n, n_users=N_USERS, n_movies=N_MOVIES, seed=SEED))
    return {"seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb(), "base_rss_mb": base}


def child_measure(args) -> dict:
    path = Path(args.path)
    if args.variant == "pyarrow":
        import pyarrow.csv as pacsv

        base = peak_rss_mb()
        t0 = time.perf_counter()
        table = pacsv.read_csv(path)
        t1 = time.perf_counter()
        peak = peak_rss_mb()
        import pyarrow.compute as pc

        check = [int(round(pc.sum(table.column(i)).as_py() * (2 if i == 2 else 1))) for i in range(4)]
        return {
            "rows": table.num_rows,
            "load_s": t1 - t0,
            "clean_s": 0.0,
            "peak_rss_mb": peak,
            "base_rss_mb": base,
            "check": check,
            "quarantined": 0,
        }

    from recsys_assets.core.cleaning import clean_rating_data
    from recsys_assets.core.ingest import MovieDataLoader

    interval = {"default": 50_000, "nockpt": 50_000, "tuned": args.tuned_interval}[args.variant]
    ckpt_dir = Path(tempfile.mkdtemp(prefix="bench-ckpt-", dir=OUTPUT))
    ckpt = None if args.variant == "nockpt" else ckpt_dir / "ckpt.json"
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
    try:
        base = peak_rss_mb()
        loader = MovieDataLoader(path, checkpoint_file=ckpt, chunk_size=250, checkpoint_interval=interval)
        if profiler:
            profiler.enable()
        t0 = time.perf_counter()
        df = loader.load()
        t1 = time.perf_counter()
        result = clean_rating_data(df)
        t2 = time.perf_counter()
        if profiler:
            profiler.disable()
        peak = peak_rss_mb()
        ckpt_bytes = sum(p.stat().st_size for p in ckpt_dir.rglob("*") if p.is_file())
        loader.discard_checkpoint()
    finally:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    r = result.ratings
    check = [
        int(r["user_id"].sum()),
        int(r["movie_id"].sum()),
        int(round(float(r["rating"].astype("float64").sum()) * 2)),
        int(r["timestamp"].sum()),
    ]
    out = {
        "rows": len(r),
        "raw_rows": len(df),
        "load_s": t1 - t0,
        "clean_s": t2 - t1,
        "peak_rss_mb": peak,
        "base_rss_mb": base,
        "check": check,
        "quarantined": len(result.quarantine),
        "checkpoints_written": loader.stats.checkpoints_written,
        "checkpoint_bytes": ckpt_bytes,
    }
    if profiler:
        import io
        import pstats

        for key in ("cumulative", "tottime"):
            s = io.StringIO()
            pstats.Stats(profiler, stream=s).sort_stats(key).print_stats(30)
            Path(args.profile).with_suffix(f".{key}.txt").write_text(s.getvalue())
        profiler.dump_stats(args.profile)
    return out


# -------------------------------------------------------------------- parent
def run_child(argv: list[str], timeout: float, mem_limit_mb: float) -> dict:
    """Run one measurement in a fresh interpreter; kill it past the time or memory limit."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *argv]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    killed, max_seen = None, 0.0
    while proc.poll() is None:
        rss = rss_of(proc.pid)
        max_seen = max(max_seen, rss)
        if rss > mem_limit_mb:
            killed = f"killed: RSS {rss:,.0f} MB over the {mem_limit_mb:,.0f} MB limit"
        elif time.perf_counter() - started > timeout:
            killed = f"killed: over the {timeout:.0f} s limit"
        if killed:
            proc.kill()
            break
        time.sleep(0.2)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - started
    if killed or proc.returncode != 0:
        tail = stderr.strip().splitlines()[-3:] if stderr else []
        return {
            "error": killed or f"exit {proc.returncode}: {' | '.join(tail)}",
            "wall_s": wall,
            "max_rss_seen_mb": max_seen,
        }
    result = json.loads(stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result


def warm_cache(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(64 << 20):
            pass


def fmt_rate(x: float) -> str:
    return f"{x / 1e6:.2f} M" if x >= 1e6 else f"{x / 1e3:.0f} k"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1M,5M,25M", help="comma-separated row counts (default 1M,5M,25M)")
    ap.add_argument("--variants", default="pyarrow,default,tuned,nockpt", help=f"subset of {','.join(VARIANTS)}")
    ap.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="rounds per size (default: 3 up to 1M, 2 up to 5M, 1 above); the best round is reported",
    )
    ap.add_argument("--tuned-interval", type=int, default=1_000_000)
    ap.add_argument("--timeout", type=float, default=900, help="seconds per child process")
    ap.add_argument("--mem-limit-gb", type=float, default=18, help="kill a child whose RSS passes this")
    ap.add_argument(
        "--profile",
        default=None,
        metavar="VARIANT",
        help="instead of measuring, cProfile one run of VARIANT per size into output/profile_*.txt",
    )
    # internal: child mode
    ap.add_argument("--child", choices=["generate", "measure"], help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--profile-out", dest="profile_out", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        sys.path.insert(0, str(ROOT))
        import_core_only()
        if args.child == "generate":
            out = child_generate(args)
        else:
            args.profile = args.profile_out
            out = child_measure(args)
        print(json.dumps(out))
        return 0

    OUTPUT.mkdir(parents=True, exist_ok=True)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        ap.error(f"unknown variant(s) {sorted(unknown)}")
    mem_limit = args.mem_limit_gb * 1024
    t_start = time.perf_counter()
    load_start = loadavg()
    machine = machine_line()
    print(machine, flush=True)
    print(f"load average at start: {load_start}", flush=True)

    generation, results = {}, {}
    for n in sizes:
        path = export_path(n)
        if not path.exists():
            print(f"[{size_label(n)}] generating {path.name} ...", flush=True)
            g = run_child(["generate", "--path", str(path), "--n", str(n)], args.timeout, mem_limit)
            generation[n] = g
            if "error" in g:
                print(f"[{size_label(n)}] generator failed: {g['error']}", flush=True)
                continue
            print(
                f"[{size_label(n)}] generated in {g['seconds']:.1f} s, peak RSS {g['peak_rss_mb']:,.0f} MB", flush=True
            )
        warm_cache(path)

        if args.profile:
            prof = OUTPUT / f"profile_{size_label(n)}_{args.profile}.pstats"
            r = run_child(
                [
                    "measure",
                    "--path",
                    str(path),
                    "--variant",
                    args.profile,
                    "--tuned-interval",
                    str(args.tuned_interval),
                    "--profile-out",
                    str(prof),
                ],
                args.timeout,
                mem_limit,
            )
            print(f"[{size_label(n)}] profile of {args.profile}: {r}", flush=True)
            print(prof.with_suffix(".cumulative.txt").read_text() if "error" not in r else "", flush=True)
            continue

        repeats = args.repeats or (3 if n <= 1_000_000 else 2 if n <= 5_000_000 else 1)
        runs = {v: [] for v in variants}
        for rnd in range(repeats):
            order = variants[rnd % len(variants) :] + variants[: rnd % len(variants)]  # rotate: fair under drift
            for v in order:
                r = run_child(
                    ["measure", "--path", str(path), "--variant", v, "--tuned-interval", str(args.tuned_interval)],
                    args.timeout,
                    mem_limit,
                )
                r["loadavg"] = loadavg()
                runs[v].append(r)
                if "error" in r:
                    print(f"[{size_label(n)}] round {rnd + 1} {v:8s} FAILED: {r['error']}", flush=True)
                else:
                    total = r["load_s"] + r["clean_s"]
                    print(
                        f"[{size_label(n)}] round {rnd + 1} {v:8s} load {r['load_s']:7.2f} s  clean {r['clean_s']:6.2f} s  "
                        f"{fmt_rate(n / total)} rows/s  peak {r['peak_rss_mb']:,.0f} MB  (load avg {r['loadavg']})",
                        flush=True,
                    )
        results[n] = runs

    load_end = loadavg()
    elapsed = time.perf_counter() - t_start
    if args.profile:
        return 0

    # ------------------------------------------------------------- report
    lines = [
        "| rows | file | variant | settings | load s | clean s | total s | rows/s | vs pyarrow | peak RSS MB | runs |",
        "| ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    problems, summary = [], {}
    for n, runs in results.items():
        ok = {v: [r for r in rs if "error" not in r] for v, rs in runs.items()}
        best = {v: min(rs, key=lambda r: r["load_s"] + r["clean_s"]) for v, rs in ok.items() if rs}
        anchor = best.get("pyarrow")
        anchor_rate = n / anchor["load_s"] if anchor else None
        checks = {tuple(r["check"]) for r in best.values()}
        if len(checks) > 1:
            problems.append(f"{size_label(n)}: column checksums differ between variants: {checks}")
        for v, r in best.items():
            if r["rows"] != n:
                problems.append(f"{size_label(n)} {v}: {r['rows']} rows, expected {n}")
            if r.get("quarantined"):
                problems.append(f"{size_label(n)} {v}: {r['quarantined']} rows quarantined, expected 0")
        mb = export_path(n).stat().st_size / 1e6
        for v in variants:
            settings = VARIANTS[v].format(tuned=args.tuned_interval)
            if v not in best:
                err = runs[v][0]["error"] if runs[v] else "not run"
                lines.append(
                    f"| {size_label(n)} | {mb:,.0f} MB | {v} | {settings} | - | - | - | - | - | "
                    f"{runs[v][0].get('max_rss_seen_mb', 0):,.0f}+ | failed: {err} |"
                )
                continue
            r = best[v]
            total = r["load_s"] + r["clean_s"]
            rate = n / total
            ratio = f"{rate / anchor_rate:.2f}x" if anchor_rate else "-"
            spread = [x["load_s"] + x["clean_s"] for x in ok[v]]
            runs_txt = f"{len(ok[v])}" + (f" ({min(spread):.2f}-{max(spread):.2f} s)" if len(spread) > 1 else "")
            clean = f"{r['clean_s']:.2f}" if v != "pyarrow" else "-"
            lines.append(
                f"| {size_label(n)} | {mb:,.0f} MB | {v} | {settings} | {r['load_s']:.2f} | {clean} | {total:.2f} | "
                f"{fmt_rate(rate)} | {ratio} | {r['peak_rss_mb']:,.0f} | {runs_txt} |"
            )
            summary.setdefault(size_label(n), {})[v] = {
                **r,
                "rows_per_s": rate,
                "vs_pyarrow": rate / anchor_rate if anchor_rate else None,
            }
    gen_lines = []
    for n, g in generation.items():
        if "error" in g:
            gen_lines.append(
                f"- generator, {size_label(n)} rows: FAILED ({g['error']}, max RSS seen {g['max_rss_seen_mb']:,.0f} MB)"
            )
        else:
            gen_lines.append(
                f"- generator, {size_label(n)} rows: {g['seconds']:.1f} s, peak RSS {g['peak_rss_mb']:,.0f} MB"
            )

    md = "\n".join(
        [
            f"Machine: {machine}.",
            f"Load average (1/5/15 min) at start {load_start}, at end {load_end}; run took {elapsed / 60:.1f} min.",
            "",
            *lines,
            "",
            "Best of the listed runs (alternating order); rows/s over load + clean; *vs pyarrow* is that rate over "
            "`pyarrow.csv.read_csv` of the same file in the same run; peak RSS is the child's VmHWM "
            "(children import `recsys_assets.core` only, not the package `__init__` with torch).",
            *([""] + gen_lines if gen_lines else []),
            *([""] + [f"- PROBLEM: {p}" for p in problems] if problems else []),
        ]
    )
    print("\n" + md)
    (OUTPUT / "ingest.md").write_text(md + "\n")
    (OUTPUT / "ingest.json").write_text(
        json.dumps(
            {
                "machine": machine,
                "loadavg_start": load_start,
                "loadavg_end": load_end,
                "elapsed_s": elapsed,
                "generation": {size_label(n): g for n, g in generation.items()},
                "summary": summary,
                "runs": {size_label(n): runs for n, runs in results.items()},
            },
            indent=1,
            default=str,
        )
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
