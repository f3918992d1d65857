"""Evaluation and postprocessing chosen on cross-validation."""
