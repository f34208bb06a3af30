"""Sequential Monte Carlo over AWRS steps: samples from the *global* constrained distribution.

As a `tether.generate` sampler (one Generation per prompt, drawn from the posterior)::

    >>> g = tether.generate(lm, "Give me a date:", tether.regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}"),
    ...                     sampler=SMC(n_particles=8, seed=0), max_tokens=16)
    >>> g.text, g.status               # ('2024-01-31', <Status.COMPLETE: 'complete'>)
    >>> g.details.posterior            # the full SMCResult: {"2024-01-31": 0.62, ...}

or for the whole posterior directly::

    >>> res = SMC(n_particles=8, seed=0).sample(lm, lm.prompt_ids("Give me a date:"), c, max_tokens=16)
    >>> res.posterior, res.log_ml      # log_ml: log-estimate of P(string in L) under the model

Target: ``P(s) ∝ p(s) · 1[s ∈ L]`` over complete strings ``s`` (EOS included in
``p(s)``), with ``p`` the model and ``L`` the constraint's language.

Each of the N particles extends by one AWRS step per round (an exact sample of
the locally constrained next-token distribution) and multiplies its weight by
the step's unbiased ``Ẑ``; all unfinished particles share ONE batched
``model.next_logprobs`` call per round (identical prefixes, e.g. resampled
copies, are sent once; with several prompts, the particles of all prompts share
that call). When the effective sample size ``(Σw)² / Σw²`` falls
below ``ess_threshold · N`` the particles are resampled and every weight is set
to the *mean* weight, so the mean of the weights is preserved and
``log_ml = log mean(final weights)`` is an unbiased estimate of ``Z = p(L)`` (in
the linear domain; its log is biased low, as usual).

AWRS decoding. AWRS is the per-step proposal, not a sampler of its own: use
``SMC(n_particles=1)`` for plain AWRS decoding (one particle, never resampled:
each token an exact sample of the locally constrained distribution ``p·c/Z``,
i.e. the same law as `Sample()` with a full mask, found with a handful of
``allows`` checks instead of a |V|-wide mask). More particles move the output
from that local law towards the global one.

Budget. ``max_tokens`` counts EOS: a particle must *sample* EOS to be accepted
(its probability is part of the target), so a string of k tokens needs
``max_tokens >= k + 1`` -- one more than `Greedy`, which stops without EOS in a
state where nothing else can follow.

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

from ..models.base import Prompt, check_prompt, is_messages
from .awrs import AWRS, Estimator, _torch_to_numpy
from .base import Generation, SamplerStats, Status, check_run

__all__ = ["SMC", "SMCResult", "SMCStats", "Particle", "resample_indices", "effective_sample_size"]

Resampling = Literal["systematic", "stratified", "multinomial"]
# Checks per AWRS step before the exact mask fallback: real tasks need 1-3 (bench/generation.py);
# the cap only bounds the rare particle that wandered where the model puts little mass on the language.
DEFAULT_MAX_CHECKS = 16
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
    """One final particle: generated ids (EOS excluded), their bytes, log-weight, status, model log-prob."""

    token_ids: tuple[int, ...]
    text: bytes
    log_weight: float
    status: str
    logprob: float = 0.0  # log p(token_ids [+ EOS]) under the model (unconstrained, EOS included)
    eos: int | None = None  # the EOS id an accepted particle sampled

    @property
    def string(self) -> str:
        return self.text.decode("utf-8", errors="replace")


@dataclass
class SMCStats:
    """Counters of one SMC run (one prompt).

    When several prompts run together their model calls are shared: each run
    counts every call it took part in, and gets the share of each call's
    seconds proportional to its particles in it.
    """

    steps: int = 0
    tokens: int = 0  # tokens sampled, EOS included
    checks: int = 0  # verdicts (allows / is_accepting) AWRS asked for
    constraint_calls: int = 0  # those that reached the constraint (the rest were memoised)
    model_calls: int = 0
    model_sequences: int = 0  # prefixes sent to the model (after de-duplication)
    resamples: int = 0
    dead_steps: int = 0
    exact_steps: int = 0  # steps weighted by an exact mask (only-EOS states, capped searches)
    capped: int = 0  # steps that hit max_checks
    masks: int = 0  # full masks computed (the max_checks fallback)
    model_seconds: float = 0.0
    constraint_seconds: float = 0.0
    critic_seconds: float = 0.0
    total_seconds: float = 0.0

    @property
    def checks_per_token(self) -> float:
        """Verdicts AWRS asked for per sampled token."""
        return self.checks / self.tokens if self.tokens else 0.0

    @property
    def calls_per_token(self) -> float:
        """Constraint calls per sampled token (memoised verdicts excluded)."""
        return self.constraint_calls / self.tokens if self.tokens else 0.0

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
    """Forwards the calls AWRS makes to the constraint, accumulating their time into `stats`.

    One-token verdicts are memoised per run on ``(state, token)`` (hashable
    states only): resampled copies of a particle sit in the same state and draw
    from the same distribution, so they re-ask the same questions. A verdict is
    a pure function of its arguments, so the memo changes no outcome, only the
    number of `constraint_calls`.
    """

    def __init__(self, constraint, stats: SMCStats):
        self._c = constraint
        self.stats = stats
        self.vocab = constraint.vocab
        self._memo: dict = {}

    def _verdict(self, fn, state, tok):
        try:
            key = (state, tok)
            hit = self._memo.get(key)
        except TypeError:  # unhashable state: no memo
            key = hit = None
        if hit is not None:
            return hit
        self.stats.constraint_calls += 1
        out = bool(self._timed(fn, *((state, tok) if tok is not None else (state,))))
        if key is not None:
            self._memo[key] = out
        return out

    def _timed(self, fn, *args):
        t = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.stats.constraint_seconds += time.perf_counter() - t

    def allows(self, state, tok):
        return self._verdict(self._c.allows, state, int(tok))

    def is_accepting(self, state):
        return self._verdict(self._c.is_accepting, state, None)

    def is_finished(self, state):
        return self._timed(self._c.is_finished, state)

    def advance(self, state, tok):
        return self._timed(self._c.advance, state, tok)

    def mask(self, state):
        return self._timed(self._c.mask, state)

    def initial(self):
        return self._timed(self._c.initial)


def _normalize_rows(out, vocab_size: int, n: int) -> np.ndarray:
    """The model's batch of log-probs as float64 numpy rows, checked and renormalised."""
    if hasattr(out, "detach"):
        out = _torch_to_numpy(out)
    lp = np.array(out, dtype=np.float64)
    if lp.shape != (n, vocab_size):
        raise ValueError(f"model returned log-probs of shape {lp.shape}, expected ({n}, {vocab_size})")
    if np.isnan(lp).any() or np.isposinf(lp).any():
        raise ValueError("model returned NaN or +inf log-probabilities")
    m = lp.max(axis=1, keepdims=True)
    finite = np.isfinite(m)
    m = np.where(finite, m, 0.0)
    lse = m + np.log(np.exp(lp - m).sum(axis=1, keepdims=True))
    return np.where(finite, lp - lse, -np.inf)


