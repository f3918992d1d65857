"""Inference: a trained model's probabilities for new or held-out cases, back in the original geometry.

``run.predict`` is the one entry: `autounet predict` and training's final validation both go
through it, with one :class:`~autounet.inference.settings.PredictSettings`.
"""
