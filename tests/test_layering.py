"""The package's imports flow one way: no module imports a higher stage; no command imports another.

Every ``import`` statement of every module is read (function-level ones included, by walking the whole
syntax tree), so a late import inside a function cannot hide an upward arrow.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pinsage"

#: the stages from the bottom up; a module may import its own stage and the stages below it.
LAYERS: list[tuple[str, ...]] = [
    ("pinsage._io", "pinsage._arrays", "pinsage._version", "pinsage.ids", "pinsage.config"),  # shared helpers and settings
    ("pinsage.graph",),
    ("pinsage.datasets",),
    ("pinsage.features",),
    ("pinsage.sampling",),
    ("pinsage.nn",),
    ("pinsage.train",),
    ("pinsage.inference", "pinsage.new_items"),
    ("pinsage.index",),
    ("pinsage.evaluation", "pinsage.evaluate"),
    ("pinsage.plot",),
    ("pinsage.run", "pinsage.results", "pinsage.card"),  # the run directory, result tables, the model card
    ("pinsage.estimator",),
    ("pinsage.demo",),
    ("pinsage.serve",),  # the HTTP server: state and limits, then the FastAPI app
    ("pinsage.commands", "pinsage.cli"),
    ("pinsage",),  # the package itself re-exports the public names
]


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> int:
    """Index in :data:`LAYERS` of the longest prefix that matches ``module``."""
    best, best_len = None, -1
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            inside = module == p or (p != "pinsage" and module.startswith(p + "."))  # the package: itself only
            if inside and len(p) > best_len:
                best, best_len = i, len(p)
    assert best is not None, f"{module} belongs to no layer of tests/test_layering.py"
    return best


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every pinsage import in ``path``, at any depth of the tree."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "pinsage"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "pinsage":
                continue
            # ``from pinsage.x import y`` may name a submodule y: judge the most specific one
            for a in node.names:
                sub = f"{mod}.{a.name}"
                sub_path = PACKAGE.parent / Path(*sub.split("."))
                target = sub if (sub_path.with_suffix(".py").exists() or (sub_path / "__init__.py").exists()) else mod
                out.append((node.lineno, target))
    return out


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_has_a_layer():
    for path in _modules():
        layer_of(module_name(path))


def test_no_module_imports_a_higher_stage():
    upward = []
    for path in _modules():
        me = module_name(path)
        mine = layer_of(me)
        for line, target in imports_of(path):
            if layer_of(target) > mine:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {me} imports {target}")
    upward = sorted(set(upward))
    assert not upward, "imports that climb to a higher stage:\n" + "\n".join(upward)


def test_no_command_imports_another_command():
    crossing = []
    for path in sorted((PACKAGE / "commands").glob("*.py")):
        me = module_name(path)
        for line, target in imports_of(path):
            if target.startswith("pinsage.commands.") and target != me:
                crossing.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {me} imports {target}")
    crossing = sorted(set(crossing))
    assert not crossing, "commands must share code through the estimator and the run module:\n" + "\n".join(crossing)


def test_the_reader_sees_function_level_imports(tmp_path):
    src = PACKAGE / "estimator.py"
    found = {t for _, t in imports_of(src)}
    assert "pinsage.index" in found or "pinsage.run" in found  # similar_items imports lazily
