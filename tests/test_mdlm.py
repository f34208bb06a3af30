"""tether's small MDLM: the objective, training, the shipped weights and record, and the
Hugging Face masked-LM adapter."""

from __future__ import annotations

import hashlib
import io
import json
import math
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

import torch

from tether.models.base import MaskedDiffusionLM  # noqa: E402
from tether.models.mdlm import corpus as corpus_mod  # noqa: E402
from tether.models.mdlm.data import BucketSampler, Row, bucket_lengths, encode_documents  # noqa: E402
from tether.models.mdlm.model import (EPS, MDLMConfig, MDLMTransformer, mask_tokens, nelbo,  # noqa: E402
                                      nelbo_rows, sample_times, subs_logprobs)
from tether.models.mdlm.train import heldout_nelbo  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "tether" / "models" / "mdlm" / "weights"


def tiny_net(vocab: int = 16, **kw) -> MDLMTransformer:
    torch.manual_seed(0)
    return MDLMTransformer(MDLMConfig(vocab_size=vocab, mask_id=1, context_length=32, d_model=32, n_layers=2,
                                      n_heads=2, **kw))


# ------------------------------------------------------------------ the objective


def test_times_are_low_discrepancy_in_eps_to_one():
    t = sample_times(8, generator=torch.Generator().manual_seed(3))
    assert t.min() >= EPS and t.max() < 1.0
    gaps = t.sort().values.diff()
    assert torch.allclose(gaps, torch.full_like(gaps, (1 - EPS) / 8), atol=1e-5)


def test_masking_rate_follows_t():
    x = torch.randint(2, 16, (4, 20000))
    t = torch.tensor([0.1, 0.3, 0.6, 0.9])
    z, masked = mask_tokens(x, t, 1, generator=torch.Generator().manual_seed(0))
    rate = masked.float().mean(1)
    assert torch.allclose(rate, t, atol=0.015), rate  # binomial std <= 0.0035
    assert (z[masked] == 1).all() and (z[~masked] == x[~masked]).all()


def test_subs_puts_no_mass_on_mask_and_copies_unmasked():
    net = tiny_net()
    z = torch.tensor([[5, 1, 7, 1, 1, 3]])
    logp = subs_logprobs(net, z)
    masked = z[0] == 1
    assert logp.dtype == torch.float32 and logp.shape == (1, 6, 16)
    assert torch.isneginf(logp[0, masked, 1]).all()
    assert torch.allclose(logp[0, masked].logsumexp(-1), torch.zeros(int(masked.sum())), atol=1e-5)
    for pos in (~masked).nonzero().flatten().tolist():
        row = logp[0, pos]
        assert row[z[0, pos]] == 0.0
        assert torch.isneginf(row[torch.arange(16) != z[0, pos]]).all()


def test_nelbo_weights_masked_cross_entropy_by_one_over_t():
    net = tiny_net()
    x = torch.randint(2, 16, (3, 24))
    t = torch.tensor([0.2, 0.5, 0.8])
    rows = nelbo_rows(net, x, t=t, generator=torch.Generator().manual_seed(7))
    z, masked = mask_tokens(x, t, 1, generator=torch.Generator().manual_seed(7))  # the same draw
    with torch.no_grad():
        ce = -subs_logprobs(net, z).gather(-1, x.unsqueeze(-1)).squeeze(-1)  # 0 where unmasked (SUBS)
    assert (ce[~masked] == 0).all()
    expected = (ce * masked).sum(1) / t
    assert torch.allclose(rows.detach(), expected, rtol=1e-4)
    total, tokens = nelbo(net, x, t=t, generator=torch.Generator().manual_seed(7))
    assert tokens == x.numel() and torch.isclose(total, expected.sum(), rtol=1e-4)


def test_nothing_masked_costs_nothing():
    net = tiny_net()
    rows = nelbo_rows(net, torch.randint(2, 16, (2, 8)), t=torch.tensor([1e-9, 1e-9]))
    assert rows.tolist() == [0.0, 0.0]


