"""The docs' `recsys` examples, regenerated: the pipeline on ml-latest-small, then the commands.

    .venv/bin/python benchmarks/readme_examples.py     # about a minute

Materializes every asset on ../shared/datasets/ml-latest-small/ratings.csv (defaults, in a
temporary folder), runs the `recsys` commands the docs show against the models it wrote, and
rewrites the ``cli_examples`` block of
``docs/guide/recommendations.md`` with the commands and their real output.
"""

import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from recsys_assets.settings import movielens_dir  # noqa: E402

ML_SMALL = movielens_dir()  # RECSYS_MOVIELENS_DIR
COMMANDS = [
    "recsys recommend --user 1 -k 5",
    "recsys recommend --user 1 -k 5 --by rating",
    "recsys recommend --rated 318:5,296:4.5,1:4 -k 5",
    "recsys recommend --rated 318:5,296:4.5,1:4 -k 5 --by rating",
    'recsys similar --title "toy story" -k 10',
    "recsys recommend --user 99999 -k 3",
]


def main():
    import dagster as dg

    from benchmarks.readme_blocks import replace_block
    from recsys_assets.definitions import ASSETS
    from recsys_assets.defs.resources import DeviceResource, RecsysStorage, resources_for

    if not (ML_SMALL / "ratings.csv").exists():
        sys.exit(f"{ML_SMALL} not found")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        resources = resources_for(
            RecsysStorage(export_path=str(ML_SMALL / "ratings.csv"), data_dir=str(data)), DeviceResource(device="cpu")
        )
        with dg.instance_for_test() as instance:
            assert dg.materialize(ASSETS, resources=resources, instance=instance).success
        shown = []
        for command in COMMANDS:
            args = [
                str(Path(sys.executable).parent / "recsys"),
                *shlex.split(command)[1:],
                "--model",
                str(data / "recommendation_model.pth"),
                "--movies",
                str(ML_SMALL / "movies.csv"),
            ]
            proc = subprocess.run(args, capture_output=True, text=True, check=True)
            shown.append(f"$ {command} --movies movies.csv\n{proc.stdout.rstrip()}")
    replace_block("cli_examples", "```\n" + "\n".join(shown) + "\n```")


if __name__ == "__main__":
    main()
