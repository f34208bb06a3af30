"""Samplers over a compiled constraint: locally constrained decoding, AWRS and SMC."""

from .base import Generation, SamplerStats, Status
from .lcd import BeamSearch, Greedy, Sample

__all__ = ["Generation", "SamplerStats", "Status", "Greedy", "Sample", "BeamSearch"]