def test_tiny_model_training_lowers_heldout_nelbo():
    # Rows repeat a random 2-token motif: easy for a denoiser that looks both ways, impossible
    # for one that ignores context.
    gen = torch.Generator().manual_seed(0)

    def rows(n):
        motifs = torch.randint(2, 16, (n, 2), generator=gen)
        return motifs.repeat(1, 8)

    held = [Row(tuple(r.tolist()), "json", False) for r in rows(64)]
    net = tiny_net()
    before = heldout_nelbo(net, held, repeats=2)["nelbo"]
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    for _ in range(60):
        loss, n = nelbo(net, rows(32), generator=gen)
        opt.zero_grad()
        (loss / n).backward()
        opt.step()
    after = heldout_nelbo(net, held, repeats=2)["nelbo"]
    # A denoiser that ignores context can do no better than uniform over the 14 motif tokens:
    # a NELBO of log(14) nats per token. Going well below it means it learned to look around.
    assert before > math.log(14) - 0.2 and after < math.log(14) - 0.3, (before, after)


def test_buckets_pad_with_eos():
    assert bucket_lengths(128) == [16, 32, 64, 128]
    rows = [Row((5, 6, 0), "sql", False), Row(tuple(range(2, 40)), "json", True)]
    sampler = BucketSampler(rows, weights={"sql": 1.0, "json": 0.0}, context_length=64, seed=0)
    x = sampler.next(64)
    assert x.shape == (4, 16) and (x[:, :3] == torch.tensor([5, 6, 0])).all() and (x[:, 3:] == 0).all()


# ------------------------------------------------------------------ corpus and CLI on toy data


