"""A trained model in use: loaded once, then predicting folders of files (``autounet predict``)
or arrays handed over in memory (:class:`Predictor`), through the same steps; and the run
manifest that records what produced each output."""

from autounet.predictor.predictor import Predictor

__all__ = ["Predictor"]
