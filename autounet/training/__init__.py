"""Training: a fold top to bottom (``fold.py``): setup, the run's state, steps and epoch loop,
Dice+CE with deep supervision, patch sampling and augmentation, time budgets, and the final
validation through :mod:`autounet.inference`. The network and checkpoints are :mod:`autounet.model`'s."""
