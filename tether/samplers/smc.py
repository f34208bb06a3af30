"""Sequential Monte Carlo over AWRS steps: samples from the *global* constrained distribution.

    >>> smc = SMC(model, constraint, n_particles=8, seed=0)
    >>> res = smc.run("Give me a date:")
    >>> res.posterior          # {"2024-01-31": 0.62, ...}
    >>> res.log_ml             # log-estimate of P(string in L) under the model

Target: ``P(s) ∝ p(s) · 1[s ∈ L]`` over complete strings ``s`` (EOS included in
``p(s)``), with ``p`` the model and ``L`` the constraint's language.

Each of the N particles extends by one AWRS step per round (an exact sample of
the locally constrained next-token distribution) and multiplies its weight by
the step's unbiased ``Ẑ``; all unfinished particles share ONE batched
``model.next_logprobs`` call per round (identical prefixes, e.g. resampled
copies, are sent once). When the effective sample size ``(Σw)² / Σw²`` falls
below ``ess_threshold · N`` the particles are resampled and every weight is set
to the *mean* weight, so the mean of the weights is preserved and
``log_ml = log mean(final weights)`` is an unbiased estimate of ``Z = p(L)`` (in
the linear domain; its log is biased low, as usual).

Statuses: ``"accepted"`` (the particle sampled EOS in an accepting state),
``"dead"`` (no token was allowed: weight 0), ``"incomplete"`` (it used
``max_tokens`` tokens -- EOS counts as a token -- without finishing: weight 0;
the estimate then targets strings of at most ``max_tokens - 1`` tokens plus EOS).
Only accepted particles carry weight, so nothing outside ``L`` is ever presented.

Critic (twisting). ``critic(prefixes) -> log-potentials`` scores a batch of
generated-token prefixes (prompt excluded) with ``log φ``; a particle's weight
is multiplied by ``φ(new prefix) / φ(old prefix)`` at each step, starting from
``φ(())``, and by ``1 / φ(prefix)`` when it accepts, so the telescoping product
leaves the final target and ``log_ml`` unchanged while resampling favours
prefixes the critic likes. ``log φ = -inf`` kills a particle; it must never be
``-inf`` on a prefix of a string the target gives mass to if you want
unbiasedness.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Literal, Sequence

import numpy as np

from ..errors import VocabularyError
from .awrs import AWRS, Estimator, _torch_to_numpy

__all__ = ["SMC", "SMCResult", "SMCStats", "Particle", "resample_indices", "effective_sample_size"]

Resampling = Literal["systematic", "stratified", "multinomial"]
Critic = Callable[[list[tuple[int, ...]]], Sequence[float]]

RUNNING, ACCEPTED, DEAD, INCOMPLETE = "running", "accepted", "dead", "incomplete"


# --------------------------------------------------------------------------- weights helpers


def _logsumexp(x: np.ndarray) -> float:
    m = float(np.max(x, initial=-np.inf))
    if m == -np.inf:
        return -math.inf
    return m + math.log(float(np.exp(x - m).sum()))


def effective_sample_size(log_weights: np.ndarray) -> float:
    """``(Σw)² / Σw²`` computed stably from log-weights; 0 when every weight is 0."""
    lw = np.asarray(log_weights, dtype=np.float64)
    m = float(np.max(lw, initial=-np.inf))
    if m == -np.inf:
        return 0.0
    w = np.exp(lw - m)
    return float(w.sum() ** 2 / (w * w).sum())


def resample_indices(
    weights: np.ndarray, n: int, rng: np.random.Generator, method: Resampling = "systematic"
) -> np.ndarray:
    """Ancestor indices for ``n`` offspring, each index ``i`` drawn ``n·w_i`` times in expectation.

    ``weights``: non-negative, not all zero (need not be normalised).
    systematic: one uniform, ``u_k = (k + U) / n``; stratified: ``u_k = (k + U_k) / n``;
    multinomial: i.i.d. draws. Zero-weight entries are never chosen.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0:
        raise ValueError(f"weights must be a non-empty 1-D array, got shape {w.shape}")
    if (w < 0).any() or not np.isfinite(w).all():
        raise ValueError("weights must be finite and non-negative")
    cdf = np.cumsum(w)
    total = cdf[-1]
    if total <= 0:
        raise ValueError("cannot resample: every weight is zero")
    if method == "systematic":
        u = (np.arange(n) + rng.random()) / n
    elif method == "stratified":
        u = (np.arange(n) + rng.random(n)) / n
    elif method == "multinomial":
        u = np.sort(rng.random(n))
    else:
        raise ValueError(f"resampling must be 'systematic', 'stratified' or 'multinomial', got {method!r}")
    idx = np.searchsorted(cdf, u * total, side="right")
    last = int(np.flatnonzero(w > 0)[-1])
    return np.minimum(idx, last)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Particle:
    """One final particle: generated ids (EOS excluded), their bytes, log-weight, status."""

    token_ids: tuple[int, ...]
    text: bytes
    log_weight: float
    status: str

    @property
    def string(self) -> str:
        return self.text.decode("utf-8", errors="replace")


