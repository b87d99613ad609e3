"""Deprecated alias of :mod:`pinsage.evaluation`, kept so that old imports keep working.

Import :mod:`pinsage.evaluation` in new code; the protocol is described in ``docs/quality.md``.

>>> from pinsage.evaluation import leave_last_out, run_baselines, format_table, evaluate_embeddings
"""
import warnings

from pinsage.evaluation import *  # noqa: F401,F403
from pinsage.evaluation import __all__  # noqa: F401

warnings.warn("pinsage.evaluate is a deprecated alias: import pinsage.evaluation instead", DeprecationWarning,
              stacklevel=2)
