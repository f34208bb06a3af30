"""Batch generation on Ray Data: a `map_batches` actor that loads the model once per actor.

    >>> ray_context = tether.integrations.ray.local_cluster(num_cpus=2)
    >>> ds = ray.data.from_items([{"prompt": p} for p in prompts])
    >>> ds.map_batches(Generate, fn_constructor_kwargs={"constraint": {"regex": "[0-9]+"}},
    ...                concurrency=2, batch_size=16).write_json("out/")

Each batch of prompts is one batched `tether.generate` call; the output rows carry the
prompt's other columns, the generated `text`, `ok` (the text is complete and in the
language) and `value`, the constraint's parsed value as JSON text (a JSON Schema's
instance, a regex's match), or null when not `ok`.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

from .._optional import require

__all__ = ["Generate", "local_cluster"]


class Generate:
    """A callable class for `Dataset.map_batches`: one model per actor, one batched generate per batch.

        >>> ds.map_batches(Generate, fn_constructor_kwargs={"constraint": {"json_schema": schema}},
        ...                concurrency=2, batch_size=16)

    Args:
        constraint: what the requests of `tether.integrations.requests` name (plain data,
            e.g. `{"regex": "..."}`, `{"json_schema": {...}}`), or a tether specification
            (it travels to the actors pickled).
        model: a local model path for `tether.models.load` (folder or GGUF); by default the
            embedded SmolLM2-135M-Instruct.
        max_tokens: the generation budget per prompt.
        prompt_column: the column holding the prompts.
        sampler: a tether sampler (`tether.Greedy()` by default).
    """

    def __init__(self, constraint: Any, *, model: str | None = None, max_tokens: int = 64,
                 prompt_column: str = "prompt", sampler: Any = None) -> None:
        import tether

        from .requests import spec_from_args

        self.lm = tether.models.default(progress=False) if model is None else tether.models.load(model, progress=False)
        spec = spec_from_args(constraint) if isinstance(constraint, Mapping) else constraint
        self.constraint = spec.compile(self.lm.vocab)
        self.max_tokens = max_tokens
        self.prompt_column = prompt_column
        self.sampler = sampler

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import msgspec

        import tether

        if self.prompt_column not in batch:
            raise KeyError(f"the batch has no {self.prompt_column!r} column (it has {sorted(batch)}): "
                           f"pass prompt_column=")
        prompts = [str(p) for p in batch[self.prompt_column]]
        generations = tether.generate(self.lm, prompts, self.constraint, sampler=self.sampler,
                                      max_tokens=self.max_tokens) if prompts else []
        out = dict(batch)
        out["text"] = np.array([g.text for g in generations], dtype=object)
        out["ok"] = np.array([g.ok for g in generations], dtype=bool)
        out["value"] = np.array([msgspec.json.encode(g.value).decode() if g.ok else None for g in generations],
                                dtype=object)
        return out


def local_cluster(num_cpus: int | None = None, **init_kwargs: Any):
    """`ray.init` of a one-machine cluster for batch jobs: node address 127.0.0.1, no dashboard,
    no usage statistics sent; returns Ray's context (`ray.shutdown()` stops it).

    Ray 2.60's core servers (GCS, raylet, workers) still listen on every interface, whatever
    the node address: to keep a cluster off the network entirely, run it in a network
    namespace of its own (tether's tests run it under `unshare -n`, with loopback only).
    """
    ray = require("ray", "tether.integrations.ray (pip install 'tether[ray]')")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # read by ray.init: nothing is reported home
    options = dict(address="local", _node_ip_address="127.0.0.1", include_dashboard=False, num_cpus=num_cpus,
                   log_to_driver=False)
    options.update(init_kwargs)
    return ray.init(**options)
