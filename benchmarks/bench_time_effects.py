"""Do time effects pay? A user-bias drift and movie-bias time bins (timeSVD-style), measured before building them.

    .venv/bin/python benchmarks/bench_time_effects.py        # ~3 min on 2 cores

The export carries a timestamp the rating model ignores. Koren's timeSVD adds to biased MF

* a user-bias drift ``alpha_u * dev_u(t)``, ``dev_u(t) = sign(t - t_u) * |t - t_u| ** 0.4`` (days from the
  mean day of the user's training ratings), and
* a movie-bias time bin ``b_i,bin(t)`` (30 bins over the training period; a later time takes the last bin).

This script is a measurement, not the product: a compact sequential SGD (Numba) fits biased MF with and
without those terms, identically otherwise, on ml-latest-small under two protocols:

* **random 80/20** (as ``bench_training.py``; scored at each held-out rating's own timestamp, as the
  literature reports), and
* **time-ordered**: the 80% is every rating before the 80th percentile of time, the unseen 20% every
  later one (pairs whose user and movie the 80% knows), which is what a deployed model faces.

The step sizes of the time terms (0 turns one off) are chosen on an inner validation split of the 80% (for
the time-ordered protocol, its last 20% in time), never on the unseen figures. Rewrites the ``bench_time_effects`` block of ``benchmarks/README.md``.
"""

import argparse
import math
import sys
import time
from pathlib import Path

import numba
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from recsys_assets.settings import movielens_dir  # noqa: E402

ML_SMALL = movielens_dir() / "ratings.csv"  # RECSYS_MOVIELENS_DIR
BINS = 30
LR_DRIFT = (0.0, 1e-5, 1e-4)  # step sizes tried for alpha_u (dev is up to ~40, so these are small)
LR_BIN = (0.0, 0.003)


@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def _epoch(P, Q, bu, bi, alpha, bbin, u, i, r, dev, tbin, order, hyper):  # pragma: no cover - compiled
    lr, rf, rb, lr_a, lr_b = hyper
    total = 0.0
    for t in order:
        uu, ii, b = u[t], i[t], tbin[t]
        pred = bu[uu] + bi[ii] + alpha[uu] * dev[t] + bbin[ii, b]
        for d in range(P.shape[1]):
            pred += P[uu, d] * Q[ii, d]
        e = r[t] - pred
        total += e * e
        bu[uu] += lr * (e - rb * bu[uu])
        bi[ii] += lr * (e - rb * bi[ii])
        alpha[uu] += lr_a * (e * dev[t] - 0.01 * alpha[uu])
        bbin[ii, b] += lr_b * (e - 0.1 * bbin[ii, b])
        for d in range(P.shape[1]):
            p, q = P[uu, d], Q[ii, d]
            P[uu, d] += lr * (e * q - rf * p)
            Q[ii, d] += lr * (e * p - rf * q)
    return total


class Fit:
    """Biased MF (+ the two time terms when their step sizes are positive), sequential per-rating SGD."""

    def __init__(self, n_users: int, n_movies: int, dim: int = 64, seed: int = 42):
        rng = np.random.default_rng(seed)
        self.rng = rng
        self.P = rng.normal(0, 0.01, (n_users, dim)).astype(np.float32)
        self.Q = rng.normal(0, 0.01, (n_movies, dim)).astype(np.float32)
        self.bu, self.bi = np.zeros(n_users, np.float32), np.zeros(n_movies, np.float32)
        self.alpha, self.bbin = np.zeros(n_users, np.float32), np.zeros((n_movies, BINS), np.float32)

    def predict(self, mean: float, data: dict) -> np.ndarray:
        u, i = data["u"], data["i"]
        pred = mean + self.bu[u] + self.bi[i] + self.alpha[u] * data["dev"] + self.bbin[i, data["bin"]]
        return np.clip(pred + np.einsum("ij,ij->i", self.P[u], self.Q[i]), 0.5, 5.0)


def features(frame, user_mean_day: np.ndarray, t0: float, t1: float) -> dict:
    day = frame["timestamp"].to_numpy() / 86400.0
    d = day - user_mean_day[frame["u"].to_numpy()]
    span = max(t1 - t0, 1.0)
    return {
        "u": frame["u"].to_numpy(np.int32),
        "i": frame["i"].to_numpy(np.int32),
        "r": frame["rating"].to_numpy(np.float32),
        "dev": (np.sign(d) * np.abs(d) ** 0.4).astype(np.float32),
        "bin": np.clip(((day - t0) / span * BINS).astype(np.int64), 0, BINS - 1).astype(np.int32),
    }


