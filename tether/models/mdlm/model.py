"""A small bidirectional transformer trained with the MDLM objective (Sahoo et al. 2024).

"Simple and Effective Masked Diffusion Language Models" (arXiv:2406.07524), in the form used here:

- absorbing-state forward process: each token of x is replaced by [MASK] independently with
  probability 1 - alpha_t;
- log-linear schedule alpha_t = 1 - t, so the masking rate *is* t, with t ~ U(eps, 1) drawn
  low-discrepancy across a batch (one uniform offset, then evenly spaced: the paper's
  antithetic sampling, which lowers the variance of the NELBO estimate);
- SUBS parameterisation: the denoiser gives zero probability to [MASK] and copies every
  unmasked token through unchanged (so unmasked positions cost nothing in the loss);
- continuous-time NELBO: E_t [ -alpha'_t / (1 - alpha_t) * sum_{l masked} log p(x_l | z_t) ],
  which for alpha_t = 1 - t is a weight of 1/t on the masked-token cross-entropy.

No time conditioning: with SUBS and an absorbing state the optimal denoiser does not depend on
t (the paper's observation), which is also why `logprobs(sequences)` needs no t.

    >>> cfg = MDLMConfig(vocab_size=512, mask_id=1)
    >>> net = MDLMTransformer(cfg)
    >>> loss, tokens = nelbo(net, torch.randint(2, 512, (4, 32)))    # sum over the batch, and its tokens
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ..._optional import require

torch = require("torch", "tether's MDLM")
nn = torch.nn
F = torch.nn.functional

__all__ = ["MDLMConfig", "MDLMTransformer", "sample_times", "mask_tokens", "subs_logprobs", "nelbo",
           "nelbo_rows", "EPS"]

# t is drawn from U(EPS, 1) rather than U(0, 1): at t -> 0 nothing is masked and the 1/t weight
# diverges (the paper clips the same way, with 1e-3).
EPS = 1e-3


@dataclass(frozen=True)
class MDLMConfig:
    """Architecture of the denoiser; stored in record.json and next to the weights."""

    vocab_size: int
    mask_id: int
    context_length: int = 256
    d_model: int = 256
    n_layers: int = 6
    n_heads: int = 4
    mlp_ratio: int = 4
    rope_base: float = 10000.0

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ValueError(f"d_model={self.d_model} must split into n_heads={self.n_heads} even-sized heads")
        if not 0 <= self.mask_id < self.vocab_size:
            raise ValueError(f"mask_id={self.mask_id} is outside the vocabulary of {self.vocab_size}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MDLMConfig":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def _rope_tables(length: int, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(length, dtype=torch.float32), inv)  # (length, head_dim/2)
    return angles.cos(), angles.sin()


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE on (batch, heads, length, head_dim), rotating interleaved halves."""
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)


