"""Evaluation: leave-last-out split, full-catalogue ranking metrics, baselines (see :mod:`pinsage.evaluate`)."""
from pinsage.evaluation.split import MIN_ITEMS, Split, leave_last_out
from pinsage.evaluation.metrics import evaluate_at_ks, evaluate_embeddings, evaluate_scores, metrics_from_ranks, rank_targets
from pinsage.evaluation.baselines import (
    BASELINES, EASE, EmbeddingScorer, ItemKNN, Popularity, PureSVD, RandomWalkCounts, Scorer,
    interaction_matrix, make_baseline,
)
from pinsage.evaluation.report import DEFAULT_METHODS, format_table, run_baselines

__all__ = [
    "MIN_ITEMS", "Split", "leave_last_out",
    "evaluate_scores", "evaluate_embeddings", "evaluate_at_ks", "metrics_from_ranks", "rank_targets",
    "BASELINES", "Scorer", "Popularity", "ItemKNN", "RandomWalkCounts", "PureSVD", "EASE",
    "EmbeddingScorer", "interaction_matrix", "make_baseline",
    "DEFAULT_METHODS", "run_baselines", "format_table",
]