@dataclass
class SMCStats:
    """Counters of one run (or accumulated over runs by `SMC.stats`)."""

    steps: int = 0
    tokens: int = 0  # tokens sampled, EOS included
    checks: int = 0  # constraint checks (allows / is_accepting) made by AWRS
    model_calls: int = 0
    model_sequences: int = 0  # prefixes sent to the model (after de-duplication)
    resamples: int = 0
    dead_steps: int = 0
    exact_steps: int = 0  # steps weighted by an exact mask (only-EOS states, capped searches)
    capped: int = 0  # steps that hit max_checks
    model_seconds: float = 0.0
    constraint_seconds: float = 0.0
    critic_seconds: float = 0.0
    total_seconds: float = 0.0

    @property
    def checks_per_token(self) -> float:
        return self.checks / self.tokens if self.tokens else 0.0

    @property
    def sampler_seconds(self) -> float:
        """Time outside the model, the constraint and the critic (AWRS orders, bookkeeping)."""
        return self.total_seconds - self.model_seconds - self.constraint_seconds - self.critic_seconds


@dataclass
class SMCResult:
    """The particles, the posterior over strings, ``log_ml`` and the run's diagnostics.

    ess_trace: the ESS after each round's reweighting (before any resampling).
    resampled_at: the rounds (0-based) after which the particles were resampled.
    """

    particles: list[Particle]
    log_ml: float
    ess_trace: list[float]
    resampled_at: list[int]
    stats: SMCStats = field(default_factory=SMCStats)

    @property
    def weights(self) -> np.ndarray:
        """Normalised final weights (all zero when every particle failed)."""
        lw = np.array([p.log_weight for p in self.particles], dtype=np.float64)
        lse = _logsumexp(lw)
        if lse == -math.inf:
            return np.zeros_like(lw)
        return np.exp(lw - lse)

    @property
    def posterior(self) -> dict[str, float]:
        """Distinct decoded string -> normalised probability (accepted particles only)."""
        out: dict[str, float] = {}
        for p, w in zip(self.particles, self.weights):
            if w > 0:
                out[p.string] = out.get(p.string, 0.0) + float(w)
        return out

    @property
    def posterior_bytes(self) -> dict[bytes, float]:
        out: dict[bytes, float] = {}
        for p, w in zip(self.particles, self.weights):
            if w > 0:
                out[p.text] = out.get(p.text, 0.0) + float(w)
        return out

    @property
    def posterior_tokens(self) -> dict[tuple[int, ...], float]:
        out: dict[tuple[int, ...], float] = {}
        for p, w in zip(self.particles, self.weights):
            if w > 0:
                out[p.token_ids] = out.get(p.token_ids, 0.0) + float(w)
        return out

    @property
    def ml(self) -> float:
        """``exp(log_ml)``: the unbiased estimate of ``p(L)``."""
        return math.exp(self.log_ml)

    def best(self) -> Particle | None:
        """The accepted particle of largest weight, or None when none was accepted."""
        acc = [p for p in self.particles if p.status == ACCEPTED and p.log_weight > -math.inf]
        return max(acc, key=lambda p: p.log_weight) if acc else None


# --------------------------------------------------------------------------- the sampler


