"""autounet: a self-configuring U-Net segmentation pipeline.

Data flows fingerprint -> plan -> preprocessed arrays -> trained folds -> predictions ->
postprocessing, one subpackage per stage: ``autoplan``, ``preprocess``, ``model`` (the network
and checkpoints), ``inference``, ``postprocess``, ``training``, ``report``. Each imports only the
ones listed before it; training comes after inference and postprocess in this list because its
final validation predicts through ``inference`` and scores with ``postprocess.metrics``, while
inference never imports training (``tests/test_structure.py`` holds the allowed arrows).
``io`` reads and writes files for all of them, ``workspace`` owns the on-disk layout, ``predictor``
is a trained model in use, ``api`` has a function per command, ``cli`` parses.

``autounet.Predictor`` predicts arrays in memory (imported on first use: ``import autounet``
stays light).
"""

from autounet.version import __version__


def __getattr__(name: str):
    if name == "Predictor":
        from autounet.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'autounet' has no attribute {name!r}")
