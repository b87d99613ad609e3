"""Documentation: the mkdocs site builds with --strict, docstring examples run, the public API is documented."""
from __future__ import annotations

import doctest
import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import pinsage

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: modules whose ``__all__`` is public API (the API page documents them)
PUBLIC_MODULES = ["pinsage", "pinsage.evaluation", "pinsage.datasets", "pinsage.plot"]
MODULES = sorted(m.name for m in pkgutil.walk_packages(pinsage.__path__, "pinsage."))


def _doctests(module: str) -> list[doctest.DocTest]:
    mod = importlib.import_module(module)
    return [t for t in doctest.DocTestFinder(exclude_empty=True).find(mod, module) if t.examples]


#: the modules whose docstrings hold ``>>>`` examples
DOCTEST_MODULES = [m for m in MODULES if _doctests(m)]


def _public_objects():
    for mod_name in PUBLIC_MODULES:
        mod = importlib.import_module(mod_name)
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                yield f"{mod_name}.{name}", obj


# --------------------------------------------------------------------------------------------- docstrings
@pytest.mark.parametrize("qualname,obj", list(_public_objects()), ids=lambda v: v if isinstance(v, str) else "")
def test_public_api_has_docstring(qualname, obj):
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    assert doc and doc.strip(), f"{qualname} has no docstring"
    # a dataclass without a docstring gets its signature as __doc__: that is not documentation
    assert not doc.startswith(f"{obj.__name__}("), f"{qualname} has only the generated dataclass docstring"


@pytest.mark.parametrize("module", DOCTEST_MODULES)
def test_docstring_examples(module):
    """Every ``>>>`` example in the package's docstrings runs and prints what it shows."""
    tests = _doctests(module)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out: list[str] = []
    for t in tests:
        runner.run(t, out=out.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(out)


def test_examples_exist_for_the_main_entry_points():
    """The README-level entry points show a runnable example in their docstring."""
    assert len(DOCTEST_MODULES) >= 8, DOCTEST_MODULES
    from pinsage.evaluation import leave_last_out

    for obj in (pinsage.InteractionGraph, pinsage.InteractionGraph.from_edges, pinsage.ItemIndex,
                pinsage.PinSageEmbedder, pinsage.PinSageConfig, pinsage.ImportanceSampler, leave_last_out):
        assert ">>> " in (obj.__doc__ or ""), obj


# --------------------------------------------------------------------------------------------- the site
def _nav_files(nav) -> list[str]:
    out: list[str] = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        if isinstance(value, list):
            out.extend(_nav_files(value))
        elif isinstance(value, str) and not value.startswith(("http://", "https://")):
            out.append(value)
    return out


def _config() -> dict:
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text())


def test_every_docs_page_is_in_the_nav():
    cfg = _config()
    nav = set(_nav_files(cfg["nav"]))
    not_in_nav = {line.strip().lstrip("/") for line in (cfg.get("not_in_nav") or "").splitlines() if line.strip()}
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert not (nav - pages), f"nav entries without a page: {sorted(nav - pages)}"
    assert not (pages - nav - not_in_nav), \
        f"pages neither in mkdocs.yml's nav nor in not_in_nav: {sorted(pages - nav - not_in_nav)}"


def test_api_page_covers_the_public_api():
    api = (DOCS / "api.md").read_text()
    missing = []
    for qualname, obj in _public_objects():
        mod_name, _, name = qualname.rpartition(".")
        if f"::: {qualname}" in api or f"::: {obj.__module__}.{name}" in api:
            continue
        if mod_name == "pinsage.evaluate" and f"::: pinsage.evaluation.{name}" in api:
            continue
        missing.append(qualname)
    assert not missing, f"docs/api.md does not document {missing}"


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]')")
    pytest.importorskip("mkdocstrings", reason="mkdocstrings is not installed (pip install -e '.[docs]')")
    pytest.importorskip("mkdocstrings_handlers.python",
                        reason="the mkdocstrings python handler is not installed (pip install -e '.[docs]')")
    site = tmp_path / "site"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    api = (site / "api" / "index.html").read_text()
    for qualname, _ in _public_objects():
        name = qualname.rpartition(".")[2]
        assert f'id="{qualname}"' in api or f'.{name}"' in api, f"{qualname} missing from the API page"
    assert 'class="arithmatex"' in (site / "concepts" / "index.html").read_text()  # the maths is rendered


def test_guide_lists_every_setting_with_its_default():
    """docs/guide.md's configuration table names every config field with its current default."""
    from dataclasses import fields

    from pinsage.config import PinSageConfig

    text = (ROOT / "docs" / "guide.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \| ([^|]+) \|", text, flags=re.M))
    cfg = PinSageConfig()
    for section in ("model", "sampler", "train"):
        for f in fields(getattr(cfg, section)):
            key = f"{section}.{f.name}"
            assert key in rows, f"docs/guide.md: the configuration table has no row for {key}"
            value = getattr(getattr(cfg, section), f.name)
            shown = rows[key].strip()
            want = (str(value).lower() if isinstance(value, bool) else
                    "[" + ", ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in value) + "]"
                    if isinstance(value, tuple) else str(value))
            assert shown == want, f"docs/guide.md: {key} shown as {shown!r}, default is {want!r}"
