"""Choose the ranking model's defaults without looking at the figures that get reported.

    .venv/bin/python benchmarks/tune_ranking.py [--inner-seeds 0,1] [--quick]
    .venv/bin/python benchmarks/tune_ranking.py --item-item     # EASE's lambda, on each MovieLens set at hand
    .venv/bin/python benchmarks/tune_ranking.py --blend [--outer-seeds 42,4]   # the blend's parts, chosen whole

The protocol's training split of ml-latest-small (80/20, ``random_state=42``: the
same split the reported figures use) is split again, 80/20, once per inner seed.
Each setting of the grid is fitted on the inner training part and scored
(NDCG@10, relevant = a rating of 4 or more, training movies excluded) on the
inner validation part; the mean over the inner seeds ranks the settings. The
protocol's validation split is never read here. Writes
``benchmarks/output/tune_ranking.md`` (the whole grid, best first).
"""

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from recsys_assets.settings import movielens_dir  # noqa: E402

ML_SMALL = movielens_dir() / "ratings.csv"  # RECSYS_MOVIELENS_DIR
OUT = ROOT / "benchmarks" / "output"

GRID = {  # a first, broader pass (factors 64-192, regularization 15-60, alpha 0.5-2, exponent 1-5) peaked at its edge
    "factors": [64, 128],
    "regularization": [20.0, 30.0, 45.0],
    "alpha": [1.0, 2.0, 4.0, 8.0],
    "confidence_exponent": [1.0, 3.0, 5.0, 6.0, 8.0],
    "iterations": [15],
}
QUICK = {
    "factors": [64, 128],
    "regularization": [30.0],
    "alpha": [1.0],
    "confidence_exponent": [1.0, 3.0],
    "iterations": [15],
}


def load_protocol_split():
    """The protocol's train and validation splits as index arrays, and the table sizes."""
    from recsys_assets.core.cleaning import clean_rating_data
    from recsys_assets.core.ids import build_mappings
    from recsys_assets.core.ingest import MovieDataLoader
    from recsys_assets.core.ranking.train import Ratings
    from recsys_assets.core.splits import split_ratings

    ratings = clean_rating_data(MovieDataLoader(ML_SMALL).load()).ratings
    users, movies = build_mappings(ratings)
    train, val = split_ratings(ratings)
    return (
        Ratings.from_frame(train, users, movies),
        Ratings.from_frame(val, users, movies),
        len(users),
        len(movies),
        (train, users, movies),
    )


def inner_ndcg(train, val, n_users, n_movies, params) -> float:
    from recsys_assets.core.ranking import HeldOut, UserItems, evaluate_rankers, factor_ranker, fit_ials

    matrix = UserItems.from_pairs(train.users, train.movies, n_users, n_movies, train.ratings)
    held = HeldOut.from_ratings(val.users, val.movies, val.ratings, n_users, n_movies)
    model = fit_ials(matrix, params)
    scores = evaluate_rankers({"m": factor_ranker(model.user_factors, model.item_factors, matrix)}, matrix, held)
    return scores["m"].metrics["ndcg_at_10"]


EASE_LAMBDAS = (50.0, 100.0, 200.0, 300.0, 500.0, 1000.0)


def tune_item_item(seeds: list[int]) -> None:
    """EASE's lambda (item-item alone, NDCG@10) on inner splits of each data set's protocol training split."""
    from benchmarks.bench_ranking import protocol_split
    from benchmarks.movielens import data_sets
    from recsys_assets.core.ranking.blend import Components, Weights, blend_top_n
    from recsys_assets.core.ranking.itemitem import fit_item_item
    from recsys_assets.core.ranking.metrics import ranking_metrics
    from recsys_assets.core.ranking.params import ItemItemParams
    from recsys_assets.core.ranking.train import inner_split

    lines = ["| data set | EASE lambda | mean NDCG@10 on the inner splits (item-item alone) |", "| --- | ---: | ---: |"]
    for name, frame in data_sets().items():
        train, _, n_users, n_movies = protocol_split(frame)  # the protocol's validation split is not read
        inners = [inner_split(train, n_users, n_movies, seed=seed) for seed in seeds]
        for lam in EASE_LAMBDAS:
            scores = []
            for inner in inners:
                items = fit_item_item(inner.matrix, ItemItemParams(method="ease", ease_lambda=lam))
                parts = Components(None, None, items.weights, inner.matrix.movie_counts(), items.rating_exponent)
                top = blend_top_n(parts, Weights(0, 1, 0), inner.matrix, inner.held.users, 10)
                scores.append(ranking_metrics(top.movies, inner.held.users, inner.held, 10).metrics["ndcg_at_10"])
            lines.append(f"| {name} | {lam:g} | {np.mean(scores):.4f} |")
            print(lines[-1], flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "tune_item_item.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT / 'tune_item_item.md'}")


BLEND_SETTINGS = (  # (iALS alpha, confidence exponent, EASE dropout): plain EASE first
    (4.0, 8.0, 0.0),
    (4.0, 8.0, 0.5),
    (3.0, 4.0, 0.0),
    (3.0, 4.0, 0.5),
)


