"""Serving a run over HTTP (``pinsage serve``; needs the ``serve`` extra: ``pip install "pinsage[serve]"``).

Modules, one job each:

* :mod:`pinsage.serve.state`: the loaded run (:class:`~pinsage.serve.state.ServedRun`) and the one
  reference that a reload swaps (:class:`~pinsage.serve.state.RunHolder`); no fastapi;
* :mod:`pinsage.serve.limits`: the bounds on requests (:class:`~pinsage.serve.limits.Limits`) and the
  body-size middleware; no fastapi;
* :mod:`pinsage.serve.reloads`: the counters through which the worker processes of
  ``pinsage serve --workers N`` reload together (:class:`~pinsage.serve.reloads.SharedReloads`); no
  fastapi;
* :mod:`pinsage.serve.app`: the FastAPI application, :func:`~pinsage.serve.app.create_app`.

``import pinsage`` does not import this package, and importing it imports fastapi only when
``create_app`` is asked for.
"""
import importlib

#: the public names, by the module that defines them (imported on first use: importing this package, or
#: its limits module for ``pinsage serve --help``, loads neither fastapi nor faiss)
_NAMES = {"create_app": "app", "Limits": "limits", "BodyLimit": "limits", "RunHolder": "state",
          "ServedRun": "state", "NotFound": "state", "TooLarge": "state", "SharedReloads": "reloads"}

__all__ = list(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(importlib.import_module(f"pinsage.serve.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'pinsage.serve' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_NAMES))
