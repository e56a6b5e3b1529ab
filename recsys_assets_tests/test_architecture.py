"""The layout's rules, checked on the source: core never imports Dagster, modules stay small, and
functions take few positional parameters."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "recsys_assets"
MAX_MODULE_LINES = 400
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


def test_no_module_is_over_the_size_limit():
    long = {str(p.relative_to(PACKAGE)): n for p in _modules() if (n := p.read_text().count("\n")) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


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
