"""`tether.generate`: one call from a prompt and a constraint to valid output.

    >>> lm = tether.models.default()
    >>> tether.generate(lm, "Pick a year", tether.regex(r"(19|20)[0-9]{2}")).text
    '2023'
    >>> chat = [{"role": "system", "content": "Answer tersely."}, {"role": "user", "content": "Pick a year"}]
    >>> tether.generate(lm, chat, tether.regex(r"(19|20)[0-9]{2}")).text
    '2020'

Streaming and async:

    >>> for piece in tether.stream(lm, "Pick a year", tether.regex(r"(19|20)[0-9]{2}")):
    ...     print(piece.text, end="")            # the last piece carries .generation
    >>> gen = await tether.agenerate(lm, "Pick a year", tether.regex(r"(19|20)[0-9]{2}"))

(This module is `tether.generation`, not `tether.generate`: a submodule of that
name would replace the function `tether.generate` on the package once imported.)
"""

from __future__ import annotations

import asyncio
import codecs
import numbers
import queue
import threading
from dataclasses import dataclass
from typing import Any, Iterator, Sequence, Union, overload

from .automata.constraint import Constraint
from .models.base import CausalLM, Prompt, check_prompt, is_messages
from .samplers.base import Generation, Sampler, check_model, check_vocab
from .samplers.lcd import Greedy

__all__ = ["generate", "agenerate", "stream", "Piece", "bind"]


def bind(constraint: Any, model: CausalLM) -> Constraint:
    """A compiled constraint for the model's vocabulary (compiling a spec such as `tether.regex(...)`).

    A constraint compiled for another vocabulary, even one of the same size, raises
    `tether.errors.VocabularyMismatch`.

        >>> c = bind(tether.regex(r"[0-9]+"), lm)       # compiled for lm.vocab
        >>> bind(c, lm) is c
        True
    """
    if isinstance(constraint, Constraint):
        check_vocab(model.vocab, constraint.vocab)
        return constraint
    if hasattr(constraint, "compile"):
        return constraint.compile(model.vocab)
    raise TypeError(f"expected a constraint (e.g. tether.regex(...)), got {type(constraint).__name__}")


@overload
def generate(model: CausalLM, prompt: Prompt, constraint: Any, *, sampler: Sampler | None = ...,
             max_tokens: int = ..., n: None = ...) -> Generation: ...
@overload
def generate(model: CausalLM, prompt: Union[Prompt, Sequence[Prompt]], constraint: Any, *,
             sampler: Sampler | None = ..., max_tokens: int = ..., n: int | None = ...) -> list[Generation]: ...


def generate(model: CausalLM, prompt: Union[Prompt, Sequence[Prompt]], constraint: Any, *,
             sampler: Sampler | None = None, max_tokens: int = 64, n: int | None = None):
    """Generate constrained output for a prompt (or a list of prompts, batched).

    prompt: text (sent as a user turn of the model's chat template), chat messages
        (a list of ``{"role", "content"}`` dicts), or a list of either for a batch.
    sampler: `Greedy()` (default), `Sample(...)`, `BeamSearch(...)` or `SMC(...)`.
    n: results per prompt -- independent draws for `Sample`/`SMC`, the n best
        distinct beams for `BeamSearch`; `Greedy` refuses n > 1 (all would be equal).
    Returns a `Generation` (`.text`, `.value`, `.status`) for one prompt and no
    `n`, else a list with `n` generations per prompt, in prompt order. Check
    `.ok`: a generation that reached `max_tokens` first is INCOMPLETE.

    Raises TypeError for a model that is not a tether model (wrap a Hugging Face
    model with `tether.models.TransformersLM(model, tokenizer)`) or a prompt that is
    not text or messages; `VocabularyMismatch` for a constraint compiled for another
    vocabulary; `ContextLengthExceeded` when a prompt plus `max_tokens` does not fit
    the model's context (nothing is clamped).
    """
    sampler = _sampler_for(model, sampler)
    prompts, single = _prompts(prompt)
    compiled = bind(constraint, model)
    copies = 1 if n is None else n
    ids = [model.prompt_ids(p) for p in prompts]
    generations = sampler.run(model, ids, compiled, max_tokens, n=copies)
    if single and n is None:
        return generations[0]
    return generations


