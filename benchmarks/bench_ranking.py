"""Top-10 recommendations, side by side: the shipped ranker against the field's anchors.

    .venv/bin/python benchmarks/bench_ranking.py                 # all parts (~15 min on 2 cores, + the 25M export once)
    .venv/bin/python benchmarks/bench_ranking.py --skip-scale    # the MovieLens parts only (~9 min with both sets)
    .venv/bin/python benchmarks/bench_ranking.py --skip-scale --outside-only  # part 2 alone (~5 min)
    .venv/bin/python benchmarks/bench_ranking.py --scale-only --device cuda

Each MovieLens part runs on ml-latest-small and, when ``RECSYS_ML100K`` (or ``--ml100k``) names its
ratings file, on MovieLens 100K (``benchmarks/movielens.py``).

Part 1, the protocol (``train_test_split(test_size=0.2, random_state=42)``,
relevant = a validation rating of 4 or more, training movies never recommended), every ranker
in this one process on the same users: the shipped ranking model (``train_ranking_model``
with its defaults: the candidate chosen on an inner split, with diversity 1 and 0), the shipped rating model (``train_model`` defaults), most popular, the
rating model's score plus a popularity prior (its weight chosen on an inner split of the
training data), BPR, item-kNN (cosine) and iALS from ``implicit`` at the anchor settings
(confidence 1 + rating, 64 factors, regularization 30, 15 iterations), and EASE (closed form,
lambda 200, float32).

Part 1b, more outer splits: the shipped ranker (defaults) against the iALS anchor on the same protocol
with other ``random_state`` values (``--protocol-seeds``), the ratio per split and its mean.

Part 2, the held-out check from outside: for each outer seed the real pipeline
(``dg.materialize`` of every asset, defaults) gets 80% of the file as its export; its published
``user_recommendations`` are scored on the 20% it never saw, beside anchor iALS and most
popular fitted on the same 80%, with coverage, top-100 share and the most-shown movie's share for each; and
the published lists at each exposure limit (``exposure.SHARES``: the NDCG-against-coverage curve, plotted
to ``docs/benchmarks/exposure_curve_*.png``).

Part 3, scale: the 25M-rating synthetic export (162,000 users x 59,000 movies, cached with the
other benchmarks' exports): both fits of ``train_ranking_model`` plus top-10 with explanations
for every user, in a subprocess whose peak RSS is reported.

Writes ``benchmarks/output/ranking.md`` and ``ranking.json`` and rewrites the README's
recommendation blocks: the MovieLens parts (``bench_ranking``, when they ran in this invocation) and
the scale figure (``bench_ranking_scale``, in both READMEs, when part 3 ran).
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from recsys_assets.settings import movielens_dir  # noqa: E402

ML_SMALL = movielens_dir() / "ratings.csv"  # RECSYS_MOVIELENS_DIR
OUT = ROOT / "benchmarks" / "output"
# recsys_assets.core.sample_data.GENERATOR_VERSION of the cached exports (a test keeps them equal)
GENERATOR_VERSION = 2
N_USERS, N_MOVIES, SEED = 162_000, 59_000, 20240501  # the 25M export bench_ingest.py and bench_scale.py cache
METRICS = [
    "ndcg_at_10",
    "precision_at_10",
    "recall_at_10",
    "hit_rate_at_10",
    "coverage",
    "top100_share",
    "max_movie_share",
    "median_rating_count",
]


# ---- anchors ------------------------------------------------------------------------------------
def anchor_ials(matrix, factors=64, regularization=30.0, iterations=15, seed=0):
    """iALS from implicit as a user would call it: confidence 1 + rating."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=factors, regularization=regularization, iterations=iterations, random_state=seed
        )
        model.fit(matrix.to_scipy(1.0 + matrix.values), show_progress=False)
    return model.user_factors, model.item_factors


def ease_scores(matrix, lam=200.0):
    X = matrix.to_scipy(np.ones(matrix.nnz, dtype=np.float32)).toarray()
    G = X.T @ X
    G[np.diag_indices_from(G)] += lam
    P = np.linalg.inv(G)
    B = P / -np.diag(P)
    B[np.diag_indices_from(B)] = 0.0
    return X, B


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


# ---- part 1 ---------------------------------------------------------------------------------------
PROTOCOL_SEED = 42  # the protocol's split (`train_test_split(..., random_state=42)`)


