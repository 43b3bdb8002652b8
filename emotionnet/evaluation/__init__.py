"""Evaluation: metrics and the report that `emotionnet evaluate` writes."""
