"""autounet: a self-configuring U-Net segmentation pipeline.

Data flows fingerprint -> plan -> preprocessed arrays -> trained folds -> predictions ->
postprocessing, one subpackage per stage: ``autoplan``, ``preprocess``, ``model`` (the network
and checkpoints), ``inference``, ``postprocess``, ``training``, ``report``. Each imports only the
ones listed before it; training comes after inference and postprocess in this list because its
final validation predicts through ``inference`` and scores with ``postprocess.metrics``, while
inference never imports training (``tests/test_structure.py`` holds the allowed arrows).
``io`` reads and writes files for all of them, ``workspace`` owns the on-disk layout, ``api`` has a
function per command, ``cli`` parses.
"""

__version__ = "0.1.0"
