"""The network built from a stage plan, its checkpoints, and trained models (loaded or packed).

Training writes checkpoints through this package and inference reads them through it, so
inference needs nothing from training.
"""
