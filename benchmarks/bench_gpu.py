"""Training throughput of the pure core on a CUDA GPU (no Dagster needed).

    python benchmarks/bench_gpu.py [--ratings 5000000] [--out DIR]

Side by side, in one process, on synthetic ratings with MovieLens-25M table
sizes (162,000 users, 59,000 movies, 64 factors):

* the document's recipe written plainly: dense ``nn.Embedding`` + ``Adam``, autograd, batch 1024;
* the same with sparse embeddings and ``SparseAdam`` (this project's ``optimizer="adam"``);
* this project's ``FusedSGD`` step, eager and replayed as CUDA graphs, at batch 1024 and at large batches;
* and a full ``train_model`` with the shipped defaults on CUDA and on the CPU, to show that they agree.
"""

import argparse
import json
import os
import platform
import time

import torch

from recsys_assets.core.ids import build_mappings
from recsys_assets.core.rating.dataset import MovieRatingDataset
from recsys_assets.core.rating.model import BiasedMF
from recsys_assets.core.rating.optim import FusedSGD, GraphedEpoch, WeightedRatings, count_weights
from recsys_assets.core.rating.train_config import TrainConfig
from recsys_assets.core.rating.training import train_model
from recsys_assets.core.sample_data import SampleSpec, generate_ratings
from recsys_assets.core.splits import split_ratings


def synthetic(n, users=162_000, movies=59_000, seed=0):
    df = generate_ratings(SampleSpec(n_ratings=n, n_users=users, n_movies=movies, seed=seed)).to_pandas()
    df = df.rename(columns={"userId": "user_id", "movieId": "movie_id"})
    u, m = build_mappings(df)
    return df, u, m


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autograd_rate(data, nu, nm, device, *, sparse, batches=1500, batch=1024):
    torch.manual_seed(0)
    model = BiasedMF(nu, nm, 64, global_mean=3.5, init_std=0.01, sparse=sparse).to(device)
    params = list(model.parameters())
    opt = torch.optim.SparseAdam(params, lr=1e-3) if sparse else torch.optim.Adam(params, lr=1e-3)
    loss_fn = torch.nn.MSELoss()
    u, i, r = data.users, data.movies, data.ratings

    def run(k):
        for s in range(k):
            sl = slice(s * batch, (s + 1) * batch)
            loss = loss_fn(model(u[sl], i[sl]), r[sl])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    run(20)
    sync(device)
    t = time.perf_counter()
    run(batches)
    sync(device)
    return batches * batch / (time.perf_counter() - t)


