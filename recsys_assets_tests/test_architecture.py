"""The layout's rules, checked on the source: core never imports Dagster, functions stay short and simple
(ruff's C901 and PLR0915 at the limits pyproject.toml sets) and take few positional parameters."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "recsys_assets"
MAX_COMPLEXITY = 10  # McCabe (ruff C901)
MAX_STATEMENTS = 40  # per function (ruff PLR0915)
MAX_POSITIONAL = 6
# Dagster binds these functions' parameters by name (assets, sensors, schedules), and compiled kernels
# (Numba, Triton) take positional arguments only: they are exempt from the positional-parameter rule.
NAMED_BINDING_DECORATORS = {"asset", "multi_asset", "op", "sensor", "schedule", "asset_check", "njit", "jit"}


def _modules(folder: Path = PACKAGE) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _decorator_names(node: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    names = set()
    for dec in node.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        names.add(target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", ""))
    return names


@pytest.mark.parametrize("path", _modules(PACKAGE / "core"), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_never_imports_dagster(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        assert not any(n == "dagster" or n.startswith(("dagster.", "dagster_")) for n in names), (
            f"{path.name} imports {names}: core/ is plain Python; Dagster belongs in defs/"
        )


def test_ruff_holds_functions_to_the_complexity_and_statement_limits():
    """pyproject.toml selects C901 and PLR0915 at these limits, exempts no module of the package from them, and
    the package passes (a function over either limit fails here, and in ``ruff check`` in CI)."""
    import subprocess
    import sys
    import tomllib

    lint = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert {"C901", "PLR0915"} <= set(lint["select"])
    assert lint["mccabe"]["max-complexity"] == MAX_COMPLEXITY and lint["pylint"]["max-statements"] == MAX_STATEMENTS
    exempt = {path for path, codes in lint["per-file-ignores"].items() if {"C901", "PLR0915"} & set(codes)}
    assert not {path for path in exempt if path.startswith("recsys_assets/")}, exempt
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--select", "C901,PLR0915", "--output-format", "concise", str(PACKAGE)],
        capture_output=True,
        text=True,
        cwd=PACKAGE.parent,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_complexity_rules_see_what_they_are_meant_to_see(tmp_path):
    """The rules are not vacuous: a function with eleven branches and one with 41 statements are found."""
    import subprocess
    import sys

    branches = "".join(f"    if x == {i}:\n        return {i}\n" for i in range(11))
    statements = "".join(f"    y{i} = {i}\n" for i in range(41))
    (tmp_path / "long.py").write_text(f"def f(x):\n{branches}    return -1\n\n\ndef g():\n{statements}")
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--select", "C901,PLR0915", "--output-format", "concise"]
        + [
            "--config",
            f"lint.mccabe.max-complexity={MAX_COMPLEXITY}",
            "--config",
            f"lint.pylint.max-statements={MAX_STATEMENTS}",
        ]
        + [str(tmp_path / "long.py")],
        capture_output=True,
        text=True,
    )
    assert (
        "C901 `f` is too complex (12 > 10)" in out.stdout and "PLR0915 Too many statements (41 > 40)" in out.stdout
    ), out.stdout


def test_no_function_takes_many_positional_parameters():
    offenders = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if _decorator_names(node) & NAMED_BINDING_DECORATORS:
                continue
            positional = [a.arg for a in node.args.posonlyargs + node.args.args if a.arg not in ("self", "cls")]
            if len(positional) > MAX_POSITIONAL:
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}({len(positional)})")
    assert not offenders, f"functions with more than {MAX_POSITIONAL} positional parameters: {offenders}"


def test_the_checker_sees_what_it_is_meant_to_see():
    """The rule above is not vacuous: a seven-argument function is found, a Dagster asset is not."""
    tree = ast.parse("def f(a, b, c, d, e, f, g): pass\n@dg.asset\ndef h(a, b, c, d, e, f, g): pass\n")
    fns = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert [len(f.args.args) for f in fns] == [7, 7]
    assert not _decorator_names(fns[0]) & NAMED_BINDING_DECORATORS
    assert _decorator_names(fns[1]) & NAMED_BINDING_DECORATORS


def test_loading_the_definitions_imports_no_heavy_library():
    """Every step process loads the definitions: PyTorch, Numba, implicit, scikit-learn and matplotlib are
    imported only by the steps that use them (the local run's overhead; README, "Fast on its own scale")."""
    import subprocess
    import sys

    heavy = ["torch", "numba", "implicit", "sklearn", "matplotlib"]
    code = f"import sys, recsys_assets.definitions; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
