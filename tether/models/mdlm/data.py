"""Documents as token rows: truncation, EOS, and length buckets padded with EOS.

    >>> rows = encode_documents(corpus.train, tokenizer, context_length=128)
    >>> batches = BucketSampler(rows, weights={"json": 1.0, "sql": 3.0, "english": 0.5}, seed=0)
    >>> x = batches.next(tokens=2048)          # LongTensor (rows, bucket length), EOS-padded

A document becomes its tokens followed by one EOS, cut to the context length (a cut document
keeps no EOS: it does not end there). Training rows come from buckets of lengths 16, 32, 64, ...
up to the context length, each row EOS-padded to its bucket, so short documents do not pay for
long rows, and the model still sees end-of-text runs (what a sampler's block tail becomes).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from ..._optional import require

torch = require("torch", "tether's MDLM")

__all__ = ["Row", "encode_documents", "BucketSampler", "bucket_lengths"]

EOS_ID = 0


@dataclass(frozen=True)
class Row:
    ids: tuple[int, ...]
    source: str
    truncated: bool


def encode_documents(docs: Sequence, tokenizer, *, context_length: int) -> list[Row]:
    """Token rows for `docs` (Documents): ids + [EOS], or the first `context_length` ids if longer."""
    encoded = tokenizer.encode_batch([d.text for d in docs], add_special_tokens=False)
    rows = []
    for doc, enc in zip(docs, encoded):
        ids = list(enc.ids) + [EOS_ID]
        cut = len(ids) > context_length
        rows.append(Row(tuple(ids[:context_length]), doc.source, cut))
    return rows


def bucket_lengths(context_length: int, smallest: int = 16) -> list[int]:
    """16, 32, 64, ... and the context length itself."""
    out, n = [], smallest
    while n < context_length:
        out.append(n)
        n *= 2
    return out + [context_length]


class BucketSampler:
    """Draws training batches: a bucket with probability proportional to the weighted tokens it
    holds, then rows of that bucket in proportion to their source's weight (with replacement)."""

    def __init__(self, rows: Sequence[Row], *, weights: dict[str, float], context_length: int, seed: int = 0):
        self.rng = random.Random(seed)
        self.buckets = bucket_lengths(context_length)
        self.members: dict[int, list[Row]] = {b: [] for b in self.buckets}
        for row in rows:
            self.members[next(b for b in self.buckets if len(row.ids) <= b)].append(row)
        self.row_weights = {b: [weights.get(r.source, 1.0) for r in rs] for b, rs in self.members.items()}
        self.bucket_weights = [b * sum(self.row_weights[b]) for b in self.buckets]
        if not any(self.bucket_weights):
            raise ValueError("no training rows (or all source weights are zero)")

    def next(self, tokens: int) -> torch.Tensor:
        """A (rows, bucket) LongTensor of about `tokens` tokens (at least one row), EOS-padded."""
        bucket = self.rng.choices(self.buckets, weights=self.bucket_weights)[0]
        count = max(1, tokens // bucket)
        chosen = self.rng.choices(self.members[bucket], weights=self.row_weights[bucket], k=count)
        x = torch.full((count, bucket), EOS_ID, dtype=torch.long)
        for i, row in enumerate(chosen):
            x[i, : len(row.ids)] = torch.tensor(row.ids, dtype=torch.long)
        return x
