"""Related-item evaluation (DESIGN.md "Evaluation protocol"): public entry point.

>>> from pinsage.evaluate import leave_last_out, run_baselines, format_table, evaluate_embeddings
>>> split = leave_last_out(df, "user", "item", time_col="ts")            # doctest: +SKIP
>>> print(format_table(run_baselines(split)))                            # doctest: +SKIP
>>> evaluate_embeddings(np.load("out/item_embeddings.npy"), split,
...                     item_ids=np.load("out/item_ids.npy"))            # doctest: +SKIP

Implementation lives in :mod:`pinsage.evaluation` (split, metrics, baselines, report).
"""
from pinsage.evaluation import *  # noqa: F401,F403
from pinsage.evaluation import __all__  # noqa: F401
