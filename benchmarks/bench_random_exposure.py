"""Never below most popular, at any size: the pipeline on synthetic exports where who rates what is random.

    .venv/bin/python benchmarks/bench_random_exposure.py            # 1M and 3M ratings (~12 min on 2 cores)
    .venv/bin/python benchmarks/bench_random_exposure.py --sizes 1m

On such an export (``SampleSpec(taste_weight=0)``: a user's movies are drawn by popularity alone, their
stars still follow taste) no personal ranker can beat most popular at choosing *what* a user rates, so
the test is whether the pipeline publishes something no worse than most popular instead of failing.
For each size the real pipeline (``dg.materialize`` of every asset, defaults, one process) gets 80% of
the export (``train_test_split(test_size=0.2, random_state=42)``); the run must succeed and write
``user_recommendations``, whose lists are scored on the 20% it never saw (relevant = rating >= 4) beside
most popular fitted on the same 80%. Rewrites the ``bench_random_exposure`` block of
docs/benchmarks/index.md.
"""

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = {  # the shapes: 3M = 60,000 users x 20,000 movies
    "1m": {"n_ratings": 1_000_000, "n_users": 20_000, "n_movies": 10_000},
    "3m": {"n_ratings": 3_000_000, "n_users": 60_000, "n_movies": 20_000},
}


def run_size(name: str, shape: dict) -> dict:
    import pandas as pd

    from benchmarks.heldout import HeldOutSplit, run_pipeline
    from recsys_assets.core.ranking import popularity_ranker
    from recsys_assets.core.ranking.model import RankingModel
    from recsys_assets.core.sample_data import SampleSpec, generate_ratings
    from recsys_assets.core.splits import split_ratings

    table = generate_ratings(SampleSpec(**shape, taste_weight=0.0, seed=7)).to_pandas()
    frame = table.rename(columns={"userId": "user_id", "movieId": "movie_id"})
    seen_part, hidden = split_ratings(frame, test_size=0.2, random_state=42)
    with tempfile.TemporaryDirectory() as tmp:
        result, _, seconds = run_pipeline(seen_part, Path(tmp))
        out = {"size": name, **shape, "success": bool(result.success), "chain_seconds": seconds}
        data = Path(tmp) / "data"
        table_path = data / "tables" / "user_recommendations.parquet"
        out["lists_written"] = table_path.exists()
        if not (result.success and table_path.exists()):
            return out
        recs = pd.read_parquet(table_path)
        ranker = RankingModel.read(data / "ranking_model.pth")
        out["published"] = ranker.weights.describe()
        out["fallback"] = str(ranker.info.get("fallback", ""))
    split = HeldOutSplit.of(frame, seen_part, hidden)
    lists = split.metrics(split.lists(recs))
    popular = split.metrics(popularity_ranker(split.seen)(split.scored, 10))
    out.update(
        users_scored=int(len(split.scored)),
        ndcg=lists["ndcg_at_10"],
        popular_ndcg=popular["ndcg_at_10"],
        ratio=lists["ndcg_at_10"] / max(popular["ndcg_at_10"], 1e-12),
        coverage=lists["coverage"],
    )
    print(out, flush=True)
    return out


def report(rows: list[dict], meta: dict) -> str:
    lines = [
        "| export (random exposure) | run | published | users scored | `user_recommendations` NDCG@10 | most popular, same 80% | ratio | coverage | chain s |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        shape = f"{r['n_ratings'] / 1e6:g}M ratings ({r['n_users']:,} users x {r['n_movies']:,} movies)"
        if not (r["success"] and r["lists_written"]):
            lines.append(f"| {shape} | **failed** | nothing | - | - | - | - | - | {r['chain_seconds']:.0f} |")
            continue
        why = " (fallback: the chosen blend lost on validation)" if r["fallback"] else ""
        lines.append(
            f"| {shape} | succeeded | {r['published']}{why} | {r['users_scored']:,} | {r['ndcg']:.4f} | "
            f"{r['popular_ndcg']:.4f} | **{r['ratio']:.3f}x** | {r['coverage']:.3f} | {r['chain_seconds']:.0f} |"
        )
    load = "; 1-minute load average {:.1f} before and {:.1f} after".format(*meta["load_average"])
    lines += [
        "",
        f"(`benchmarks/bench_random_exposure.py`, {meta['date']}, {meta['machine']}{load}.)",
    ]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1m,3m")
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs",
        "load_average": [os.getloadavg()[0]],
    }
    rows = [run_size(name, SIZES[name]) for name in args.sizes.split(",")]
    meta["load_average"].append(os.getloadavg()[0])
    text = report(rows, meta)
    print(text)
    if not args.no_readme:
        from benchmarks.readme_blocks import replace_block

        replace_block("bench_random_exposure", text)


if __name__ == "__main__":
    main()