def protocol_split(frame, seed=PROTOCOL_SEED):
    from recsys_assets.core.ids import IdMapping
    from recsys_assets.core.ranking.train import Ratings
    from recsys_assets.core.splits import split_ratings

    users, movies = IdMapping.fit(frame["user_id"]), IdMapping.fit(frame["movie_id"])
    train, val = split_ratings(frame, test_size=0.2, random_state=seed)
    return Ratings.from_frame(train, users, movies), Ratings.from_frame(val, users, movies), len(users), len(movies)


def rating_model(train, val, n_users, n_movies):
    from recsys_assets.core.rating.dataset import MovieRatingDataset
    from recsys_assets.core.rating.train_config import TrainConfig
    from recsys_assets.core.rating.training import train_model

    result = train_model(
        MovieRatingDataset(train.users, train.movies, train.ratings),
        MovieRatingDataset(val.users, val.movies, val.ratings),
        n_users,
        n_movies,
        TrainConfig(),
    )
    state = result.model.state_dict()
    return (
        state["user_factors.weight"].numpy(),
        state["movie_factors.weight"].numpy(),
        state["movie_bias.weight"].numpy()[:, 0],
        float(state["global_mean"]),
    )


def prior_weight(train, n_users, n_movies) -> float:
    """The popularity prior's weight for the rating model, chosen on an inner 80/20 split of ``train``."""
    from recsys_assets.core.ranking import HeldOut, UserItems, evaluate_rankers
    from recsys_assets.core.ranking.topn import top_n
    from recsys_assets.core.ranking.train import Ratings

    rng = np.random.default_rng(0)
    inner = rng.random(len(train)) < 0.8
    a = Ratings(train.users[inner], train.movies[inner], train.ratings[inner])
    b = Ratings(train.users[~inner], train.movies[~inner], train.ratings[~inner])
    P, Q, bias, _ = rating_model(a, b, n_users, n_movies)
    seen = UserItems.from_pairs(a.users, a.movies, n_users, n_movies)
    held = HeldOut.from_ratings(b.users, b.movies, b.ratings, n_users, n_movies)
    log_counts = np.log1p(seen.movie_counts()).astype(np.float32)
    best = (-1.0, 0.0)
    for w in (0.0, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0):
        ranker = lambda users, k, w=w: top_n(P, Q, seen, k=k, users=users, movie_bias=bias + w * log_counts).movies  # noqa: E731
        ndcg = evaluate_rankers({"x": ranker}, seen, held)["x"].metrics["ndcg_at_10"]
        best = max(best, (ndcg, w))
    return best[1]