def _sampler_for(model: Any, sampler: Sampler | None) -> Sampler:
    """The sampler to run (Greedy by default), after checking it fits the kind of model."""
    if getattr(model, "mask_id", None) is not None and hasattr(model, "logprobs"):  # a masked diffusion LM
        if sampler is None or not getattr(sampler, "diffusion", False):
            raise TypeError(f"{type(model).__name__} is a masked diffusion LM: pass a diffusion sampler, "
                            f"sampler=tether.samplers.DINGO() (regular constraints), GrammarDiffusion() "
                            f"(context-free ones) or Diffusion() (unconstrained)")
        return sampler
    check_model(model)
    if getattr(sampler, "diffusion", False):
        raise TypeError(f"{type(sampler).__name__} decodes masked diffusion LMs; {type(model).__name__} is "
                        f"autoregressive: use Greedy, Sample, BeamSearch or SMC")
    return sampler or Greedy()


def _prompts(prompt: Any) -> tuple[list, bool]:
    """(checked prompts, whether `prompt` was a single prompt): a str or messages is one
    prompt, any other list or tuple a batch of them."""
    if isinstance(prompt, str) or is_messages(prompt):
        return [check_prompt(prompt)], True
    if not isinstance(prompt, (list, tuple)) or _all_ints(prompt):
        return [check_prompt(prompt)], True  # raises the TypeError that names the fix
    return [_one_of_batch(p, i) for i, p in enumerate(prompt)], False


def _one_of_batch(prompt: Any, i: int) -> Any:
    try:
        return check_prompt(prompt)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"prompt {i} of the batch: {exc}") from None


def _all_ints(items: Sequence[Any]) -> bool:
    return bool(items) and all(isinstance(t, numbers.Integral) for t in items)


async def agenerate(model: CausalLM, prompt: Union[Prompt, Sequence[Prompt]], constraint: Any, *,
                    sampler: Sampler | None = None, max_tokens: int = 64, n: int | None = None):
    """`generate` in a worker thread, so an event loop keeps serving while the model runs.

        >>> gen = await tether.agenerate(lm, "Pick a year", tether.regex(r"(19|20)[0-9]{2}"))
        >>> gens = await asyncio.gather(*(tether.agenerate(lm, q, spec) for q in questions))

    Same arguments and results as `generate`. Concurrent calls share the model (its adapter
    serialises forwards); batch prompts into one call where they can wait for each other.
    """
    return await asyncio.to_thread(generate, model, prompt, constraint, sampler=sampler,
                                   max_tokens=max_tokens, n=n)


@dataclass(frozen=True)
class Piece:
    """A piece of streamed text; the last piece of a stream carries the finished `Generation`."""

    text: str
    generation: Generation | None = None

    def __str__(self) -> str:
        return self.text


class _Cancelled(Exception):
    """Raised inside the sampler's loop when the consumer of a stream stopped reading."""


def stream(model: CausalLM, prompt: Prompt, constraint: Any, *, sampler: Sampler | None = None,
           max_tokens: int = 64) -> Iterator[Piece]:
    """Generate for one prompt, yielding text as tokens are taken.

        >>> pieces = list(tether.stream(lm, "Pick a year", tether.regex(r"(19|20)[0-9]{2}")))
        >>> "".join(p.text for p in pieces) == pieces[-1].generation.text
        True

    Each `Piece` holds the text of the newly taken tokens; bytes that do not yet decode (a
    character split across tokens) are held back until they do, so the pieces joined are the
    final text. The last piece (possibly with empty text) has `.generation`, the same
    `Generation` `generate` returns; check `.generation.ok`.

    Greedy and Sample stream token by token. BeamSearch and SMC cannot: a beam or particle
    may be dropped after any step, so their text is known only at the end and comes as one
    piece with the generation. The model runs in a worker thread; leaving the loop early
    stops it at the next token.
    """
    sampler = _sampler_for(model, sampler)
    prompts, single = _prompts(prompt)
    if not single:
        raise TypeError("tether.stream takes one prompt (text or chat messages); use tether.generate for a batch")
    compiled = bind(constraint, model)
    ids = model.prompt_ids(prompts[0])
    vocab = compiled.vocab
    events: queue.Queue = queue.Queue()
    stop = threading.Event()

    def on_token(_: int, token_id: int) -> None:
        if stop.is_set():
            raise _Cancelled
        events.put(vocab[token_id] if token_id not in vocab.eos_ids else None)

    def work() -> None:
        try:
            kwargs = {"on_token": on_token} if getattr(sampler, "streams", False) else {}
            events.put(sampler.run(model, [ids], compiled, max_tokens, n=1, **kwargs)[0])
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            events.put(exc)

    worker = threading.Thread(target=work, name="tether-stream", daemon=True)
    worker.start()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    streamed = False
    try:
        while True:
            item = events.get()
            if isinstance(item, Generation):
                rest = decoder.decode(b"", final=True) if streamed else item.text
                yield Piece(rest, item)
                return
            if isinstance(item, BaseException):
                raise item
            streamed = True
            text = decoder.decode(item or b"")
            if text:
                yield Piece(text)
    finally:
        stop.set()
        worker.join()