class _TimedConstraint:
    """Forwards the calls AWRS makes to the constraint, accumulating their time."""

    def __init__(self, constraint, stats_holder: list):
        self._c = constraint
        self._holder = stats_holder  # [SMCStats]: replaced per run
        self.vocab = constraint.vocab

    def _timed(self, fn, *args):
        t = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self._holder[0].constraint_seconds += time.perf_counter() - t

    def allows(self, state, tok):
        return self._timed(self._c.allows, state, tok)

    def is_accepting(self, state):
        return self._timed(self._c.is_accepting, state)

    def is_finished(self, state):
        return self._timed(self._c.is_finished, state)

    def advance(self, state, tok):
        return self._timed(self._c.advance, state, tok)

    def mask(self, state):
        return self._timed(self._c.mask, state)

    def initial(self):
        return self._timed(self._c.initial)


class SMC:
    """AWRS-SMC: N particles, one batched model call per round, ESS-triggered resampling.

    model: a `tether.models.CausalLM`; constraint: a compiled `tether.Constraint`
        over the same vocabulary.
    n_particles: N. ess_threshold: resample when ESS < ess_threshold · N (0: never).
    resampling: "systematic" (default), "stratified" or "multinomial".
    estimator, peeks, max_checks: passed to `AWRS` (see `tether.samplers.awrs`;
        ``max_checks`` uses the exact mask fallback, which keeps "recursive" exact).
    critic: optional batched log-potential over generated prefixes (see module doc).
    max_tokens: token budget per particle, EOS included.
    seed: int or numpy Generator; successive `run` calls continue the stream.
    """

    def __init__(
        self,
        model,
        constraint,
        n_particles: int = 8,
        *,
        ess_threshold: float = 0.5,
        resampling: Resampling = "systematic",
        estimator: Estimator = "recursive",
        peeks: int = 1,
        critic: Critic | None = None,
        max_tokens: int = 256,
        max_checks: int | None = None,
        seed: int | np.random.Generator | None = None,
        order: str = "sequential",
    ):
        if n_particles < 1:
            raise ValueError(f"n_particles must be >= 1, got {n_particles}")
        if not 0.0 <= ess_threshold <= 1.0:
            raise ValueError(f"ess_threshold must be in [0, 1], got {ess_threshold}")
        if resampling not in ("systematic", "stratified", "multinomial"):
            raise ValueError(
                f"resampling must be 'systematic', 'stratified' or 'multinomial', got {resampling!r}"
            )
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        if getattr(model, "vocab", None) is not None and model.vocab.size != constraint.vocab.size:
            raise VocabularyError(
                f"model vocabulary size {model.vocab.size:,} != constraint vocabulary size "
                f"{constraint.vocab.size:,}"
            )
        self.model = model
        self.constraint = constraint
        self.n_particles = n_particles
        self.ess_threshold = ess_threshold
        self.resampling = resampling
        self.critic = critic
        self.max_tokens = max_tokens
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self._holder = [SMCStats()]
        self._timed = _TimedConstraint(constraint, self._holder)
        self.awrs = AWRS(
            self._timed,
            estimator=estimator,
            peeks=peeks,
            max_checks=max_checks,
            order=order,
            seed=self.rng,
        )
        self.eos_ids = frozenset(int(e) for e in constraint.vocab.eos_ids)

    # -- helpers

    def _critic(self, prefixes: list[tuple[int, ...]], stats: SMCStats) -> np.ndarray:
        t = time.perf_counter()
        out = np.asarray(self.critic(prefixes), dtype=np.float64).reshape(-1)
        stats.critic_seconds += time.perf_counter() - t
        if out.shape[0] != len(prefixes):
            raise ValueError(f"critic returned {out.shape[0]} scores for {len(prefixes)} prefixes")
        if np.isnan(out).any() or np.isposinf(out).any():
            raise ValueError("critic returned NaN or +inf")
        return out

    def _logprobs(self, prefixes: list[list[int]], stats: SMCStats) -> np.ndarray:
        t = time.perf_counter()
        out = self.model.next_logprobs(prefixes)
        if hasattr(out, "detach"):
            out = _torch_to_numpy(out)
        lp = np.array(out, dtype=np.float64)
        stats.model_seconds += time.perf_counter() - t
        stats.model_calls += 1
        stats.model_sequences += len(prefixes)
        if lp.shape != (len(prefixes), self.constraint.vocab.size):
            raise ValueError(
                f"model returned log-probs of shape {lp.shape}, expected "
                f"({len(prefixes)}, {self.constraint.vocab.size})"
            )
        if np.isnan(lp).any() or np.isposinf(lp).any():
            raise ValueError("model returned NaN or +inf log-probabilities")
        m = lp.max(axis=1, keepdims=True)
        finite = np.isfinite(m)
        m = np.where(finite, m, 0.0)
        lse = m + np.log(np.exp(lp - m).sum(axis=1, keepdims=True))
        return np.where(finite, lp - lse, -np.inf)

    # -- the run

    def run(self, prompt: str | Sequence[int] | None = None) -> SMCResult:
        """Run SMC to completion and return the particles, posterior and ``log_ml``."""
        stats = SMCStats()
        self._holder[0] = stats
        t_start = time.perf_counter()
        if prompt is None:
            prompt_ids: list[int] = []
        elif isinstance(prompt, str):
            prompt_ids = list(self.model.prompt_ids(prompt))
        else:
            prompt_ids = [int(t) for t in prompt]

        n = self.n_particles
        c = self._timed
        init = c.initial()
        tokens: list[list[int]] = [[] for _ in range(n)]
        states = [init] * n
        status = [RUNNING] * n
        logw = np.zeros(n, dtype=np.float64)
        logphi = np.zeros(n, dtype=np.float64)
        if self.critic is not None:
            phi0 = float(self._critic([()], stats)[0])
            logphi[:] = phi0
            logw[:] = phi0
            if phi0 == -math.inf:
                status = [DEAD] * n
        ess_trace: list[float] = []
        resampled_at: list[int] = []
        step = 0
        while True:
            live = [i for i in range(n) if status[i] == RUNNING]
            if not live:
                break
            # one batched model call; identical prefixes are sent once
            keys: dict[tuple[int, ...], int] = {}
            row_of = {}
            for i in live:
                k = tuple(tokens[i])
                row_of[i] = keys.setdefault(k, len(keys))
            lp = self._logprobs([prompt_ids + list(k) for k in keys], stats)

            extended: list[int] = []
            for i in live:
                res = self.awrs.step(lp[row_of[i]], states[i], normalized=True)
                stats.checks += res.checks
                stats.exact_steps += res.fallback
                stats.capped += res.capped
                if res.token is None:
                    status[i] = DEAD
                    logw[i] = -math.inf
                    stats.dead_steps += 1
                    continue
                stats.tokens += 1
                logw[i] += res.log_weight
                if res.token in self.eos_ids:
                    status[i] = ACCEPTED
                    logw[i] -= logphi[i]  # φ(complete string) = 1: untwist
                    logphi[i] = 0.0
                    continue
                states[i] = c.advance(states[i], res.token)
                tokens[i].append(res.token)
                extended.append(i)

            if self.critic is not None and extended:
                new = self._critic([tuple(tokens[i]) for i in extended], stats)
                for j, i in enumerate(extended):
                    logw[i] += new[j] - logphi[i]
                    logphi[i] = new[j]
                    if new[j] == -math.inf:
                        status[i] = DEAD
                        logw[i] = -math.inf
            for i in extended:
                if status[i] == RUNNING and len(tokens[i]) >= self.max_tokens:
                    status[i] = INCOMPLETE  # no budget left for EOS: never presented as valid
                    logw[i] = -math.inf

            ess = effective_sample_size(logw)
            ess_trace.append(ess)
            if ess == 0.0:
                break  # every particle has weight 0
            if ess < self.ess_threshold * n and any(s == RUNNING for s in status):
                lse = _logsumexp(logw)
                anc = resample_indices(np.exp(logw - lse), n, self.rng, self.resampling)
                tokens = [list(tokens[a]) for a in anc]
                states = [states[a] for a in anc]
                status = [status[a] for a in anc]
                logphi = logphi[anc].copy()
                logw = np.full(n, lse - math.log(n))  # the mean weight: Σw and log_ml preserved
                resampled_at.append(step)
                stats.resamples += 1
            step += 1
        stats.steps = step
        # anything still running (only possible when every weight hit 0) is incomplete
        status = [INCOMPLETE if s == RUNNING else s for s in status]
        vocab = self.constraint.vocab
        particles = [
            Particle(
                tuple(tokens[i]),
                vocab.decode(tokens[i]),
                float(logw[i]) if status[i] == ACCEPTED else -math.inf,
                status[i],
            )
            for i in range(n)
        ]
        log_ml = _logsumexp(np.array([p.log_weight for p in particles])) - math.log(n)
        stats.total_seconds = time.perf_counter() - t_start
        return SMCResult(particles, log_ml, ess_trace, resampled_at, stats)

    __call__ = run
