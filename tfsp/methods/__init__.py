"""Methods: `keras.Model` subclasses whose `train_step` holds the learning algorithm, each
registered by name with the dataclass of its settings (tfsp.methods.registry). Importing this
package registers the built-in ones."""

from tfsp.methods import registry
from tfsp.methods.base import StructuredModel
from tfsp.methods.dvn import DVN, DVNSettings
from tfsp.methods.feedforward import FeedForward, FeedForwardSettings
from tfsp.methods.gan_baselines import (EBGAN, GAN, LSGAN, WGANGP, EBGANSettings, GANSettings,
                                        WGANGPSettings)
from tfsp.methods.implicit import ImplicitEnergy, ImplicitSettings, implicit_gradient
from tfsp.methods.infnet import InfNet, InfNetSettings
from tfsp.methods.ldrsp import LDRSP, LDRSPSettings
from tfsp.methods.spen import SPEN, SPENSettings
from tfsp.methods.tuples import AdversarialConfig

__all__ = ["registry", "AdversarialConfig", "StructuredModel", "DVN", "DVNSettings", "EBGAN", "EBGANSettings",
           "FeedForward", "FeedForwardSettings", "GAN", "GANSettings", "ImplicitEnergy", "ImplicitSettings",
           "InfNet", "InfNetSettings", "LDRSP", "LDRSPSettings", "LSGAN", "SPEN", "SPENSettings", "WGANGP",
           "WGANGPSettings", "implicit_gradient"]