def tune_blend(outer_seeds: list[int], inner_folds: int = 3) -> None:
    """The iALS confidence and EASE's dropout judged the way the pipeline chooses: the best blend
    (``choose.choose_blend``, diversity 0) of each setting's parts, pooled over the inner splits the ranking
    step uses (seeds 0, 1, 2) of each outer seed's protocol training split. Its validation split is not read."""
    from benchmarks.bench_ranking import protocol_split
    from benchmarks.movielens import data_sets
    from recsys_assets.core.ranking.choose import InnerFold, choose_blend
    from recsys_assets.core.ranking.ials import IALSParams, fit_ials
    from recsys_assets.core.ranking.itemitem import fit_item_item
    from recsys_assets.core.ranking.params import ItemItemParams
    from recsys_assets.core.ranking.train import _components, inner_split

    names = [f"alpha {a:g}, exponent {e:g}, EASE dropout {d:g}" for a, e, d in BLEND_SETTINGS]
    lines = [
        "| data set | outer seed | " + " | ".join(names) + " |",
        "| --- | ---: |" + " ---: |" * len(names),
    ]
    for name, frame in data_sets().items():
        for outer in outer_seeds:
            train, _, n_users, n_movies = protocol_split(frame, seed=outer)
            inners = [inner_split(train, n_users, n_movies, seed=seed) for seed in range(inner_folds)]
            ials = {  # each part fitted once per inner split, then combined
                (a, e): [fit_ials(i.matrix, IALSParams(alpha=a, confidence_exponent=e)) for i in inners]
                for a, e in dict.fromkeys((a, e) for a, e, _ in BLEND_SETTINGS)
            }
            ease = {
                d: [fit_item_item(i.matrix, ItemItemParams(ease_dropout=d)) for i in inners]
                for d in dict.fromkeys(d for _, _, d in BLEND_SETTINGS)
            }
            cells = []
            for alpha, exponent, dropout in BLEND_SETTINGS:
                folds = [
                    InnerFold(_components(f, e, i.matrix.movie_counts()), i.matrix, i.held)
                    for i, f, e in zip(inners, ials[alpha, exponent], ease[dropout], strict=True)
                ]
                choice = choose_blend(folds, diversity=0.0)
                best = max(c["inner_ndcg_at_10"] for c in choice.candidates)
                cells.append(f"{best:.4f} ({choice.weights.describe()})")
            lines.append(f"| {name} | {outer} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "tune_blend.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT / 'tune_blend.md'}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inner-seeds", default="0,1")
    parser.add_argument("--quick", action="store_true", help="a 4-point grid (smoke test)")
    parser.add_argument("--item-item", action="store_true", help="tune EASE's lambda instead of iALS")
    parser.add_argument("--blend", action="store_true", help="the iALS confidence and EASE's dropout, blended")
    parser.add_argument("--outer-seeds", default="42,4", help="protocol splits whose training part --blend reads")
    args = parser.parse_args()
    if args.blend:
        return tune_blend([int(s) for s in args.outer_seeds.split(",")])
    if args.item_item:
        return tune_item_item([int(s) for s in args.inner_seeds.split(",")])
    if not ML_SMALL.exists():
        sys.exit(f"{ML_SMALL} not found")
    from recsys_assets.core.ranking import IALSParams
    from recsys_assets.core.ranking.train import Ratings
    from recsys_assets.core.splits import split_ratings

    _, _, n_users, n_movies, (train_frame, users, movies) = load_protocol_split()
    inner = []
    for seed in [int(s) for s in args.inner_seeds.split(",")]:
        a, b = split_ratings(train_frame, test_size=0.2, random_state=seed)
        inner.append((Ratings.from_frame(a, users, movies), Ratings.from_frame(b, users, movies)))
    grid = QUICK if args.quick else GRID
    rows = []
    for values in itertools.product(*grid.values()):
        params = IALSParams(**dict(zip(grid, values)))
        started = time.perf_counter()
        scores = [inner_ndcg(a, b, n_users, n_movies, params) for a, b in inner]
        rows.append((float(np.mean(scores)), params, scores, time.perf_counter() - started))
        print(f"{rows[-1][0]:.4f} {params}", flush=True)
    rows.sort(key=lambda r: -r[0])
    lines = [
        "# Ranking model settings on inner splits of the protocol's training split (ml-latest-small)",
        "",
        f"Inner seeds {args.inner_seeds}; NDCG@10 on the inner validation part; the protocol's validation split is not used.",
        "",
        "| mean NDCG@10 | per inner split | factors | regularization | alpha | confidence exponent | iterations | s |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for mean, p, scores, seconds in rows:
        lines.append(
            f"| {mean:.4f} | {', '.join(f'{s:.4f}' for s in scores)} | {p.factors} | {p.regularization:g} | "
            f"{p.alpha:g} | {p.confidence_exponent:g} | {p.iterations} | {seconds:.1f} |"
        )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "tune_ranking.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:12]))
    print(f"wrote {OUT / 'tune_ranking.md'}")


if __name__ == "__main__":
    main()
