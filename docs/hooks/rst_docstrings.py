"""Griffe extension for the docs build: turn the reST bits of pinsage's docstrings into Markdown.

The docstrings are written for both ``help()`` and this site. They use a few reST constructs that
Markdown does not know; before mkdocstrings parses a docstring this rewrites:

* ``:math:`x``` -> ``$x$`` and a ``.. math::`` block -> one ``$$ ... $$`` display per paragraph
  (rendered by MathJax through pymdownx.arithmatex);
* ``:class:`~a.b.C``` (and ``:func:``, ``:meth:``, ``:mod:``, ``:data:``, ``:attr:``, ``:exc:``) ->
  inline code (the last name only when the target starts with ``~``);
* a paragraph ending in ``::`` (a literal block follows) -> ``:``.

Loaded by mkdocs.yml (``extensions:`` of the python handler); not part of the package.
"""
from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj|py:\w+):`(~?)([^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")


def _role(m: re.Match) -> str:
    target = m.group(2)
    if m.group(1):
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


def _math_blocks(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if not stripped.startswith(".. math::"):
            out.append(line)
            i += 1
            continue
        indent = len(line) - len(stripped)
        body: list[str] = []
        first = stripped[len(".. math::"):].strip()
        if first:
            body.append(first)
        i += 1
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
            body.append(lines[i].strip())
            i += 1
        paragraphs = [p.split("\n") for p in "\n".join(body).strip().split("\n\n") if p.strip()]
        pad = " " * indent
        for para in paragraphs:
            eq = " ".join(p.strip() for p in para)
            if "&" in eq:
                eq = r"\begin{aligned}" + eq + r"\end{aligned}"
            out.extend([pad + "$$", pad + eq, pad + "$$", ""])
    return "\n".join(out)


def rst_to_markdown(text: str) -> str:
    """The rewrite described in the module docstring."""
    text = _math_blocks(text)
    text = _MATH_ROLE.sub(lambda m: f"${m.group(1)}$", text)
    text = _ROLE.sub(_role, text)
    return re.sub(r"(\S)::\n", r"\1:\n", text)


class RstDocstrings(griffe.Extension):
    """Rewrite every docstring with :func:`rst_to_markdown` as it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:  # noqa: D102
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