def part_protocol(frame) -> list[dict]:
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    from implicit.nearest_neighbours import CosineRecommender
    from threadpoolctl import threadpool_limits

    from recsys_assets.core.ranking import HeldOut, UserItems, evaluate_rankers, factor_ranker, popularity_ranker
    from recsys_assets.core.ranking.ials import FACTORS, REGULARIZATION
    from recsys_assets.core.ranking.train import CandidateSettings, train_ranking_model

    train, val, n_users, n_movies = protocol_split(frame)
    seen = UserItems.from_pairs(train.users, train.movies, n_users, n_movies, train.ratings)
    held = HeldOut.from_ratings(val.users, val.movies, val.ratings, n_users, n_movies)
    rankers, fit_seconds, shipped_diversity = {}, {}, {}

    for diversity in (1.0, 0.0):
        settings = CandidateSettings(FACTORS, REGULARIZATION, diversity=diversity)
        shipped = train_ranking_model(train, val, n_users, n_movies, candidates=settings)
        chosen = shipped.selection.params
        name = (
            f"shipped ranker: {shipped.blend.weights.describe()} (`ranking_model`; iALS {chosen.factors} factors, "
            f"reg {chosen.regularization:g}; diversity {diversity:g})"
        )
        # what it takes to produce the scored model: the choices on the inner split and the held-out fit
        fit_seconds[name] = sum(v for k, v in shipped.seconds.items() if k.startswith(("choosing", "held-out")))
        rankers[name] = shipped.evaluation_ranker(seen)
        shipped_diversity[name] = diversity

    (P, Q, bias, _), fit_seconds["rating model: squared-error MF (`recommendation_model`)"] = timed(
        lambda: rating_model(train, val, n_users, n_movies)
    )
    rankers["rating model: squared-error MF (`recommendation_model`)"] = factor_ranker(P, Q, seen, movie_bias=bias)
    rankers["most popular"] = popularity_ranker(seen)
    fit_seconds["most popular"] = 0.0
    w = prior_weight(train, n_users, n_movies)
    prior = bias + w * np.log1p(seen.movie_counts()).astype(np.float32)
    name = f"rating model + popularity prior (weight {w:g}, chosen on an inner split)"
    rankers[name] = factor_ranker(P, Q, seen, movie_bias=prior)
    fit_seconds[name] = fit_seconds["rating model: squared-error MF (`recommendation_model`)"]

    binary = seen.to_scipy(np.ones(seen.nnz, dtype=np.float32))
    with threadpool_limits(1, "blas"):
        bpr = BayesianPersonalizedRanking(factors=64, iterations=100, random_state=0)
        _, fit_seconds["BPR (`implicit`, 64 factors, 100 iterations)"] = timed(
            lambda: bpr.fit(binary, show_progress=False)
        )
    rankers["BPR (`implicit`, 64 factors, 100 iterations)"] = factor_ranker(bpr.user_factors, bpr.item_factors, seen)
    knn = CosineRecommender(K=50)
    _, fit_seconds["item-kNN, cosine (`implicit`, K 50)"] = timed(lambda: knn.fit(binary, show_progress=False))

    def knn_ranker(users, k):
        ids, _ = knn.recommend(users, binary[users], N=k, filter_already_liked_items=True)
        return ids

    rankers["item-kNN, cosine (`implicit`, K 50)"] = knn_ranker
    (X, B), fit_seconds["EASE (closed form, lambda 200, float32)"] = timed(lambda: ease_scores(seen))
    rankers["EASE (closed form, lambda 200, float32)"] = lambda users, k: _ease_top(X, B, seen, users, k)
    (aP, aQ), fit_seconds["iALS anchor (`implicit`, confidence 1 + rating, 64 factors, reg 30, 15 iterations)"] = timed(
        lambda: anchor_ials(seen)
    )
    rankers["iALS anchor (`implicit`, confidence 1 + rating, 64 factors, reg 30, 15 iterations)"] = factor_ranker(
        aP, aQ, seen
    )

    scores = evaluate_rankers(rankers, seen, held)
    rows = []
    for name, s in scores.items():
        rows.append(
            {
                "ranker": name,
                **{k: s.metrics[k] for k in METRICS},
                "fit_seconds": fit_seconds[name],
                "users": s.metrics["users_evaluated"],
                **({"diversity": shipped_diversity[name]} if name in shipped_diversity else {}),
            }
        )
        print(f"{s.metrics['ndcg_at_10']:.4f}  {name}", flush=True)
    return rows


def _ease_top(X, B, seen, users, k):
    """EASE's top-k for ``users``: scores ``X[users] @ B``, their training movies masked."""
    from recsys_assets.core.ranking import UserItems
    from recsys_assets.core.ranking.topn import top_n

    rows, cols = seen.pairs(users)
    return top_n(X[users], B.T, UserItems.from_pairs(rows, cols, len(users), seen.n_movies), k=k).movies


def part_protocol_seeds(frame, rows: list[dict], seeds: list[int]) -> list[dict]:
    """The shipped ranker (defaults, diversity 1) against the iALS anchor on more outer splits of the same
    protocol: one split's draw moves the ratio by a few percent, so its mean over splits is the steadier figure.
    Part 1's split (``PROTOCOL_SEED``) reuses its rows."""
    from recsys_assets.core.ranking import HeldOut, UserItems, evaluate_rankers, factor_ranker
    from recsys_assets.core.ranking.ials import FACTORS, REGULARIZATION
    from recsys_assets.core.ranking.train import CandidateSettings, train_ranking_model

    shipped = next(r for r in rows if r.get("diversity") == 1.0)
    anchor = next(r for r in rows if r["ranker"].startswith("iALS anchor"))
    out = [{"seed": PROTOCOL_SEED, "shipped": shipped["ndcg_at_10"], "anchor": anchor["ndcg_at_10"]}]
    for seed in seeds:
        if seed == PROTOCOL_SEED:
            continue
        train, val, n_users, n_movies = protocol_split(frame, seed=seed)
        seen = UserItems.from_pairs(train.users, train.movies, n_users, n_movies, train.ratings)
        held = HeldOut.from_ratings(val.users, val.movies, val.ratings, n_users, n_movies)
        result = train_ranking_model(
            train, val, n_users, n_movies, candidates=CandidateSettings(FACTORS, REGULARIZATION)
        )
        aP, aQ = anchor_ials(seen)
        scores = evaluate_rankers(
            {"shipped": result.evaluation_ranker(seen), "anchor": factor_ranker(aP, aQ, seen)}, seen, held
        )
        out.append({"seed": seed, **{name: s.metrics["ndcg_at_10"] for name, s in scores.items()}})
    for r in out:
        r["ratio"] = r["shipped"] / r["anchor"]
        print(f"seed {r['seed']}: shipped {r['shipped']:.4f}, anchor {r['anchor']:.4f}: {r['ratio']:.3f}x", flush=True)
    return out


