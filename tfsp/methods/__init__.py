"""Methods: `keras.Model` subclasses whose `train_step` holds the learning algorithm."""

from tfsp.methods.base import AdversarialConfig, StructuredModel
from tfsp.methods.dvn import DVN
from tfsp.methods.feedforward import FeedForward
from tfsp.methods.implicit import ImplicitEnergy, implicit_gradient
from tfsp.methods.infnet import InfNet
from tfsp.methods.ldrsp import LDRSP
from tfsp.methods.spen import SPEN

__all__ = ["AdversarialConfig", "StructuredModel", "DVN", "FeedForward", "ImplicitEnergy", "InfNet", "LDRSP", "SPEN",
           "implicit_gradient"]