class _Run:
    """The N particles of one prompt, advanced one round at a time by `SMC._sample_all`."""

    def __init__(self, smc: "SMC", prompt_ids: list[int], constraint, max_tokens: int):
        t0 = time.perf_counter()
        self.smc = smc
        self.prompt = tuple(prompt_ids)
        self.constraint = constraint
        self.max_tokens = max_tokens
        self.stats = stats = SMCStats()
        self.c = c = _TimedConstraint(constraint, stats)
        self.awrs = AWRS(c, estimator=smc.estimator, peeks=smc.peeks, max_checks=smc.max_checks,
                         order=smc.order, seed=smc.rng)
        self.eos_ids = frozenset(int(e) for e in constraint.vocab.eos_ids)
        n = self.n = smc.n_particles
        init = c.initial()
        self.tokens: list[list[int]] = [[] for _ in range(n)]
        self.states = [init] * n
        self.status = [RUNNING] * n
        self.eos: list[int | None] = [None] * n
        self.logw = np.zeros(n, dtype=np.float64)
        self.logphi = np.zeros(n, dtype=np.float64)
        self.logp = np.zeros(n, dtype=np.float64)  # model log-prob of each particle's tokens
        if smc.critic is not None:
            phi0 = float(self._critic([()])[0])
            self.logphi[:] = phi0
            self.logw[:] = phi0
            if phi0 == -math.inf:
                self.status = [DEAD] * n
        self.ess_trace: list[float] = []
        self.resampled_at: list[int] = []
        self.step = 0
        self.done = False
        stats.total_seconds += time.perf_counter() - t0

    def live(self) -> list[int]:
        return [] if self.done else [i for i in range(self.n) if self.status[i] == RUNNING]

    def _critic(self, prefixes: list[tuple[int, ...]]) -> np.ndarray:
        t = time.perf_counter()
        out = np.asarray(self.smc.critic(prefixes), dtype=np.float64).reshape(-1)
        self.stats.critic_seconds += time.perf_counter() - t
        if out.shape[0] != len(prefixes):
            raise ValueError(f"critic returned {out.shape[0]} scores for {len(prefixes)} prefixes")
        if np.isnan(out).any() or np.isposinf(out).any():
            raise ValueError("critic returned NaN or +inf")
        return out

    def advance(self, rows: dict[int, np.ndarray]) -> None:
        """One round: an AWRS step for every live particle (``rows[i]``: its log-probs), then
        critic, budget, ESS and resampling."""
        t0 = time.perf_counter()
        stats, c, n = self.stats, self.c, self.n
        tokens, states, status, logw, logphi = self.tokens, self.states, self.status, self.logw, self.logphi
        extended: list[int] = []
        for i, row in rows.items():
            res = self.awrs.step(row, states[i], normalized=True)
            stats.checks += res.checks
            stats.exact_steps += res.fallback
            stats.capped += res.capped
            stats.masks += res.fallback and res.capped
            if res.token is None:
                status[i] = DEAD
                logw[i] = -math.inf
                stats.dead_steps += 1
                continue
            stats.tokens += 1
            logw[i] += res.log_weight
            self.logp[i] += row[res.token]
            if res.token in self.eos_ids:
                status[i] = ACCEPTED
                self.eos[i] = res.token
                logw[i] -= logphi[i]  # φ(complete string) = 1: untwist
                logphi[i] = 0.0
                continue
            states[i] = c.advance(states[i], res.token)
            tokens[i].append(res.token)
            extended.append(i)

        if self.smc.critic is not None and extended:
            new = self._critic([tuple(tokens[i]) for i in extended])
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
        self.ess_trace.append(ess)
        if ess == 0.0:
            self.done = True  # every particle has weight 0
        elif ess < self.smc.ess_threshold * n and any(s == RUNNING for s in status):
            lse = _logsumexp(logw)
            anc = resample_indices(np.exp(logw - lse), n, self.smc.rng, self.smc.resampling)
            self.tokens = [list(tokens[a]) for a in anc]
            self.states = [states[a] for a in anc]
            self.status = [status[a] for a in anc]
            self.eos = [self.eos[a] for a in anc]
            self.logphi = logphi[anc].copy()
            self.logp = self.logp[anc].copy()
            self.logw = np.full(n, lse - math.log(n))  # the mean weight: Σw and log_ml preserved
            self.resampled_at.append(self.step)
            stats.resamples += 1
        self.step += 1
        stats.total_seconds += time.perf_counter() - t0

    def result(self) -> SMCResult:
        stats = self.stats
        stats.steps = self.step
        # anything still running (only possible when every weight hit 0) is incomplete
        status = [INCOMPLETE if s == RUNNING else s for s in self.status]
        vocab = self.constraint.vocab
        particles = [
            Particle(
                tuple(self.tokens[i]),
                vocab.decode(self.tokens[i]),
                float(self.logw[i]) if status[i] == ACCEPTED else -math.inf,
                status[i],
                float(self.logp[i]),
                self.eos[i] if status[i] == ACCEPTED else None,
            )
            for i in range(self.n)
        ]
        log_ml = _logsumexp(np.array([p.log_weight for p in particles])) - math.log(self.n)
        return SMCResult(particles, log_ml, self.ess_trace, self.resampled_at, stats)


