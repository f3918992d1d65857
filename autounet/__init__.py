"""autounet: a self-configuring U-Net segmentation pipeline.

Data flows fingerprint -> plan -> preprocessed arrays -> trained folds -> predictions ->
postprocessing; each stage lives in its own subpackage and reads only what the stage before
it wrote to disk.
"""

__version__ = "0.1.0"
