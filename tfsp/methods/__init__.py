"""Methods: `keras.Model` subclasses whose `train_step` holds the learning algorithm."""

from tfsp.methods.base import AdversarialConfig, StructuredModel
from tfsp.methods.dvn import DVN
from tfsp.methods.feedforward import FeedForward
from tfsp.methods.ldrsp import LDRSP

__all__ = ["AdversarialConfig", "StructuredModel", "DVN", "FeedForward", "LDRSP"]