def train(train_f, evals, nu, nm, lr_a, lr_b, epochs=None, patience=8, max_epochs=80) -> tuple[float, int, list]:
    """Fit with early stopping on ``evals[0]`` (or a fixed ``epochs``); (best, epoch, RMSEs on evals there)."""
    mean = float(train_f["r"].mean())
    fit = Fit(nu, nm)
    resid = (train_f["r"] - mean).astype(np.float32)
    hyper = (np.float32(0.007), np.float32(0.05), np.float32(0.02), np.float32(lr_a), np.float32(lr_b))
    best, best_epoch, best_scores = math.inf, 0, []
    for epoch in range(1, (epochs or max_epochs) + 1):
        order = fit.rng.permutation(len(resid))
        _epoch(fit.P, fit.Q, fit.bu, fit.bi, fit.alpha, fit.bbin, train_f["u"], train_f["i"], resid,
               train_f["dev"], train_f["bin"], order, hyper)  # fmt: skip
        scores = [float(np.sqrt(np.mean((fit.predict(mean, e) - e["r"]) ** 2))) for e in evals]
        if epochs is None and scores[0] < best - 1e-4:
            best, best_epoch, best_scores = scores[0], epoch, scores
        elif epochs is None and epoch - best_epoch > patience:
            break
        elif epochs is not None:
            best, best_epoch, best_scores = scores[0], epoch, scores
    return best, best_epoch, best_scores


def protocol(frame, export_mask: np.ndarray, ordered: bool = False) -> dict:
    """Choose the time terms' step sizes on an inner split of the export (``ordered``: its last 20% in time,
    so the choice is made on extrapolation, as the score is); score both models on the rest."""
    from recsys_assets.core.splits import split_ratings

    export, unseen = frame[export_mask], frame[~export_mask]
    users, movies = np.unique(export["userId"]), np.unique(export["movieId"])
    unseen = unseen[np.isin(unseen["userId"], users) & np.isin(unseen["movieId"], movies)]
    to_idx = lambda f: f.assign(u=np.searchsorted(users, f["userId"]), i=np.searchsorted(movies, f["movieId"]))  # noqa: E731
    export, unseen = to_idx(export), to_idx(unseen)
    if ordered:
        late = export["timestamp"].to_numpy() >= np.quantile(export["timestamp"], 0.8)
        inner_train, inner_val = export[~late], export[late]
        inner_val = inner_val[np.isin(inner_val["u"], inner_train["u"]) & np.isin(inner_val["i"], inner_train["i"])]
    else:
        inner_train, inner_val = split_ratings(export, 0.2, 42)
    day = export["timestamp"].to_numpy() / 86400.0
    t0, t1 = float(day.min()), float(day.max())

    def user_days(f):
        return np.bincount(f["u"], weights=f["timestamp"] / 86400.0, minlength=len(users)) / np.maximum(
            np.bincount(f["u"], minlength=len(users)), 1
        )

    inner_days = user_days(inner_train)
    tr, va = features(inner_train, inner_days, t0, t1), features(inner_val, inner_days, t0, t1)
    choices = {}
    for lr_a in LR_DRIFT:
        for lr_b in LR_BIN:
            val, epoch, _ = train(tr, [va], len(users), len(movies), lr_a, lr_b)
            choices[(lr_a, lr_b)] = (val, epoch)
    plain = choices[(0.0, 0.0)]
    timed_key = min((k for k in choices if k != (0.0, 0.0)), key=lambda k: choices[k][0])
    days = user_days(export)
    full, test = features(export, days, t0, t1), features(unseen, days, t0, t1)
    out = {
        "n_unseen": len(unseen),
        "chosen": timed_key,
        "inner_val": {"plain": plain[0], "time": choices[timed_key][0]},
    }
    for name, key in (("plain", (0.0, 0.0)), ("time", timed_key)):  # refit on the whole export, fixed epochs
        _, _, scores = train(full, [test], len(users), len(movies), *key, epochs=choices[key][1])
        out[name] = scores[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    import pandas as pd

    if not ML_SMALL.exists():
        sys.exit(f"{ML_SMALL} not found")
    frame = pd.read_csv(ML_SMALL)
    started = time.perf_counter()
    rng = np.random.default_rng(42)
    random_mask = rng.random(len(frame)) >= 0.2
    cut = np.quantile(frame["timestamp"], 0.8)
    results = {"random 80/20 (scored at each rating's own time)": protocol(frame, random_mask)}
    results["time-ordered: before / after the 80th percentile of time"] = protocol(
        frame, frame["timestamp"].to_numpy() < cut, ordered=True
    )
    rows = [
        "| protocol | unseen ratings | biased MF | + the time terms chosen | change | step sizes chosen (drift, bins; 0 = off) |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, r in results.items():
        rows.append(
            f"| {name} | {r['n_unseen']:,} | {r['plain']:.4f} | {r['time']:.4f} | {r['time'] - r['plain']:+.4f} | "
            f"{r['chosen'][0]:g}, {r['chosen'][1]:g} |"
        )
    text = "\n".join(rows) + (
        f"\n\n(sequential SGD prototype, 64 factors, the same for both columns; {time.perf_counter() - started:.0f} s)"
    )
    print(text)
    if not args.no_readme:
        from benchmarks.readme_blocks import replace_block

        replace_block("bench_time_effects", text, readme=ROOT / "benchmarks" / "README.md")


if __name__ == "__main__":
    main()