class SMC:
    """AWRS-SMC: N particles, one batched model call per round, ESS-triggered resampling.

    A sampler for `tether.generate` (``run``), or a posterior over strings (``sample``).

    n_particles: N (1: plain AWRS decoding). ess_threshold: resample when ESS < ess_threshold · N (0: never).
    resampling: "systematic" (default), "stratified" or "multinomial".
    estimator, peeks, max_checks, order: passed to `AWRS` (see `tether.samplers.awrs`).
        A step that reaches ``max_checks`` finishes with the full mask, which keeps the
        "recursive" estimator exact; so "auto" (the default) caps recursive steps at 16
        checks, and leaves "two_pass" uncapped, since a cap biases it.
    critic: optional batched log-potential over generated prefixes (see module doc).
    seed: int or numpy Generator; successive calls continue the stream.
    """

    def __init__(
        self,
        n_particles: int = 8,
        *,
        ess_threshold: float = 0.5,
        resampling: Resampling = "systematic",
        estimator: Estimator = "recursive",
        peeks: int = 1,
        critic: Critic | None = None,
        max_checks: int | None | Literal["auto"] = "auto",
        seed: int | np.random.Generator | None = None,
        order: str = "sequential",
    ):
        if isinstance(n_particles, bool) or not isinstance(n_particles, (int, np.integer)) or n_particles < 1:
            raise ValueError(f"n_particles must be an integer >= 1, got {n_particles!r}")
        if not 0.0 <= ess_threshold <= 1.0:
            raise ValueError(f"ess_threshold must be in [0, 1], got {ess_threshold}")
        if resampling not in ("systematic", "stratified", "multinomial"):
            raise ValueError(
                f"resampling must be 'systematic', 'stratified' or 'multinomial', got {resampling!r}"
            )
        if estimator not in ("recursive", "two_pass"):
            raise ValueError(f"estimator must be 'recursive' or 'two_pass', got {estimator!r}")
        if peeks < 1:
            raise ValueError(f"peeks must be >= 1, got {peeks}")
        if max_checks == "auto":
            max_checks = DEFAULT_MAX_CHECKS if estimator == "recursive" else None
        if max_checks is not None and max_checks < 0:
            raise ValueError(f"max_checks must be >= 0, got {max_checks}")
        if order not in ("sequential", "gumbel"):
            raise ValueError(f"order must be 'sequential' or 'gumbel', got {order!r}")
        self.n_particles = int(n_particles)
        self.ess_threshold = ess_threshold
        self.resampling = resampling
        self.estimator = estimator
        self.peeks = peeks
        self.critic = critic
        self.max_checks = max_checks
        self.order = order
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    def __repr__(self) -> str:
        return (f"SMC(n_particles={self.n_particles}, ess_threshold={self.ess_threshold}, "
                f"resampling={self.resampling!r}, estimator={self.estimator!r})")

    # -- the public entry points

    def sample(self, model, prompt_ids: "Prompt | Sequence[int]", constraint, max_tokens: int = 64) -> SMCResult:
        """Run SMC for one prompt and return the particles, posterior, ``log_ml`` and diagnostics.

        prompt_ids: token ids (prompt included, as `model.next_logprobs` wants them),
        or a string or chat messages for `model.prompt_ids`. max_tokens: budget per
        particle, EOS included.
        """
        if isinstance(prompt_ids, str) or is_messages(prompt_ids):
            prompt_ids = model.prompt_ids(check_prompt(prompt_ids))
        return self.sample_batch(model, [prompt_ids], constraint, max_tokens)[0]

    def sample_batch(self, model, prompts: Sequence[Sequence[int]], constraint,
                     max_tokens: int = 64) -> list[SMCResult]:
        """Independent SMC runs, one per prompt, whose particles share one model call per round.

        Raises `VocabularyMismatch` unless `constraint` was compiled for ``model.vocab``
        (same fingerprint), and `ContextLengthExceeded` when a prompt plus
        `max_tokens` does not fit ``model.context_length``.
        """
        check_run(model, prompts, constraint, max_tokens)
        runs = [_Run(self, [int(t) for t in p], constraint, max_tokens) for p in prompts]
        size = constraint.vocab.size
        while True:
            keys: dict[tuple[int, ...], int] = {}  # full prefix -> row; identical ones sent once
            todo: list[tuple[_Run, list[int], list[int]]] = []
            for run in runs:
                live = run.live()
                if not live:
                    continue
                rows = [keys.setdefault(run.prompt + tuple(run.tokens[i]), len(keys)) for i in live]
                todo.append((run, live, rows))
            if not todo:
                break
            t = time.perf_counter()
            lp = _normalize_rows(model.next_logprobs([list(k) for k in keys]), size, len(keys))
            seconds = time.perf_counter() - t
            total_live = sum(len(live) for _, live, _ in todo)
            for run, live, rows in todo:
                share = seconds * len(live) / total_live
                run.stats.model_calls += 1
                run.stats.model_sequences += len(set(rows))
                run.stats.model_seconds += share
                run.stats.total_seconds += share
                run.advance({i: lp[r] for i, r in zip(live, rows)})
        return [run.result() for run in runs]

    def run(self, model, prompts: Sequence[Sequence[int]], constraint, max_tokens: int, *,
            n: int = 1) -> list[Generation]:
        """The `tether.generate` interface: `n` Generations per prompt (grouped by prompt), each
        drawn from the posterior of its own independent SMC run (all runs share the model calls).

        A COMPLETE generation is a particle drawn with its normalised final weight
        (``value`` from ``constraint.parse``); if no particle was accepted the
        generation is INCOMPLETE (some particle ran out of ``max_tokens``) or DEAD,
        with the longest such particle's text and ``value=None``. ``logprob`` is the
        model's log-probability of the tokens (EOS included); ``details`` holds the
        full `SMCResult`; ``stats`` that run's counters (shared model calls: see `SMCStats`;
        ``constraint_checks`` counts calls that reached the constraint, memoised verdicts excluded).
        """
        check_run(model, prompts, constraint, max_tokens, n)
        results = self.sample_batch(model, [p for p in prompts for _ in range(n)], constraint, max_tokens)
        return [self._generation(res, constraint) for res in results]

    # -- helpers

    def _generation(self, res: SMCResult, constraint) -> Generation:
        from .lcd import finish

        s = res.stats
        stats = SamplerStats(steps=s.steps, tokens=s.tokens, model_calls=s.model_calls,
                             model_seconds=s.model_seconds, constraint_seconds=s.constraint_seconds,
                             constraint_checks=s.constraint_calls, masks=s.masks)
        w = res.weights
        if w.sum() > 0:
            j = int(resample_indices(w, 1, self.rng, "multinomial")[0])
            p = res.particles[j]
            ids = list(p.token_ids) + ([p.eos] if p.eos is not None else [])
            status = Status.COMPLETE
        else:
            incomplete = [p for p in res.particles if p.status == INCOMPLETE]
            status = Status.INCOMPLETE if incomplete else Status.DEAD
            p = max(incomplete or res.particles, key=lambda q: len(q.token_ids))
            ids = list(p.token_ids)
        gen = finish(constraint, ids, status, p.logprob, stats)
        gen.details = res
        return gen