def _seeds_summary(rows: list[dict]) -> tuple[float, float]:
    """Mean ratio and its standard error over the outer splits."""
    ratios = np.array([r["ratio"] for r in rows])
    se = float(ratios.std(ddof=1) / np.sqrt(len(ratios))) if len(ratios) > 1 else float("nan")
    return float(ratios.mean()), se


# ---- part 2 ---------------------------------------------------------------------------------------
def part_outside(frame, seeds) -> list[dict]:
    import pandas as pd

    from benchmarks.heldout import HeldOutSplit, run_pipeline
    from recsys_assets.core.ranking import factor_ranker, popularity_ranker
    from recsys_assets.core.ranking.exposure import SHARES
    from recsys_assets.core.recommender import Recommender
    from recsys_assets.core.splits import split_ratings
    from recsys_assets.defs.resources import RecsysStorage

    rows = []
    for seed in seeds:
        seen_part, hidden = split_ratings(frame, test_size=0.2, random_state=seed)
        with tempfile.TemporaryDirectory() as tmp:
            result, resources, chain_seconds = run_pipeline(seen_part, Path(tmp))
            assert result.success
            recs = pd.read_parquet(Path(tmp) / "data" / "tables" / "user_recommendations.parquet")
            # the published ranking model's own order, before the lists' rules (evidence, coherence, exposure)
            published = Recommender.from_store(resources["storage"].store, RecsysStorage.MODEL)
            published.coherent = published.support = published.exposure = False
            ranked = published.recommend_many(published.ranker.users.ids, k=10)
            # the lists (every rule on) at each exposure limit: the NDCG-against-coverage curve
            published.coherent = published.support = published.exposure = True
            base, curve = published.ranker, {}
            for share in SHARES:
                published.ranker = base.with_exposure_limit(share)
                curve[share] = published.recommend_many(base.users.ids, k=10)
        split = HeldOutSplit.of(frame, seen_part, hidden)
        users = split.scored  # users the pipeline saw and can be scored
        aP, aQ = anchor_ials(split.seen)
        out = {"seed": seed, "chain_seconds": chain_seconds, "users": int(len(users))}
        for name, recommended in (
            ("pipeline", split.lists(recs)),
            ("pipeline_ranking", split.lists(ranked)),
            ("ials_anchor", factor_ranker(aP, aQ, split.seen)(users, 10)),
            ("most_popular", popularity_ranker(split.seen)(users, 10)),
        ):
            metrics = split.metrics(recommended)
            out[name] = metrics["ndcg_at_10"]
            for m in ("coverage", "top100_share", "max_movie_share"):
                out[f"{name}_{m}"] = metrics[m]
        out["curve"] = []
        for share, table in curve.items():
            metrics = split.metrics(split.lists(table))
            out["curve"].append(
                {
                    "max_exposure": share,
                    **{m: metrics.get(m, 0.0) for m in ("ndcg_at_10", "coverage", "top100_share", "max_movie_share")},
                }
            )
        out["vs_ials"] = out["pipeline"] / out["ials_anchor"]
        out["vs_popular"] = out["pipeline"] / out["most_popular"]
        out["ranking_vs_ials"] = out["pipeline_ranking"] / out["ials_anchor"]
        print(
            f"seed {seed}: pipeline {out['pipeline']:.4f}, iALS anchor {out['ials_anchor']:.4f} "
            f"({out['vs_ials']:.3f}x; the ranking model's own order {out['ranking_vs_ials']:.3f}x), most popular {out['most_popular']:.4f} ({out['vs_popular']:.2f}x)",
            flush=True,
        )
        rows.append(out)
    return rows