def sgd_rate(data, nu, nm, device, *, batch, graphed, epochs=2, kernel="eager"):
    torch.manual_seed(0)
    model = BiasedMF(nu, nm, 64, global_mean=float(data.ratings.mean()), init_std=0.01, sparse=False).to(device)
    opt = FusedSGD(model.parameters(), lr=0.01 if batch <= 8192 else 0.002, kernel=kernel)
    weighted = WeightedRatings(
        data.users,
        data.movies,
        data.ratings,
        count_weights(data.users, nu, 0.5)[data.users],
        count_weights(data.movies, nm, 0.5)[data.movies],
    )
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(data), generator=gen).to(device)
    epoch = opt.prepare_epoch(perm, weighted, float(model.global_mean))
    runner = GraphedEpoch(opt, model, epoch, batch, window=max(4, min(64, len(data) // batch))) if graphed else None

    def one():
        if runner is not None:
            return runner.run(epoch)
        total = torch.zeros((), device=device)
        for s in range(0, len(data), batch):
            total += opt.fit_slice(model, epoch[s : s + batch])
        return total

    one()
    sync(device)
    t = time.perf_counter()
    for _ in range(epochs):
        sq = one()
    sync(device)
    rate = epochs * len(data) / (time.perf_counter() - t)
    return rate, float(sq) / len(data)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ratings", type=int, default=5_000_000)
    parser.add_argument("--accuracy-ratings", type=int, default=1_000_000)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", default=os.environ.get("OUT", "benchmarks/output"))
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"device: {name}; torch {torch.__version__}", flush=True)
    results = {"device": name, "torch": torch.__version__, "ratings": args.ratings}

    df, u, m = synthetic(args.ratings)
    data = MovieRatingDataset.from_frame(df, u, m).to(device)
    nu, nm = len(u), len(m)
    if device.type == "cuda":  # the fused kernel must match the eager step (no repeated rows: order-free)
        states = []
        for kernel in ("eager", "auto"):
            torch.manual_seed(0)
            model = BiasedMF(nu, nm, 64, global_mean=3.5, init_std=0.1, sparse=False).to(device)
            opt = FusedSGD(model.parameters(), lr=0.05, kernel=kernel)
            u = torch.randperm(nu, device=device)[:4096]
            i = torch.randperm(nm, device=device)[:4096]
            r = torch.rand(4096, device=device) * 4.5 + 0.5
            sq = opt.fit_batch(
                model, WeightedRatings(u, i, r, torch.rand(4096, device=device), torch.rand(4096, device=device))
            )
            states.append((float(sq), {k: v.clone() for k, v in model.state_dict().items()}))
        same = all(torch.allclose(states[0][1][k], states[1][1][k], atol=1e-5) for k in states[0][1])
        results["kernel_matches_eager"] = bool(same and abs(states[0][0] - states[1][0]) < 1e-2 * abs(states[0][0]))
        print(
            f"Triton step matches eager step: {results['kernel_matches_eager']} (sq {states[0][0]:.3f} vs {states[1][0]:.3f})",
            flush=True,
        )
    rows = []
    for label, fn in [
        (
            "document: dense Adam, autograd, batch 1024",
            lambda: autograd_rate(data, nu, nm, device, sparse=False, batches=300),
        ),
        ("SparseAdam, autograd, batch 1024", lambda: autograd_rate(data, nu, nm, device, sparse=True)),
        ("FusedSGD eager, batch 1024", lambda: sgd_rate(data, nu, nm, device, batch=1024, graphed=False, epochs=1)[0]),
        (
            "FusedSGD CUDA graphs, batch 1024",
            lambda: sgd_rate(data, nu, nm, device, batch=1024, graphed=device.type == "cuda")[0],
        ),
        (
            "FusedSGD eager, batch 262144",
            lambda: sgd_rate(data, nu, nm, device, batch=262_144, graphed=False, epochs=3)[0],
        ),
        (
            "FusedSGD eager, batch 1048576",
            lambda: sgd_rate(data, nu, nm, device, batch=1_048_576, graphed=False, epochs=3)[0],
        ),
        (
            "FusedSGD Triton kernel, batch 1024",
            lambda: sgd_rate(data, nu, nm, device, batch=1024, graphed=False, epochs=1, kernel="auto")[0],
        ),
        (
            "FusedSGD Triton + CUDA graphs, batch 1024",
            lambda: sgd_rate(data, nu, nm, device, batch=1024, graphed=device.type == "cuda", kernel="auto")[0],
        ),
        (
            "FusedSGD Triton + CUDA graphs, batch 4096",
            lambda: sgd_rate(data, nu, nm, device, batch=4096, graphed=device.type == "cuda", kernel="auto")[0],
        ),
        (
            "FusedSGD Triton kernel, batch 262144",
            lambda: sgd_rate(data, nu, nm, device, batch=262_144, graphed=False, epochs=3, kernel="auto")[0],
        ),
        (
            "FusedSGD Triton kernel, batch 1048576",
            lambda: sgd_rate(data, nu, nm, device, batch=1_048_576, graphed=False, epochs=3, kernel="auto")[0],
        ),
    ]:
        try:
            rate = fn()
            rows.append((label, rate))
            print(f"{label:45s} {rate / 1e6:10.2f} M ratings/s", flush=True)
        except Exception as exc:  # report and go on: one failure must not lose the other figures
            rows.append((label, None))
            print(f"{label:45s} FAILED: {type(exc).__name__}: {exc}", flush=True)
    results["throughput"] = {k: v for k, v in rows}

    # accuracy: the shipped defaults on CUDA vs CPU, same data and split
    df, u, m = synthetic(args.accuracy_ratings, users=20_000, movies=8_000, seed=1)
    train, val = split_ratings(df)
    tr, va = MovieRatingDataset.from_frame(train, u, m), MovieRatingDataset.from_frame(val, u, m)
    acc = {}
    for dev in [device, torch.device("cpu")] if device.type == "cuda" else [device]:
        t = time.perf_counter()
        res = train_model(tr, va, len(u), len(m), TrainConfig(), device=dev)
        best = res.history[res.best_epoch - 1]
        acc[str(dev)] = {
            "val_rmse": best["val_rmse"],
            "epochs": res.epochs_run,
            "seconds": time.perf_counter() - t,
            "ratings_per_second": res.ratings_per_second,
        }
        print(
            f"train_model defaults on {dev}: val RMSE {best['val_rmse']:.4f}, {res.epochs_run} epochs, "
            f"{time.perf_counter() - t:.1f}s, {res.ratings_per_second / 1e6:.2f} M ratings/s",
            flush=True,
        )
    results["accuracy"] = acc
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "gpu.json"), "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