class _Block(nn.Module):
    """Pre-norm transformer block: bidirectional self-attention (no causal mask), then a GELU MLP."""

    def __init__(self, cfg: MDLMConfig):
        super().__init__()
        d = cfg.d_model
        self.heads = cfg.n_heads
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.norm2 = nn.LayerNorm(d)
        self.up = nn.Linear(d, cfg.mlp_ratio * d, bias=False)
        self.down = nn.Linear(cfg.mlp_ratio * d, d, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        attn = F.scaled_dot_product_attention(q, k, v)  # every position sees every other one
        x = x + self.proj(attn.transpose(1, 2).reshape(b, n, d))
        return x + self.down(F.gelu(self.up(self.norm2(x))))


class MDLMTransformer(nn.Module):
    """The denoiser: token ids (batch, length) -> hidden states; `logits` projects them with the
    input embedding (tied weights, which saves vocab x d_model parameters)."""

    def __init__(self, cfg: MDLMConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        cos, sin = _rope_tables(cfg.context_length, cfg.d_model // cfg.n_heads, cfg.rope_base)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.apply(self._init)
        for block in self.blocks:  # GPT-2's scaled init of residual outputs keeps early steps stable
            for lin in (block.proj, block.down):
                nn.init.normal_(lin.weight, std=0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def hidden(self, ids: torch.Tensor) -> torch.Tensor:
        n = ids.shape[1]
        if n > self.cfg.context_length:
            raise ValueError(f"sequence of {n} tokens is longer than the context length {self.cfg.context_length}")
        x = self.embed(ids)
        cos, sin = self.cos[:n], self.sin[:n]
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.norm(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden @ self.embed.weight.t()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.logits(self.hidden(ids))

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def subs_logprobs(net: MDLMTransformer, z: torch.Tensor) -> torch.Tensor:
    """SUBS log-probabilities (batch, length, vocab) of x given the partially masked z.

    Masked positions: a log-softmax with [MASK] at -inf (zero mass on the absorbing state).
    Unmasked positions: 0 at the token already there and -inf elsewhere (carried over).
    """
    mask_id = net.cfg.mask_id
    logits = net(z).float()
    logits[..., mask_id] = float("-inf")
    out = torch.log_softmax(logits, dim=-1)
    keep = z != mask_id
    if keep.any():
        copied = torch.full_like(out[keep], float("-inf"))
        copied.scatter_(-1, z[keep].unsqueeze(-1), 0.0)
        out[keep] = copied
    return out


def sample_times(batch: int, *, generator: torch.Generator | None = None, eps: float = EPS) -> torch.Tensor:
    """Low-discrepancy t in [eps, 1) for a batch: t_i = (u + i / batch) mod 1, rescaled to [eps, 1).

        >>> sample_times(4, generator=torch.Generator().manual_seed(0)).sort().values.diff()
        tensor([0.2498, 0.2498, 0.2498])
    """
    u = torch.rand((), generator=generator)
    t = (u + torch.arange(batch, dtype=torch.float32) / batch) % 1.0
    return eps + (1.0 - eps) * t


def mask_tokens(x: torch.Tensor, t: torch.Tensor, mask_id: int, *,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(z_t, masked): each token of row i replaced by `mask_id` with probability t[i] (alpha_t = 1 - t)."""
    masked = torch.rand(x.shape, generator=generator) < t.view(-1, *([1] * (x.dim() - 1)))
    return x.masked_fill(masked, mask_id), masked


def nelbo(net: MDLMTransformer, x: torch.Tensor, *, t: torch.Tensor | None = None,
          generator: torch.Generator | None = None) -> tuple[torch.Tensor, int]:
    """(summed NELBO of the batch in nats, number of tokens it covers).

    The continuous-time bound with alpha_t = 1 - t: sum over rows of (1 / t_i) times the
    cross-entropy of the masked tokens of row i. SUBS makes unmasked positions contribute
    exactly 0, so only masked positions are projected onto the vocabulary (half the output
    cost on average). Divide by the token count for nats per token.
    """
    rows = nelbo_rows(net, x, t=t, generator=generator)
    return rows.sum(), x.numel()


def nelbo_rows(net: MDLMTransformer, x: torch.Tensor, *, t: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """The NELBO of each row of x (float32, shape (batch,)), one draw of (t, mask) per row."""
    if t is None:
        t = sample_times(x.shape[0], generator=generator)
    z, masked = mask_tokens(x, t, net.cfg.mask_id, generator=generator)
    h = net.hidden(z)
    rows = masked.nonzero(as_tuple=True)[0]
    out = (h.sum() * 0.0).float().expand(x.shape[0]).clone()  # zeros that keep the graph
    if rows.numel() == 0:
        return out
    logits = net.logits(h[masked]).float()
    logits[:, net.cfg.mask_id] = float("-inf")
    ce = F.cross_entropy(logits, x[masked], reduction="none")
    return out.index_add(0, rows, ce / t[rows])