# ---- part 3 ---------------------------------------------------------------------------------------
def export_25m() -> Path:
    path = OUT / f"ratings_25M_u{N_USERS}_m{N_MOVIES}_s{SEED}_g{GENERATOR_VERSION}.csv"
    if not path.exists():
        from recsys_assets.core.sample_data import SampleSpec, write_sample_export

        print(f"generating {path.name} ...", flush=True)
        write_sample_export(path, SampleSpec(n_ratings=25_000_000, n_users=N_USERS, n_movies=N_MOVIES, seed=SEED))
    return path


def scale_child(path: str, device: str) -> dict:
    """In a subprocess: read the export, split it, choose + fit + evaluate + refit, top-10 with reasons for every user.

    The split is ``train_test_split(test_size=0.2, random_state=42)`` over row positions, which assigns the
    same rows as the ``rating_splits`` asset's split of the table, without holding a DataFrame."""
    import pyarrow.csv as pv
    from sklearn.model_selection import train_test_split

    from recsys_assets.core.ids import IdMapping
    from recsys_assets.core.ranking.ials import FACTORS, REGULARIZATION
    from recsys_assets.core.ranking.model import RankingModel
    from recsys_assets.core.ranking.train import Ratings, train_ranking_model
    from recsys_assets.core.recommender import Recommender

    phases = {}
    started = time.perf_counter()
    table = pv.read_csv(path, convert_options=pv.ConvertOptions(include_columns=["userId", "movieId", "rating"]))
    raw_users, raw_movies = table["userId"].to_numpy(), table["movieId"].to_numpy()
    ratings = table["rating"].to_numpy().astype(np.float32)
    del table
    users, movies = IdMapping.fit(raw_users), IdMapping.fit(raw_movies)
    u, m = users.encode(raw_users).astype(np.int32), movies.encode(raw_movies).astype(np.int32)
    del raw_users, raw_movies
    train_idx, val_idx = train_test_split(np.arange(len(ratings)), test_size=0.2, random_state=42)
    train = Ratings(u[train_idx], m[train_idx], ratings[train_idx])
    val = Ratings(u[val_idx], m[val_idx], ratings[val_idx])
    del u, m, ratings, train_idx, val_idx
    phases["read + split"] = time.perf_counter() - started
    result = train_ranking_model(
        train, val, len(users), len(movies), device=device, factors=FACTORS, regularization=REGULARIZATION
    )
    phases.update(result.seconds)
    model = RankingModel(
        result.published_model.user_factors,
        result.published_model.item_factors,
        users,
        movies,
        result.published_seen,
        result.published_model.params,
        weights=result.blend.weights,
        item_item=result.published_item_item.weights if result.published_item_item else None,
        item_exponent=result.published_item_item.rating_exponent if result.published_item_item else 0.0,
    )
    rec = Recommender(
        global_mean=3.5,
        user_bias=np.zeros(len(users)),
        movie_bias=np.zeros(len(movies)),
        user_factors=np.zeros((len(users), 1), np.float32),
        movie_factors=np.zeros((len(movies), 1), np.float32),
        users=users,
        movies=movies,
        ranker=model,
    )
    t = time.perf_counter()
    frame = rec.recommend_many(users.ids, k=10)
    phases["top-10 with reasons for every user"] = time.perf_counter() - t
    return {
        "phases": phases,
        "fit_and_top10_seconds": sum(v for k, v in phases.items() if k != "read + split"),
        "ranking_step_seconds": sum(result.seconds.values()),
        "blend": result.blend.weights.describe()
        + (f", item-item {result.published_item_item.method}" if result.published_item_item else ""),
        "chosen": {
            "factors": result.selection.params.factors,
            "regularization": result.selection.params.regularization,
        },
        "ndcg_at_10": result.comparison.ndcg,
        "popular_ndcg_at_10": result.comparison.baseline_ndcg,
        "rows": len(frame),
        "users": len(users),
        "movies": len(movies),
        "device": device,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def part_scale(device: str) -> dict:
    path = export_25m()
    code = (
        f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); from benchmarks.bench_ranking import scale_child; "
        f"print('RESULT ' + json.dumps(scale_child({str(path)!r}, {device!r})))"
    )
    load_before = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"scale run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    out = json.loads(line[len("RESULT ") :])
    out["load_average"] = [load_before, os.getloadavg()[0]]  # 1-minute load: other work on the machine's cores
    print(
        f"25M: ranking step {out['ranking_step_seconds']:.0f} s, + top-10 {out['fit_and_top10_seconds']:.0f} s, "
        f"peak RSS {out['peak_rss_mb']:,.0f} MB {out['phases']}",
        flush=True,
    )
    return out