def toy_data(root: Path) -> Path:
    """A miniature ../shared/data: a MaskBench-like tar.xz and a Spider-like gold file."""
    (root / "jsonschema" / "maskbench").mkdir(parents=True)
    (root / "sql" / "spider").mkdir(parents=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for i in range(40):
            item = {"description": "sample", "schema": {
                "type": "object", "description": f"A person record number {i} with a name and an age.",
                "properties": {"name": {"type": "string", "title": "The name of the person, as written"}}},
                "tests": [{"data": {"name": f"n{i}", "age": i % 7}, "valid": True},
                          {"data": {"name": 3}, "valid": False}]}
            raw = json.dumps(item).encode()
            info = tarfile.TarInfo(f"data/Toy---{i}.json")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    (root / "jsonschema" / "maskbench" / "maskbench_data.tar.xz").write_bytes(buf.getvalue())
    lines = [f"SELECT name ,  age FROM people WHERE age  >  {i}\tpeople" for i in range(40)]
    (root / "sql" / "spider" / "train_gold.sql").write_text("\n".join(lines + lines[:5]) + "\n")
    return root


def test_corpus_reads_compacts_dedupes_and_splits(tmp_path):
    c = corpus_mod.build_corpus(toy_data(tmp_path), heldout_permille=200)
    docs = c.train + c.heldout
    by = {s: [d.text for d in docs if d.source == s] for s in corpus_mod.SOURCES}
    assert sorted(by["json"]) == sorted(json.dumps({"name": f"n{i}", "age": i % 7}, separators=(",", ":"))
                                        for i in range(40))  # valid instances only, compact
    assert len(by["sql"]) == 40 and "SELECT name , age FROM people WHERE age > 3" in by["sql"]
    assert "A person record number 3 with a name and an age." in by["english"]
    assert "The name of the person, as written" in by["english"]
    assert 0 < len(c.heldout) < len(c.train)
    again = corpus_mod.build_corpus(tmp_path, heldout_permille=200)
    assert [d.text for d in again.heldout] == [d.text for d in c.heldout]
    with pytest.raises(FileNotFoundError, match="train_gold.sql"):
        (tmp_path / "sql" / "spider" / "train_gold.sql").unlink()
        corpus_mod.build_corpus(tmp_path)


def test_train_cli_end_to_end(tmp_path):
    out = tmp_path / "tmp"
    cmd = [sys.executable, "-m", "tether.models.mdlm.train", "--minutes", "0.2", "--out", str(out),
           "--data-dir", str(toy_data(tmp_path / "data")), "--vocab-size", "300", "--d-model", "32",
           "--layers", "1", "--heads", "2", "--eval-every", "4"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "held-out NELBO" in proc.stderr
    record = json.loads((out / "record.json").read_text())
    assert record["training"]["steps"] >= 1 and math.isfinite(record["heldout"]["nelbo"])
    for name, meta in record["files"].items():
        assert (out / name).stat().st_size == meta["bytes"]
    from tether.models.mdlm import load

    lm = load(out)
    x = torch.tensor([lm.prompt_ids("SELECT") + [lm.mask_id] * 4])
    assert lm.logprobs(x).shape == (1, x.shape[1], 300)


# ------------------------------------------------------------------ the shipped weights


@pytest.fixture(scope="module")
def shipped():
    from tether.models import mdlm

    return mdlm.default()


def test_shipped_weights_load_once_and_concurrently():
    from tether.models import mdlm

    saved, mdlm._model = mdlm._model, None
    try:
        got = []
        threads = [threading.Thread(target=lambda: got.append(mdlm.default())) for _ in range(3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert len(got) == 3 and all(g is got[0] for g in got) and mdlm.default() is got[0]
    finally:
        mdlm._model = saved or mdlm._model


def test_shipped_logprobs(shipped):
    lm = shipped
    assert isinstance(lm, MaskedDiffusionLM)
    assert lm.vocab.eos_ids == (lm.eos_id,) and lm.pad_id == lm.eos_id and lm.mask_id in lm.vocab.special_ids
    prompt = lm.prompt_ids('{"name":')
    assert lm.decode(prompt) == '{"name":'
    x = torch.tensor([prompt + [lm.mask_id] * 10, lm.prompt_ids("SELECT") + [lm.mask_id] * (len(prompt) + 9)])
    before = lm.stats.calls
    logp = lm.logprobs(x)
    assert logp.shape == (2, x.shape[1], lm.vocab.size) and logp.dtype == torch.float32
    assert lm.stats.calls == before + 1
    masked = x == lm.mask_id
    assert torch.allclose(logp[masked].logsumexp(-1), torch.zeros(int(masked.sum())), atol=1e-4)
    assert torch.isneginf(logp[masked][:, lm.mask_id]).all()
    assert (logp[~masked].gather(-1, x[~masked].unsqueeze(-1)) == 0).all()


def test_shipped_model_beats_uniform_on_heldout_text(shipped):
    from tether.models.mdlm.data import encode_documents as enc

    docs = [corpus_mod.Document('{"name":"Alice","age":31,"tags":["a","b"]}', "json"),
            corpus_mod.Document("SELECT name FROM singer WHERE age > 20 ORDER BY name", "sql"),
            corpus_mod.Document("The unique identifier of the resource.", "english")]
    rows = enc(docs, shipped.tokenizer, context_length=shipped.context_length)
    score = heldout_nelbo(shipped.net, rows, repeats=8)["nelbo"]
    assert score < 0.6 * math.log(shipped.vocab.size), score


def test_prompt_text_cannot_forge_special_tokens(shipped):
    ids = shipped.prompt_ids("a <|mask|> b <|endoftext|>")
    assert shipped.mask_id not in ids and shipped.eos_id not in ids
    with pytest.raises(ValueError, match="chat template"):
        shipped.prompt_ids([{"role": "user", "content": "hi"}])


@pytest.mark.parametrize("bad, error", [
    ([[2, 3]], TypeError),
    (torch.tensor([[2.0, 3.0]]), TypeError),
    (torch.tensor([[True]]), TypeError),
    (torch.tensor([2, 3]), ValueError),
    (torch.tensor([[2, 4096]]), ValueError),
    (torch.tensor([[-1, 2]]), ValueError),
    (torch.zeros((1, 129), dtype=torch.long), ValueError),
])
def test_shipped_refuses_bad_input(shipped, bad, error):
    with pytest.raises(error):
        shipped.logprobs(bad)


def test_record_matches_shipped_files():
    record = json.loads((WEIGHTS / "record.json").read_text())
    for name, meta in record["files"].items():
        data = (WEIGHTS / name).read_bytes()
        assert len(data) == meta["bytes"] and hashlib.sha256(data).hexdigest() == meta["sha256"], name
    total = sum(p.stat().st_size for p in WEIGHTS.iterdir() if p.is_file())
    assert total <= 20 * 2**20, total
    held = record["heldout"]
    assert 0 < held["nelbo"] < math.log(record["tokenizer"]["vocab_size"])
    assert math.isclose(held["ppl_bound"], math.exp(held["nelbo"]), rel_tol=1e-3)
    config = json.loads((WEIGHTS / "config.json").read_text())
    assert all(record["architecture"][k] == v for k, v in config.items())
    assert record["versions"]["torch"] and record["training"]["steps"] > 0
    pyproject = (REPO / "pyproject.toml").read_text()
    assert "models/mdlm/weights/*" in pyproject  # shipped as package data


# ------------------------------------------------------------------ TransformersMaskedLM


@pytest.fixture(scope="module")
def tiny_bert():
    import transformers
    tok_file = str(WEIGHTS / "tokenizer.json")
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_file=tok_file, mask_token="<|mask|>",
                                                     eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=4096, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=64)
    return transformers.BertForMaskedLM(config), tokenizer


def test_transformers_masked_lm(tiny_bert):
    from tether.models.masked import TransformersMaskedLM

    model, tokenizer = tiny_bert
    lm = TransformersMaskedLM(model, tokenizer)
    assert isinstance(lm, MaskedDiffusionLM) and lm.mask_id == tokenizer.mask_token_id == 1
    assert lm.context_length == 64 and lm.vocab.size == 4096
    x = torch.tensor([lm.prompt_ids("SELECT name") + [lm.mask_id] * 5] * 2)
    logp = lm.logprobs(x)
    assert logp.shape == (2, x.shape[1], 4096) and logp.dtype == torch.float32
    assert torch.allclose(logp.logsumexp(-1), torch.zeros(x.shape), atol=1e-4)
    assert torch.isneginf(logp[..., lm.mask_id]).all()
    with torch.no_grad():
        logits = model(input_ids=x).logits
    logits[..., 1] = float("-inf")
    assert torch.allclose(logp, torch.log_softmax(logits, -1), atol=1e-5)
    assert lm.stats.calls == 1 and lm.stats.forward_tokens == x.numel()
    for bad, error in ((torch.tensor([[1.5]]), TypeError), (torch.tensor([[4096]]), ValueError),
                       (torch.tensor([1, 2]), ValueError), (torch.zeros((1, 65), dtype=torch.long), ValueError)):
        with pytest.raises(error):
            lm.logprobs(bad)


def test_transformers_masked_lm_widths(tiny_bert):
    from tether import Vocabulary
    from tether.models.masked import TransformersMaskedLM

    model, tokenizer = tiny_bert
    wide = Vocabulary.from_tokenizer(tokenizer, eos_ids=[0], size=4100)
    logp = TransformersMaskedLM(model, tokenizer, vocab=wide).logprobs(torch.tensor([[2, 1, 3]]))
    assert logp.shape == (1, 3, 4100) and torch.isneginf(logp[..., 4096:]).all()
    narrow = Vocabulary.from_tokens([b"a"] * 1000, eos_ids=[0])
    with pytest.raises(ValueError, match="smaller than the model"):
        TransformersMaskedLM(model, tokenizer, vocab=narrow)


def test_transformers_masked_lm_needs_a_mask_token(tiny_bert):
    import transformers
    from tether.models.masked import TransformersMaskedLM

    model, _ = tiny_bert
    no_mask = transformers.PreTrainedTokenizerFast(tokenizer_file=str(WEIGHTS / "tokenizer.json"),
                                                   eos_token="<|endoftext|>")
    with pytest.raises(ValueError, match="no mask token"):
        TransformersMaskedLM(model, no_mask)
    with pytest.raises(TypeError, match="Hugging Face model"):
        TransformersMaskedLM(object(), no_mask)
