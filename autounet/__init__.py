"""autounet: a self-configuring U-Net segmentation pipeline.

Data flows fingerprint -> plan -> preprocessed arrays -> trained folds -> predictions ->
postprocessing, one subpackage per stage (``autoplan``, ``preprocess``, ``model``, ``training``,
``inference``, ``postprocess``, ``report``); a stage imports only the stages before it (training
predicts its validation cases through ``inference``; inference never imports training).
``workspace`` owns the on-disk layout, ``api`` has a function per command, ``cli`` parses.
"""

__version__ = "0.1.0"