# ---- report ---------------------------------------------------------------------------------------
def _protocol_table(name: str, rows: list[dict], short: bool = False) -> list[str]:
    table = [
        f"| top-10 ranker, {name}, same split | NDCG@10 | precision@10 | recall@10 | hit rate | coverage | "
        "top-100 share | most-shown movie's share | median ratings of the recommended | fit s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    best = max(r["ndcg_at_10"] for r in rows)
    anchor = next((r["ndcg_at_10"] for r in rows if r["ranker"].startswith("iALS anchor")), float("nan"))
    keep = ("shipped", "iALS anchor", "EASE", "most popular")
    for r in sorted(rows, key=lambda r: -r["ndcg_at_10"]):
        if short and not r["ranker"].startswith(keep):
            continue
        ndcg = f"**{r['ndcg_at_10']:.3f}**" if r["ndcg_at_10"] == best else f"{r['ndcg_at_10']:.3f}"
        ratio = f" ({r['ndcg_at_10'] / anchor:.3f}x iALS)" if r["ranker"].startswith("shipped") else ""
        table.append(
            f"| {r['ranker']} | {ndcg}{ratio} | {r['precision_at_10']:.3f} | {r['recall_at_10']:.3f} | "
            f"{r['hit_rate_at_10']:.3f} | {r['coverage']:.3f} | {r.get('top100_share', float('nan')):.2f} | "
            f"{r.get('max_movie_share', float('nan')):.2f} | {r['median_rating_count']:.0f} | {r['fit_seconds']:.1f} |"
        )
    return table


def _seeds_table(seeds: dict) -> list[str]:
    first = next(iter(seeds.values()))
    table = [
        "| data set | " + " | ".join(f"seed {r['seed']}" for r in first) + " | mean (standard error) |",
        "| --- |" + " ---: |" * (len(first) + 1),
    ]
    for name, rows in seeds.items():
        mean, se = _seeds_summary(rows)
        cells = " | ".join(f"{r['ratio']:.3f}x" for r in rows)
        table.append(f"| {name} | {cells} | **{mean:.3f}x** ({se:.3f}) |")
    return table


def _outside_table(outside: dict) -> list[str]:
    table = [
        "| data set | outer split seed | users scored | ranker | NDCG@10 | vs iALS | vs most popular | coverage | "
        "top-100 share | most-shown movie's share | chain s |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    names = (
        ("pipeline", "pipeline's `user_recommendations`"),
        ("pipeline_ranking", "ranking model's own order"),
        ("ials_anchor", "iALS anchor, same 80%"),
        ("most_popular", "most popular, same 80%"),
    )
    for name, rows in outside.items():
        for r in rows:
            for key, label in names:
                if key not in r:
                    continue
                ndcg = f"**{r[key]:.4f}**" if key == "pipeline" else f"{r[key]:.4f}"
                shares = " | ".join(f"{r.get(f'{key}_{m}', float('nan')):{f}}" for m, f in SHARE_COLUMNS)
                seconds = f"{r['chain_seconds']:.0f}" if key == "pipeline" else ""
                table.append(
                    f"| {name} | {r['seed']} | {r['users']} | {label} | {ndcg} | {r[key] / r['ials_anchor']:.3f}x | "
                    f"{r[key] / r['most_popular']:.2f}x | {shares} | {seconds} |"
                )
    return table


SHARE_COLUMNS = (("coverage", ".3f"), ("top100_share", ".2f"), ("max_movie_share", ".2f"))


def _curve_table(outside: dict) -> list[str]:
    """The published lists at each exposure limit (every other rule on), against the iALS anchor on the same split."""
    table = [
        "| data set (seed) | exposure limit | NDCG@10 | vs iALS | coverage | vs iALS's coverage | top-100 share | "
        "most-shown movie's share |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, rows in outside.items():
        for r in rows[:1]:
            for point in r.get("curve", []):
                share = "none" if point["max_exposure"] >= 1 else f"{point['max_exposure']:.0%}"
                table.append(
                    f"| {name} ({r['seed']}) | {share} | {point['ndcg_at_10']:.4f} | "
                    f"{point['ndcg_at_10'] / r['ials_anchor']:.3f}x | {point['coverage']:.3f} | "
                    f"{point['coverage'] / r['ials_anchor_coverage']:.2f}x | {point['top100_share']:.2f} | "
                    f"{point['max_movie_share']:.3f} |"
                )
    return table


def plot_curves(outside: dict, path: Path) -> None:
    """NDCG@10 against coverage at each exposure limit, one panel per data set (first seed), iALS marked."""
    from recsys_assets.core.plots import plot_exposure_curve

    for name, rows in outside.items():
        r = rows[0]
        if r.get("curve"):
            others = {
                "iALS anchor": (r["ials_anchor_coverage"], r["ials_anchor"]),
                "most popular": (r["most_popular_coverage"], r["most_popular"]),
            }
            target = path.with_name(f"{path.stem}_{name.replace(' ', '_').lower()}{path.suffix}")
            plot_exposure_curve(
                r["curve"], target, k=10, chosen=0.10, others=others, scored_on="the 20% the pipeline never saw"
            )


def _scale_text(scale: dict) -> str:
    phases = " + ".join(f"{k} {v:.0f} s" for k, v in scale["phases"].items())
    return (
        f"On the 25M-rating synthetic export ({scale['users']:,} users x {scale['movies']:,} movies, {scale['device']}; "
        f"chosen: {scale['chosen']['factors']} factors, regularization {scale['chosen']['regularization']:g}, "
        f"{scale.get('blend', 'iALS')}): the ranking step (choices on inner splits, fits, evaluation, published "
        f"refit) in **{scale['ranking_step_seconds'] / 60:.1f} min**, then top-10 with reasons for every user in "
        f"{scale['phases']['top-10 with reasons for every user']:.0f} s, with a peak of "
        f"**{scale['peak_rss_mb'] / 1024:.1f} GB** ({phases}); NDCG@10 {scale['ndcg_at_10']:.3f} against most "
        f"popular {scale['popular_ndcg_at_10']:.3f} on its validation split."
    )


def report(protocol: dict, outside: dict, scale, meta, seeds: dict | None = None) -> tuple[str, str]:
    lines = [f"Measured {meta['date']} on {meta['machine']}; implicit {meta['implicit']}, torch {meta['torch']}.", ""]
    readme = []
    for name, rows in (protocol or {}).items():
        lines += [
            f"### {name}: the protocol (80/20, `random_state=42`, relevant = rating >= 4, training movies excluded)",
            "",
        ]
        lines += _protocol_table(name, rows) + [""]
        readme += _protocol_table(name, rows, short=True) + [""]
    if seeds:
        table = _seeds_table(seeds)
        text = [
            "The same protocol on other outer splits (`random_state` below; 42 is the tables' split): the shipped",
            "ranker's NDCG@10 over the iALS anchor's, each fitted on the same 80%. One split's draw moves the ratio",
            "by a few percent; the mean over the splits is the steadier figure.",
            "",
            *table,
            "",
        ]
        lines += ["### The protocol on more outer splits", "", *text]
        readme += text
    if outside:
        table = _outside_table(outside)
        lines += ["### Held out from the pipeline (it gets 80% of the file; NDCG@10 on the 20% it never saw)", ""]
        lines += table + [""] + _curve_table(outside) + [""]
        readme += [
            "Held out from the pipeline entirely (it is given 80% of the file as its export and its published",
            "`user_recommendations` are scored on the 20% it never saw; NDCG@10; coverage and shares over the scored users).",
            "The lists keep the ranking model's order, leaving out movies with fewer ratings than its `min_ratings`,",
            "movies predicted more than half a star below the user's mean and a movie past its exposure limit (in 10%",
            "of the lists by default); the model's own order, before any rule, is scored beside them:",
            "",
            *table,
            "",
            "The exposure limit's curve: the same published model, its lists (every rule on) at each limit, on the",
            "first split (`exposure_curve_*.png` beside this page plots NDCG against coverage):",
            "",
            *_curve_table(outside),
            "",
        ]
    if scale:
        lines += ["### Scale", "", _scale_text(scale), ""]
    readme.append(
        f"(`benchmarks/bench_ranking.py`, {meta['date']}, {meta['machine']}; 1-minute load average "
        "{:.1f} before the MovieLens parts and {:.1f} after: above 2, other work shared the cores and the times are "
        "noisy.)".format(*meta.get("load_average", [float("nan")] * 2))
    )
    return "\n".join(lines) + "\n", "\n".join(readme)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument(
        "--outside-only", action="store_true", help="only the held-out pipeline part (the protocol from the last run)"
    )
    parser.add_argument("--scale-only", action="store_true")
    parser.add_argument("--seeds", default="42,7", help="outer split seeds of the held-out check")
    parser.add_argument(
        "--protocol-seeds", default="42,1,2,3,7", help="outer split seeds of the protocol's shipped-vs-anchor ratio"
    )
    parser.add_argument("--device", default="cpu", help="device of the scale run (cpu or cuda)")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite the README block")
    parser.add_argument(
        "--ml100k", default=None, help="MovieLens 100K ratings (u.data or .inter; default $RECSYS_ML100K)"
    )
    args = parser.parse_args()
    import implicit
    import torch

    from benchmarks.movielens import data_sets

    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs",
        "implicit": implicit.__version__,
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    protocol, outside, scale, seeds = {}, {}, None, {}
    outside_seeds, protocol_seeds = ([int(s) for s in text.split(",")] for text in (args.seeds, args.protocol_seeds))
    if args.outside_only:  # the held-out part alone, joined to the saved protocol figures
        saved = json.loads((OUT / "ranking_movielens.json").read_text())
        protocol, seeds = saved["protocol"], saved.get("seeds", {})
        meta["load_average"] = [os.getloadavg()[0]]
        for name, frame in data_sets(args.ml100k).items():
            print(f"== {name}", flush=True)
            outside[name] = part_outside(frame, outside_seeds)
        meta["load_average"].append(os.getloadavg()[0])
    elif not args.scale_only:
        meta["load_average"] = [os.getloadavg()[0]]
        sets = data_sets(args.ml100k)
        if not sets:
            sys.exit(f"{ML_SMALL} not found")
        for name, frame in sets.items():
            print(f"== {name}", flush=True)
            protocol[name] = part_protocol(frame)
            seeds[name] = part_protocol_seeds(frame, protocol[name], protocol_seeds)
            outside[name] = part_outside(frame, outside_seeds)
        meta["load_average"].append(os.getloadavg()[0])
    OUT.mkdir(parents=True, exist_ok=True)
    if outside:
        plot_curves(outside, ROOT / "docs" / "benchmarks" / "exposure_curve.png")
    if protocol:  # kept before the long scale part, which --scale-only runs alone and joins to these
        (OUT / "ranking_movielens.json").write_text(
            json.dumps({"protocol": protocol, "outside": outside, "seeds": seeds}, indent=1)
        )
    elif (OUT / "ranking_movielens.json").exists():
        saved = json.loads((OUT / "ranking_movielens.json").read_text())
        protocol, outside, seeds = saved["protocol"], saved["outside"], saved.get("seeds", {})
    if not args.skip_scale:
        scale = part_scale(args.device)
    full, readme = report(protocol, outside, scale, meta, seeds)
    (OUT / "ranking.md").write_text(full)
    (OUT / "ranking.json").write_text(
        json.dumps({"meta": meta, "protocol": protocol, "outside": outside, "seeds": seeds, "scale": scale}, indent=1)
    )
    print(full)
    from benchmarks.readme_blocks import replace_block

    if not args.no_readme and not args.scale_only and protocol and outside:  # only parts measured in this run
        replace_block("bench_ranking", readme)
        replace_block(
            "bench_ranking_full", full.split("### Scale")[0].rstrip() + "\n", readme=ROOT / "benchmarks" / "README.md"
        )
    if not args.no_readme and scale:  # the scale figure has its own blocks: a --scale-only run rewrites just these
        load = "; 1-minute load average {:.1f} before and {:.1f} after".format(*scale.get("load_average", [0, 0]))
        text = f"{_scale_text(scale)} (`benchmarks/bench_ranking.py --scale-only`, {meta['date']}, {meta['machine']}{load}.)"
        replace_block("bench_ranking_scale", text)
        replace_block("bench_ranking_scale", text, readme=ROOT / "benchmarks" / "README.md")


if __name__ == "__main__":
    main()
