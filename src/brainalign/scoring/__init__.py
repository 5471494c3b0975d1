"""Scoring predictions against held-out recordings: k vs k accuracy and variance explained."""

from brainalign.scoring.kvsk import draw_kvsk, kvsk_accuracy
from brainalign.scoring.variance import pearson_r, r2_score

__all__ = ["draw_kvsk", "kvsk_accuracy", "pearson_r", "r2_score"]
