"""gridnoise: diffusion models on 2-D data with learnable grid-based noise adaptation."""

__version__ = "0.1.0"
