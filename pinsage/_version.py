"""The package version: one place, read by ``pinsage.__version__``, ``pinsage --version``, run.json
and setup.cfg (``version = attr: pinsage._version.__version__``)."""

__version__ = "0.1.0"


def package_versions() -> dict[str, str | None]:
    """The versions a run depends on, for run.json and the model card: ``pinsage``, ``python``, ``torch``,
    ``numpy``, ``pandas``, ``faiss``, ``torch_geometric`` (None for one that is not installed).

    A module already imported reports its own ``__version__``; the others are read from the installed
    distributions' metadata, so that nothing heavy (faiss) is imported to find out.
    """
    import importlib.metadata as metadata
    import platform
    import sys

    wanted = {  # key: (module, distributions that provide it)
        "torch": ("torch", ("torch",)),
        "numpy": ("numpy", ("numpy",)),
        "pandas": ("pandas", ("pandas",)),
        "faiss": ("faiss", ("faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "faiss-gpu-cu11", "faiss")),
        "torch_geometric": ("torch_geometric", ("torch-geometric",)),
    }
    out: dict[str, str | None] = {"pinsage": __version__, "python": platform.python_version()}
    for key, (module, dists) in wanted.items():
        version = getattr(sys.modules.get(module), "__version__", None)
        for dist in () if version else dists:
            try:
                version = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
        out[key] = str(version) if version else None
    return out
