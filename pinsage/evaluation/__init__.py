"""Evaluation: leave-last-out split, full-catalogue ranking metrics, baselines tuned on validation, paired bootstrap intervals."""
from pinsage.evaluation.split import MIN_ITEMS, Split, leave_last_out
from pinsage.evaluation.metrics import (
    evaluate_at_ks, evaluate_embeddings, evaluate_per_user, evaluate_scores, metrics_from_ranks, per_user_values,
    rank_targets,
)
from pinsage.evaluation.baselines import (
    BASELINES, EASE, ContentKNN, EmbeddingScorer, ItemKNN, Popularity, PureSVD, RandomWalkCounts, RP3beta, Scorer,
    interaction_matrix, make_baseline,
)
from pinsage.evaluation.report import DEFAULT_METHODS, format_table, run_baselines
from pinsage.evaluation.intervals import BootstrapResult, compare_per_user, mean_over_runs, paired_bootstrap
from pinsage.evaluation.tuning import GRIDS, TUNED_METHODS, TuneResult, grid_points, tune_baseline, tune_baselines

__all__ = [
    "MIN_ITEMS", "Split", "leave_last_out",
    "evaluate_scores", "evaluate_embeddings", "evaluate_at_ks", "evaluate_per_user", "metrics_from_ranks",
    "per_user_values", "rank_targets",
    "BASELINES", "Scorer", "Popularity", "ItemKNN", "RP3beta", "RandomWalkCounts", "PureSVD", "EASE",
    "ContentKNN", "EmbeddingScorer", "interaction_matrix", "make_baseline",
    "DEFAULT_METHODS", "run_baselines", "format_table",
    "BootstrapResult", "paired_bootstrap", "mean_over_runs", "compare_per_user",
    "GRIDS", "TUNED_METHODS", "TuneResult", "grid_points", "tune_baseline", "tune_baselines",
]
