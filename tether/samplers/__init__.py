"""Samplers over a compiled constraint: locally constrained decoding, AWRS and SMC.

`Greedy`, `Sample`, `BeamSearch` and `SMC` all plug into `tether.generate`
(``sampler.run(model, prompts, constraint, max_tokens, *, n=1) -> list[Generation]``,
n per prompt, grouped by prompt: see `Sampler`). Each checks first that the
constraint was compiled for ``model.vocab`` and that the prompts fit the model's context.
`AWRS` is the per-step proposal inside `SMC`; ``SMC(n_particles=1)`` is AWRS decoding.
`Diffusion`, `DINGO` and `GrammarDiffusion` decode masked diffusion LMs (`tether.samplers.diffusion`).
"""

from .awrs import AWRS, AWRSStats, awrs_step
from .base import Generation, Sampler, SamplerStats, Status
from .diffusion import DINGO, Diffusion, GrammarDiffusion
from .lcd import BeamSearch, Greedy, Sample
from .smc import SMC, Particle, SMCResult, SMCStats

__all__ = [
    "Generation",
    "Sampler",
    "SamplerStats",
    "Status",
    "Greedy",
    "Sample",
    "BeamSearch",
    "AWRS",
    "AWRSStats",
    "awrs_step",
    "SMC",
    "SMCResult",
    "SMCStats",
    "Particle",
    "Diffusion",
    "DINGO",
    "GrammarDiffusion",
]
