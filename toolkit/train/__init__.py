"""Training: the Trainer loop, callbacks, metrics and checkpoints."""

from toolkit.train.callbacks import Callback
from toolkit.train.checkpoint import load_checkpoint, save_checkpoint
from toolkit.train.early_stopping import EarlyStopping
from toolkit.train.trainer import DivergenceError, Trainer

__all__ = [
    "Callback",
    "DivergenceError",
    "EarlyStopping",
    "Trainer",
    "load_checkpoint",
    "save_checkpoint",
]
