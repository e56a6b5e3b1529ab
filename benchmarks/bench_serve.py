"""`recsys serve` under load: requests/s and latency percentiles, and no failed request across a promotion.

    .venv/bin/python benchmarks/bench_serve.py              # about 3 minutes on 2 cores (needs Debian's wrk)
    .venv/bin/python benchmarks/bench_serve.py --seconds 5  # shorter measurements

1. Materializes every asset on ml-latest-small (``RECSYS_MOVIELENS_DIR``; without it the 100,000-rating
   sample export) into a temporary data folder, in process, so both models are published as v0001.
2. Starts the real ``recsys serve`` (uvicorn; ``--workers`` 1, then 2) on a free loopback port and drives it with
   ``wrk`` (Debian's package; a C load generator, so the client does not share the server's GIL): each
   endpoint for ``--seconds`` at 1 and at 16 open connections, a random known user or movie per request
   (a Lua script). The anchor is the same call made in process on a loaded ``Recommender`` (its median).
3. Promotion under load: 16 connections on the per-user route while ``recommendation_model`` and
   ``ranking_model`` are materialized again (another seed) and published through the pipeline's own
   publish step; the server must reload to v0002 and wrk must count 0 errors and 0 non-2xx answers.

Rewrites the README's ``bench_serve`` block. The figures are of a shared 2-core machine: noisy.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from recsys_assets.settings import movielens_dir  # noqa: E402

BIN = Path(sys.executable).parent
LUA = """
math.randomseed(42)
local ids = {%(ids)s}
local method, body = "%(method)s", %(body)s
request = function()
  local id = ids[math.random(#ids)]
  if method == "POST" then
    return wrk.format("POST", "%(path)s", {["Content-Type"] = "application/json"}, string.format(body, id))
  end
  return wrk.format("GET", string.format("%(path)s", id))
end
"""


def publish_models(data: Path, export: Path, seed: int, only_models: bool = False) -> None:
    """Materialize the chain (or only the two models, with ``seed``) into ``data``: the real publish step."""
    import dagster as dg

    from recsys_assets.definitions import ASSETS
    from recsys_assets.defs.resources import DeviceResource, RecsysStorage, resources_for

    storage = RecsysStorage(export_path=str(export), data_dir=str(data))
    config = {"ops": {name: {"config": {"seed": seed}} for name in ("recommendation_model", "ranking_model")}}
    selection = ["recommendation_model", "ranking_model"] if only_models else None
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            ASSETS,
            resources=resources_for(storage, DeviceResource(device="cpu")),
            instance=instance,
            run_config=config,
            selection=selection,
            raise_on_error=False,
        )
    if not result.success:
        sys.exit("the pipeline run failed; see its log above")


def wrk(url: str, script: Path, connections: int, seconds: float) -> dict:
    """One wrk run: requests/s, p50/p99 in ms, and the errors it counted."""
    args = [
        "wrk",
        f"-t{min(connections, 2)}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "30s",
        "-s",
        str(script),
    ]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    unit = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    pct = {p: float(v) * unit[u] for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "p50": pct["50"], "p99": pct["99"], **wrk_summary(out)}


def routes(rec) -> dict[str, tuple]:
    """Per endpoint: the wrk script's method, path, body, the ids it draws from, and the in-process call."""
    users, movies = rec.users.ids[:500].tolist(), rec.ranker.movies.ids[:500].tolist()
    known = movies[:50]
    body = '{"ratings": {"%d": 5, "' + str(known[1]) + '": 4, "' + str(known[2]) + '": 3.5}, "k": 10}'
    return {
        "GET /users/{id}/recommendations?k=10": (
            "GET",
            "/users/%d/recommendations?k=10",
            "nil",
            users,
            lambda i: rec.recommend(i, k=10),
        ),
        "GET /movies/{id}/similar?k=10": (
            "GET",
            "/movies/%d/similar?k=10",
            "nil",
            movies,
            lambda i: rec.similar_movies(i, k=10),
        ),
        "POST /recommendations (3 ratings, k=10)": (
            "POST",
            "/recommendations",
            json.dumps(body),
            known,
            lambda i: rec.recommend_for_ratings({i: 5, known[1]: 4, known[2]: 3.5}, k=10),
        ),
    }


def in_process_ms(call, ids: list, n: int = 300) -> float:
    """The median time of ``call`` in this process, on one BLAS thread as the server runs it."""
    from threadpoolctl import threadpool_limits

    times = []
    with threadpool_limits(1):
        for i in range(n):
            started = time.perf_counter()
            call(ids[i % len(ids)])
            times.append((time.perf_counter() - started) * 1e3)
    return sorted(times)[len(times) // 2]


def health(base: str) -> dict:
    with urllib.request.urlopen(f"{base}/health", timeout=10) as response:
        return json.loads(response.read())


def wait_for(base: str, predicate, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = health(base)
            if predicate(state):
                return state
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"the server at {base} did not reach the expected state")


def measure(base: str, work: Path, rec, seconds: float) -> list[dict]:
    """Every route at 1 and 16 connections, with the in-process anchor."""
    rows = []
    for name, (method, path, body, ids, call) in routes(rec).items():
        script = work / f"route{len(rows)}.lua"
        script.write_text(LUA % {"ids": ",".join(map(str, ids)), "method": method, "path": path, "body": body})
        anchor = in_process_ms(call, ids)
        wrk(base, script, 4, 2)  # warm-up: thread pool, page cache
        for connections in (1, 16):
            rows.append(
                {
                    "route": name,
                    "connections": connections,
                    "anchor_ms": anchor,
                    **wrk(base, script, connections, seconds),
                }
            )
            print(rows[-1], flush=True)
    return rows


def promotion_under_load(base: str, work: Path, data: Path, export: Path, seconds: float) -> dict:
    """16 connections on the per-user route from ``seconds`` before the pipeline publishes both models again
    to ``seconds`` after the server answers with the new pair."""
    script = work / "route0.lua"
    load = subprocess.Popen(  # stopped with SIGINT once the new pair is served (wrk then prints its summary)
        ["wrk", "-t2", "-c16", "-d600s", "--latency", "--timeout", "30s", "-s", str(script), base],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(seconds)
    started = time.perf_counter()
    publish_models(data, export, seed=7, only_models=True)
    published = time.perf_counter() - started
    state = wait_for(base, lambda s: (s.get("models") or {}).get("rating") == "v0002", timeout=60)
    time.sleep(seconds)
    load.send_signal(signal.SIGINT)
    out, _ = load.communicate(timeout=60)
    (work / "promotion.txt").write_text(out)
    result = wrk_summary(out)
    return {**result, "publish_s": published, "models": state["models"], "reloads": state["reloads"]}


def wrk_summary(out: str) -> dict:
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        "errors": sum(map(int, socket.groups())) if socket else 0,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
    }


def table(rows: list[dict], promo: dict, source: str, seconds: float) -> str:
    lines = [
        "| route | server processes | clients | requests/s | p50 | p99 | in process (median) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in sorted(rows, key=lambda r: (r["route"], r["workers"], r["connections"])):
        lines.append(
            f"| `{r['route']}` | {r['workers']} | {r['connections']} | {r['rps']:,.0f} | {r['p50']:.1f} ms | "
            f"{r['p99']:.1f} ms | {r['anchor_ms']:.2f} ms |"
        )
    failed = sum(r["errors"] + r["non_2xx"] for r in rows)
    lines += [
        "",
        f"Promotion under load ({promo['workers']} server processes): {promo['requests']:,} requests at 16 clients "
        "while the pipeline published both "
        f"models again ({promo['publish_s']:.0f} s run; the server moved to rating {promo['models'].get('rating')}, "
        f"ranking {promo['models'].get('ranking')}): **{promo['errors']} socket errors, {promo['non_2xx']} non-2xx "
        f"answers** ({failed} in the measurements above).",
        "",
        f"(`benchmarks/bench_serve.py`: `recsys serve --workers N` (uvicorn) and `wrk` on the same shared 2-core "
        f"machine, loopback; models from {source}; {seconds:g} s per row, random known user or movie per request; "
        f"in process = the median of the same `Recommender` call without HTTP, one BLAS thread as in the server; a "
        "known user's top 10 is looked up in the lists the server computed when the pair loaded; noisy)",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="seconds per measurement (10)")
    parser.add_argument("--workers", default="1,2", help="server processes to measure, each count in turn (1,2)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    from benchmarks.readme_blocks import replace_block
    from recsys_assets.core.recommender import Recommender
    from recsys_assets_tests.conftest import background_process, free_port

    with tempfile.TemporaryDirectory() as tmp:
        work, data = Path(tmp), Path(tmp) / "data"
        export, source = movielens_dir() / "ratings.csv", "ml-latest-small"
        if not export.exists():
            from recsys_assets.core.sample_data import SampleSpec, write_sample_export

            export, source = write_sample_export(work / "ratings.csv", SampleSpec()), "the 100,000-rating sample"
        publish_models(data, export, seed=42)
        rec = Recommender.load(data / "recommendation_model.pth")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        rows, counts = [], [int(w) for w in args.workers.split(",")]
        for workers in counts:  # the promotion runs under the last count
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            command = [str(BIN / "recsys"), "serve", "--data-dir", str(data), "--port", str(port)]
            with background_process([*command, "--workers", str(workers)], dict(os.environ), work / "serve.log"):
                wait_for(base, lambda s: s["status"] == "ok")
                time.sleep(2 if workers > 1 else 0)  # every worker has loaded the pair
                rows += [{**row, "workers": workers} for row in measure(base, work, rec, args.seconds)]
                if workers == counts[-1]:
                    promo = promotion_under_load(base, work, data, export, min(args.seconds, 3.0))
                    promo["workers"] = workers
        print(promo)
        replace_block("bench_serve", table(rows, promo, source, args.seconds))


if __name__ == "__main__":
    main()
