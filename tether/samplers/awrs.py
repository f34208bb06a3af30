r"""Adaptive weighted rejection sampling (AWRS; Lipkin et al. 2025).

One step draws the next token from ``p·c / Z`` (``p`` the LM's next-token
distribution, ``c`` the constraint's 0/1 verdict) by walking the tokens in
Gumbel-key order -- i.e. sampling from ``p`` without replacement -- and
checking only the tokens it draws, until one is allowed. It also returns an
unbiased estimate ``Ẑ`` of ``Z``, so that ``(token, Ẑ)`` is *properly weighted*:
``E[Ẑ · 1[token = v]] = p(v)·c(v)`` for every ``v``. That is what SMC needs
to target the global constrained distribution.

    >>> res = awrs_step(logprobs, lambda t: constraint.allows(state, t), rng)
    >>> res.token, res.log_weight, res.checks

Estimators (``estimator=``):

``"two_pass"`` (the paper's): after the first pass accepted ``x`` with rejected
    set ``R1``, run a second, independent pass without replacement over
    ``V \ R1`` until acceptance; with ``n`` the total number of rejections of
    both passes, ``Ẑ = (1 - p(R1)) / (n + 1)``.

``"recursive"`` (default; fewer checks, lower variance): continue the *same*
    Gumbel order past the accepted ``x`` for ``peeks = m`` more tokens
    ``u_1..u_m`` (``m`` extra checks) and set
    ``Ẑ = p(x) + Σ_{j<m} p(u_j) c(u_j) + S_m · c(u_m)``, with ``S_m`` the mass
    not yet drawn before ``u_m`` (``S_1 = 1 - p(R1) - p(x)``). If the order runs
    out first, every term is exact and ``Ẑ = Z``. With ``m = 1`` (the default):
    ``Ẑ = p(x) + (1 - p(R1) - p(x)) · c(y)``, ``y`` the next token in the order.

    Why it is properly weighted. Condition on the first pass, i.e. on the
    rejected prefix ``R1`` and on ``x``. The rest of the order is a
    Plackett-Luce order of the tail ``T = V \ (R1 ∪ {x})``, whose allowed mass
    is ``Z - p(x)`` because every token of ``R1`` is disallowed. The tail term
    is the recursive without-replacement estimator of that mass: for a set of
    mass ``S`` and allowed mass ``A``, one draw ``u`` gives ``S·c(u)`` with
    mean ``A`` (closing), and ``p(u)c(u) + [estimate for the set minus u]``
    equals ``A`` in expectation whatever ``u`` is (expanding); the number of
    expansions is fixed before each draw. Hence ``E[Ẑ | R1, x] = p(x) + Z -
    p(x) = Z`` *conditionally on the sampled token*, so
    ``E[Ẑ · 1[x = v]] = Z · P(x = v) = p(v) c(v)``.
    Variance: ``Var Ẑ = E[Var(Ẑ | R1, x)]``; for ``m = 1`` it is
    ``E[(Z - p(x)) (S_1 - Z + p(x))]`` -- zero when ``x`` is the only allowed
    token, or when everything after ``x`` is allowed -- and each extra peek
    lowers it by ``E[A·p(u)(1-c(u)) + p(u)c(u)(S - A)] >= 0`` (``A, S`` the
    tail's allowed and total mass before ``u``).

``max_checks`` caps the ``allows`` calls of the search (and, for
``"two_pass"``, of the second pass; the recursive peeks add ``peeks`` more).
When the search hits the cap without an accepted token, ``fallback_mask``
(a zero-argument callable returning the full bool mask) is used if given:
the token is then the first allowed one in the order and the weight is the
exact ``Z``. With ``"recursive"`` this keeps the step exact (the argument
above conditions on the first pass, whatever ended it). Everything else
capped is **biased**: without a fallback the step returns weight 0 (the
particle dies although ``Z`` may be > 0), and ``"two_pass"`` is biased by any
cap, even with the fallback (its unbiasedness needs both passes complete).
Leave ``max_checks=None``, or use ``"recursive"`` with a fallback, for exactness.

All probability arithmetic is in float64 log-space; a removed mass close to 1
is computed from the complement, so very small ``Z`` (e.g. ``1e-30``) stays
accurate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Collection, Iterator, Literal, Sequence, Union

import numpy as np

__all__ = [
    "AWRS",
    "AWRSStats",
    "StepResult",
    "awrs_step",
    "awrs_weight",
    "sequential_order",
    "gumbel_order",
    "normalize_logprobs",
    "log_mass_excluding",
]

Estimator = Literal["recursive", "two_pass"]
OrderFactory = Callable[[np.ndarray, Collection[int]], Iterator[int]]
"""``order(logp, excluded)`` -> an iterator over every token id with ``p > 0``
not in ``excluded``, each once, in Plackett-Luce(p) order (sampling without
replacement). The AWRS core only ever reads orders through this hook, so a
test can inject any order (e.g. every permutation) and enumerate outcomes."""

_ESTIMATORS = ("recursive", "two_pass")


# --------------------------------------------------------------------------- orders


def normalize_logprobs(logprobs) -> np.ndarray:
    """A float64 numpy copy of ``logprobs`` (1-D numpy or torch), shifted to sum to 1.

    Returns all ``-inf`` if every entry is ``-inf`` (nothing can be drawn).
    """
    if hasattr(logprobs, "detach"):  # torch.Tensor
        logprobs = _torch_to_numpy(logprobs)
    lp = np.array(logprobs, dtype=np.float64, copy=True)
    if lp.ndim != 1:
        raise ValueError(f"logprobs must be 1-D, got shape {lp.shape}")
    if np.isnan(lp).any() or np.isposinf(lp).any():
        raise ValueError("logprobs contain NaN or +inf")
    m = lp.max(initial=-np.inf)
    if m == -np.inf:
        return lp
    lp -= m + math.log(np.exp(lp - m).sum())
    return lp


def _torch_to_numpy(t) -> np.ndarray:
    """A torch tensor as a numpy array (float32/float64 kept; bf16/fp16 widened to float32)."""
    import torch

    t = t.detach()
    if t.dtype not in (torch.float32, torch.float64):
        t = t.float()
    return t.cpu().numpy()


def _log_mass_of(logp: np.ndarray, ids: np.ndarray) -> float:
    if ids.size == 0:
        return -math.inf
    sub = logp[ids]
    m = sub.max()
    if m == -np.inf:
        return -math.inf
    return float(m + math.log(np.exp(sub - m).sum()))


def log_mass_excluding(logp: np.ndarray, ids: Collection[int]) -> float:
    """``log(1 - p(ids))`` for normalised ``logp``, accurate when ``p(ids)`` is close to 1."""
    if not ids:
        return 0.0
    idx = np.fromiter(ids, dtype=np.int64, count=len(ids))
    removed = math.exp(_log_mass_of(logp, idx)) if idx.size else 0.0
    if removed <= 0.5:
        return math.log1p(-removed)
    keep = np.ones(logp.shape[0], dtype=bool)
    keep[idx] = False
    return _log_mass_of(logp, np.flatnonzero(keep))


class _SequentialOrder:
    """Sampling without replacement by inverse-CDF draws, skipping tokens already drawn.

    Drawing from ``p`` with replacement and discarding repeats yields exactly the
    Plackett-Luce order (the same law as sorting ``log p + Gumbel`` keys). Cost:
    one vectorised exp + cumsum, then O(log V) per draw. When the removed mass
    exceeds half of the current base, the CDF is rebuilt over the remaining
    tokens in log-space (so at most ~2 draws per token on average and no
    precision loss when the remaining mass is tiny).
    """

    def __init__(self, logp: np.ndarray, excluded: Collection[int], rng: np.random.Generator):
        self._logp = logp
        self._rng = rng
        self._seen: set[int] = set(int(i) for i in excluded)
        self._base: np.ndarray | None = None  # token ids of the current base (None: all)
        self._w = None  # normalised weights over the base
        self._cdf = None
        self._removed = 0.0  # base-mass of seen tokens
        self._left = int(np.count_nonzero(logp > -np.inf)) - sum(
            1 for i in self._seen if 0 <= i < logp.shape[0] and logp[i] > -np.inf
        )
        self._build(initial=True)

    def _build(self, initial: bool = False) -> None:
        lp = self._logp
        if initial and not self._seen:
            base = None
            sub = lp
        else:
            keep = lp > -np.inf
            if self._seen:
                keep[np.fromiter(self._seen, dtype=np.int64, count=len(self._seen))] = False
            base = np.flatnonzero(keep)
            sub = lp[base]
        if sub.size == 0 or self._left <= 0:
            self._left = 0
            return
        m = sub.max()
        w = np.exp(sub - m)
        w /= w.sum()
        self._base, self._w, self._cdf = base, w, np.cumsum(w)
        self._removed = 0.0

    def __iter__(self) -> "_SequentialOrder":
        return self

    def __next__(self) -> int:
        if self._left <= 0:
            raise StopIteration
        if self._removed > 0.5:
            self._build()
            if self._left <= 0:
                raise StopIteration
        cdf, total = self._cdf, self._cdf[-1]
        while True:
            j = int(np.searchsorted(cdf, self._rng.random() * total, side="right"))
            if j >= cdf.shape[0]:
                continue
            tok = j if self._base is None else int(self._base[j])
            if tok not in self._seen:
                break
        self._seen.add(tok)
        self._removed += float(self._w[j])
        self._left -= 1
        return tok


class _GumbelOrder:
    """Gumbel-key order, lazily: keys ``log p + G`` are drawn once (O(V)); the
    order is produced by an argmax, then by argpartition on chunks of growing size,
    so the vocabulary is never fully sorted."""

    def __init__(self, logp: np.ndarray, excluded: Collection[int], rng: np.random.Generator):
        keys = logp + rng.gumbel(size=logp.shape[0])
        if excluded:
            keys[np.fromiter(excluded, dtype=np.int64, count=len(excluded))] = -np.inf
        self._keys = keys
        self._gen = self._generate()

    def _generate(self) -> Iterator[int]:
        keys = self._keys
        first = int(np.argmax(keys))
        if keys[first] == -np.inf:
            return
        yield first
        keys[first] = -np.inf
        rest = np.flatnonzero(keys > -np.inf)
        k = 16
        while rest.size:
            if rest.size <= k:
                yield from (int(t) for t in rest[np.argsort(-keys[rest], kind="stable")])
                return
            part = np.argpartition(-keys[rest], k - 1)
            top = rest[part[:k]]
            yield from (int(t) for t in top[np.argsort(-keys[top], kind="stable")])
            rest = rest[part[k:]]
            k *= 4

    def __iter__(self) -> "_GumbelOrder":
        return self

    def __next__(self) -> int:
        return next(self._gen)


def sequential_order(rng: np.random.Generator) -> OrderFactory:
    """The default order: inverse-CDF sampling without replacement (see `_SequentialOrder`)."""
    return lambda logp, excluded: _SequentialOrder(logp, excluded, rng)


def gumbel_order(rng: np.random.Generator) -> OrderFactory:
    """Lazily sorted Gumbel keys (same law as `sequential_order`, ~3x slower at 150k tokens)."""
    return lambda logp, excluded: _GumbelOrder(logp, excluded, rng)


# --------------------------------------------------------------------------- the step


@dataclass(frozen=True)
class StepResult:
    """One AWRS step.

    token: the sampled id, or None when nothing is allowed (``log_weight`` is then -inf).
    log_weight: log of the estimate Ẑ (the exact Z when ``fallback`` is set).
    checks: calls to ``allows`` made in this step.
    rejected: the first pass's rejected ids R1, in draw order.
    rejections: n, total rejections (``"two_pass"``: both passes).
    peeked: the tokens after ``token`` in the order that were checked (``"recursive"``).
    peeked_allowed: their verdicts ``c(u_j)``.
    closing: the last peeked token is the one-draw closing term (False when the
        order ran out, so every term is exact).
    fallback: the mask fallback was used (see ``max_checks``); ``mask`` is that mask.
    capped: ``max_checks`` was reached somewhere in the step.
    """

    token: int | None
    log_weight: float
    checks: int
    estimator: str
    rejected: tuple[int, ...] = ()
    rejections: int = 0
    peeked: tuple[int, ...] = ()
    peeked_allowed: tuple[bool, ...] = ()
    closing: bool = False
    fallback: bool = False
    capped: bool = False
    mask: np.ndarray | None = None

    @property
    def weight(self) -> float:
        return math.exp(self.log_weight)


def awrs_step(
    logprobs,
    allows: Callable[[int], bool],
    rng: np.random.Generator | None = None,
    *,
    estimator: Estimator = "recursive",
    max_checks: int | None = None,
    fallback_mask: Callable[[], np.ndarray] | None = None,
    peeks: int = 1,
    order: Union[str, OrderFactory] = "sequential",
    normalized: bool = False,
) -> StepResult:
    """One AWRS step: an exact sample of ``p·c/Z`` and a properly weighted ``Ẑ``.

    logprobs: 1-D log-probabilities (numpy or torch; normalised here unless
        ``normalized=True``). ``-inf`` entries are never drawn.
    allows: the constraint's one-token check (EOS must answer ``is_accepting``).
    rng: numpy Generator for the default orders.
    estimator: ``"recursive"`` (default) or ``"two_pass"``; ``peeks``: the
        recursive estimator's extra checks (>= 1; more peeks, lower variance).
    max_checks, fallback_mask: see the module docstring (capping may bias).
    order: ``"sequential"`` (default), ``"gumbel"`` or an `OrderFactory`.
    """
    if estimator not in _ESTIMATORS:
        raise ValueError(f"estimator must be one of {_ESTIMATORS}, got {estimator!r}")
    if peeks < 1:
        raise ValueError(f"peeks must be >= 1, got {peeks}")
    if max_checks is not None and max_checks < 0:
        raise ValueError(f"max_checks must be >= 0, got {max_checks}")
    logp = logprobs if normalized and isinstance(logprobs, np.ndarray) else normalize_logprobs(logprobs)
    if isinstance(order, str):
        if rng is None:
            raise ValueError("rng is required unless an order factory is given")
        if order == "sequential":
            order = sequential_order(rng)
        elif order == "gumbel":
            order = gumbel_order(rng)
        else:
            raise ValueError(f"order must be 'sequential', 'gumbel' or a callable, got {order!r}")

    checks = 0
    rejected: list[int] = []
    it = iter(order(logp, ()))
    token = None
    # ---- first pass: the search
    for t in it:
        if max_checks is not None and checks >= max_checks:
            return _fallback(logp, it, t, rejected, checks, estimator, fallback_mask)
        checks += 1
        if allows(t):
            token = t
            break
        rejected.append(t)
    if token is None:
        return StepResult(None, -math.inf, checks, estimator, tuple(rejected), len(rejected))

    log_rest = log_mass_excluding(logp, rejected)  # log(1 - p(R1))
    if estimator == "recursive":
        peeked: list[int] = []
        verdicts: list[bool] = []
        for u in it:
            checks += 1
            peeked.append(u)
            verdicts.append(bool(allows(u)))
            if len(peeked) == peeks:
                break
        closing = len(peeked) == peeks
        terms = [float(logp[token])]
        terms += [float(logp[u]) for u, ok in zip(peeked[: peeks - 1], verdicts) if ok]
        if closing and verdicts[-1]:
            # S_m: the mass of V \ (R1 ∪ {x} ∪ {u_1..u_{m-1}}), accurate near 0
            terms.append(log_mass_excluding(logp, rejected + [token] + peeked[:-1]))
        lw = float(np.logaddexp.reduce(terms)) if len(terms) > 1 else terms[0]
        return StepResult(
            token, lw, checks, estimator, tuple(rejected), len(rejected),
            tuple(peeked), tuple(verdicts), closing,
        )

    # ---- two_pass: an independent second pass over V \ R1, without replacement
    n2 = 0
    capped = False
    checks2 = 0
    for t in order(logp, rejected):
        if t == token:
            break  # known to be allowed: no check needed
        if max_checks is not None and checks2 >= max_checks:
            capped = True  # biased: stop counting (documented)
            break
        checks2 += 1
        if allows(t):
            break
        n2 += 1
    n = len(rejected) + n2
    lw = log_rest - math.log(n + 1)
    return StepResult(token, lw, checks + checks2, estimator, tuple(rejected), n, capped=capped)


def _fallback(logp, it, first, rejected, checks, estimator, fallback_mask) -> StepResult:
    """The search hit ``max_checks``: exact mask fallback, or death (biased)."""
    if fallback_mask is None:
        return StepResult(None, -math.inf, checks, estimator, tuple(rejected), len(rejected), capped=True)
    mask = np.asarray(fallback_mask(), dtype=bool)
    token = None
    for t in _chain_first(first, it):
        if mask[t]:
            token = t
            break
    allowed = np.flatnonzero(mask[: logp.shape[0]])
    lw = _log_mass_of(logp, allowed)
    if token is None:
        lw = -math.inf
    return StepResult(
        token, lw, checks, estimator, tuple(rejected), len(rejected), fallback=True, capped=True, mask=mask
    )


def _chain_first(first: int, it: Iterator[int]) -> Iterator[int]:
    yield first
    yield from it


def awrs_weight(res: StepResult, probs: Sequence):
    """The weight of ``res`` recomputed from ``probs`` in any number type (e.g. `Fraction`).

    The reference formula the float log-space path implements; tests use it for
    exact enumeration.
    """
    if res.token is None:
        return probs[0] * 0
    if res.fallback:
        return sum((probs[i] for i in range(len(probs)) if res.mask[i]), probs[0] * 0)
    rest = 1 - sum((probs[i] for i in res.rejected), probs[0] * 0)
    if res.estimator == "two_pass":
        return rest / (res.rejections + 1)
    z = probs[res.token]
    left = rest - probs[res.token]
    for j, (u, ok) in enumerate(zip(res.peeked, res.peeked_allowed)):
        last = j == len(res.peeked) - 1
        if last and res.closing:
            return z + (left if ok else 0)
        z += probs[u] if ok else 0
        left -= probs[u]
    return z


# --------------------------------------------------------------------------- class wrapper


@dataclass
class AWRSStats:
    steps: int = 0
    checks: int = 0
    dead: int = 0
    fallbacks: int = 0
    capped: int = 0

    @property
    def checks_per_step(self) -> float:
        return self.checks / self.steps if self.steps else 0.0


class AWRS:
    """AWRS bound to a constraint: ``step(logprobs, state) -> StepResult``.

        >>> sampler = AWRS(constraint, seed=0)
        >>> res = sampler.step(model.next_logprobs([prefix])[0], state)

    Keeps counters (`stats`: steps, checks, checks per step, dead steps,
    fallbacks). When the state is finished (only EOS may follow), the step is
    computed exactly from the EOS ids without any check.
    """

    def __init__(
        self,
        constraint,
        *,
        estimator: Estimator = "recursive",
        peeks: int = 1,
        max_checks: int | None = None,
        mask_fallback: bool = True,
        order: str = "sequential",
        seed: int | np.random.Generator | None = None,
    ):
        if estimator not in _ESTIMATORS:
            raise ValueError(f"estimator must be one of {_ESTIMATORS}, got {estimator!r}")
        self.constraint = constraint
        if peeks < 1:
            raise ValueError(f"peeks must be >= 1, got {peeks}")
        self.estimator = estimator
        self.peeks = peeks
        self.max_checks = max_checks
        self.mask_fallback = mask_fallback
        self.order = order
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.eos_ids = frozenset(int(e) for e in constraint.vocab.eos_ids)
        self.stats = AWRSStats()

    def allows_fn(self, state) -> Callable[[int], bool]:
        c, eos = self.constraint, self.eos_ids

        def allows(t: int) -> bool:
            if t in eos:
                return bool(c.is_accepting(state))
            return bool(c.allows(state, t))

        return allows

    def step(
        self,
        logprobs,
        state,
        allows: Callable[[int], bool] | None = None,
        *,
        normalized: bool = False,
    ) -> StepResult:
        """Sample the token after ``state`` from ``logprobs`` (1-D, numpy or torch).

        ``allows`` overrides the one-token check (e.g. a timed wrapper); it must
        answer ``is_accepting(state)`` for EOS ids. ``normalized=True`` skips
        renormalising a float64 numpy row that already sums to 1.
        """
        c = self.constraint
        if normalized and isinstance(logprobs, np.ndarray) and logprobs.dtype == np.float64:
            logp = logprobs
        else:
            logp = normalize_logprobs(logprobs)
        if c.is_finished(state):
            res = _eos_only(logp, self.eos_ids, self.rng, self.estimator)
        else:
            fb = (lambda: c.mask(state)) if self.mask_fallback and self.max_checks is not None else None
            res = awrs_step(
                logp,
                allows or self.allows_fn(state),
                self.rng,
                estimator=self.estimator,
                peeks=self.peeks,
                max_checks=self.max_checks,
                fallback_mask=fb,
                order=self.order,
                normalized=True,
            )
        s = self.stats
        s.steps += 1
        s.checks += res.checks
        s.dead += res.token is None
        s.fallbacks += res.fallback
        s.capped += res.capped
        return res


def _eos_only(logp: np.ndarray, eos_ids, rng: np.random.Generator, estimator: str) -> StepResult:
    """Exact step when only EOS may follow: token ∝ p on the EOS ids, weight p(EOS)."""
    ids = np.array(sorted(i for i in eos_ids if i < logp.shape[0]), dtype=np.int64)
    lw = _log_mass_of(logp, ids)
    if lw == -math.inf:
        return StepResult(None, -math.inf, 0, estimator)
    pr = np.exp(logp[ids] - lw)
    tok = int(ids[min(int(np.searchsorted(np.cumsum(pr), rng.random() * pr.sum(), side="right")), ids.size - 1)])
    mask = np.zeros(logp.shape[0], dtype=bool)
    mask[ids] = True
    return StepResult(tok, lw, 0, estimator, fallback=True, mask=mask)
