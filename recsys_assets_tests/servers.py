"""Real servers for the end-to-end tests, each started on loopback in a temp folder and stopped on exit.

* :func:`postgres_server`: Debian's PostgreSQL (``scripts/test.sh`` installs it when missing);
* :func:`redis_server`: Debian's ``redis-server`` (likewise), the Celery broker and result backend;
* :func:`s3_server`: moto's standalone S3-compatible server (``moto[server]``, the dev extra), with a bucket.

Each skips the calling test with the reason when its program or client library is missing.
"""

import contextlib
import glob
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import background_process, free_port

BIN = Path(sys.executable).parent


def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@contextlib.contextmanager
def postgres_server() -> Iterator[dict[str, str]]:
    """A PostgreSQL server on 127.0.0.1 with a password-protected database ``dagster``; yields the
    ``DAGSTER_PG_*`` variables that ``deploy/postgres/dagster.yaml`` reads."""
    psycopg2 = pytest.importorskip("psycopg2")
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="recsys-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as Debian's postgres user
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as the postgres user")
        shutil.chown(root, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    user, password, port = "recsys", secrets.token_hex(12), free_port()
    pwfile = root / "pw"
    pwfile.write_text(password)
    if as_postgres:
        shutil.chown(pwfile, "postgres", "postgres")
    run = lambda *args: subprocess.run([*as_postgres, *map(str, args)], check=True, capture_output=True, text=True)  # noqa: E731
    run(bindir / "initdb", "-D", root / "data", "-U", user, f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8")
    run(
        bindir / "pg_ctl",
        "-D",
        root / "data",
        "-l",
        root / "server.log",
        "-w",
        "-t",
        "60",
        "start",
        "-o",
        f"-c listen_addresses=127.0.0.1 -p {port} -k {root}",
    )
    try:
        conn = psycopg2.connect(host="127.0.0.1", port=port, user=user, password=password, dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE dagster")
        conn.close()
        yield {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(port),
            "DAGSTER_PG_USERNAME": user,
            "DAGSTER_PG_PASSWORD": password,
            "DAGSTER_PG_DB": "dagster",
        }
    finally:
        subprocess.run(
            [*as_postgres, str(bindir / "pg_ctl"), "-D", str(root / "data"), "-m", "fast", "-w", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def pg_query(pg: dict, sql: str, *params) -> list[tuple]:
    """Rows of ``sql`` run on the server of :func:`postgres_server`."""
    import psycopg2

    with (
        psycopg2.connect(
            host=pg["DAGSTER_PG_HOST"],
            port=pg["DAGSTER_PG_PORT"],
            user=pg["DAGSTER_PG_USERNAME"],
            password=pg["DAGSTER_PG_PASSWORD"],
            dbname=pg["DAGSTER_PG_DB"],
        ) as conn,
        conn.cursor() as cur,
    ):
        cur.execute(sql, params)
        return cur.fetchall()


def wait_for(
    what: str, ready, timeout: float = 60.0, log: Path | None = None, proc: subprocess.Popen | None = None
) -> None:
    """Poll ``ready()`` until it is true; fail naming ``what`` (with the end of ``log``) after ``timeout``
    or as soon as ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (proc is None or proc.poll() is None):
        with contextlib.suppress(Exception):
            if ready():
                return
        time.sleep(0.2)
    tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    raise AssertionError(f"{what} not ready after {timeout:.0f}s (or it exited)\n{tail}")


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """Debian's redis-server on 127.0.0.1 (no persistence); yields its URL ``redis://127.0.0.1:PORT``."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server not found (apt-get install redis-server; scripts/test.sh installs it as root)")
    redis = pytest.importorskip("redis", reason="the redis client (Celery's Redis transport) is not installed")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(folder)]
    log = folder / "redis.log"
    with background_process(args, dict(os.environ), log) as proc:
        wait_for("redis-server", lambda: redis.Redis(host="127.0.0.1", port=port).ping(), log=log, proc=proc)
        yield f"redis://127.0.0.1:{port}"


@contextlib.contextmanager
def s3_server(folder: Path, bucket: str) -> Iterator[dict[str, str]]:
    """moto's standalone S3 server on 127.0.0.1 with ``bucket`` created; yields the environment a user sets
    for an S3-compatible store (README, "Artifacts on object storage")."""
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install -e '.[dev]')")
    boto3 = pytest.importorskip("boto3", reason="moto[server] is not installed (pip install -e '.[dev]')")
    exe = BIN / "moto_server"
    if not exe.exists():
        pytest.skip("moto_server not found (pip install 'moto[server]', part of the dev extra)")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        "AWS_ACCESS_KEY_ID": "recsys-test",
        "AWS_SECRET_ACCESS_KEY": secrets.token_hex(16),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    log = folder / "moto.log"
    with background_process([str(exe), "-H", "127.0.0.1", "-p", str(port)], dict(os.environ), log) as proc:
        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], **_credentials(env))
        wait_for("moto_server", lambda: client.list_buckets() is not None, log=log, proc=proc)
        client.create_bucket(Bucket=bucket)
        yield env


def _credentials(env: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_DEFAULT_REGION"],
    }


def s3_keys(env: dict[str, str], bucket: str, prefix: str = "") -> list[str]:
    """Every key under ``prefix`` in ``bucket``, listed through boto3 (not through the code under test)."""
    import boto3

    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], **_credentials(env))
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys
