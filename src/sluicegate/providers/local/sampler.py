"""One generation's sampling settings and the llama.cpp sampler chain built from them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PENALTY_LAST_N = 64  # llama-cpp-python's `last_n_tokens_size`, as before


@dataclass(slots=True)
class Sampling:
    """One generation's sampler chain, in llama-cpp-python's order (bias, penalties, grammar, then
    greedy at temperature 0, else top-k, typical, top-p, min-p, temperature, seeded draw)."""

    temperature: float
    top_p: float
    top_k: int
    min_p: float
    repeat_penalty: float
    frequency_penalty: float
    presence_penalty: float
    seed: int
    grammar: Any = None  # a LlamaGrammar (its GBNF text and root), or None
    logit_bias: dict[int, float] | None = None
    logprobs: bool = False  # hand the (biased) logits back with each token


def build_sampler(ll: Any, vocab: Any, n_vocab: int, sampling: Sampling) -> Any:
    """llama.cpp's sampler chain for one generation (freed by the caller)."""
    chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
    if sampling.logit_bias:
        entries = (ll.llama_logit_bias * len(sampling.logit_bias))()
        for i, (token, bias) in enumerate(sampling.logit_bias.items()):
            entries[i].token, entries[i].bias = token, bias
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_logit_bias(n_vocab, len(entries), entries))
    ll.llama_sampler_chain_add(
        chain,
        ll.llama_sampler_init_penalties(
            n_vocab,
            PENALTY_LAST_N,
            sampling.repeat_penalty,
            sampling.frequency_penalty,
            sampling.presence_penalty,
        ),
    )
    grammar = sampling.grammar
    if grammar is not None:
        made = ll.llama_sampler_init_grammar(
            vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8")
        )
        if not made:
            ll.llama_sampler_free(chain)
            raise ValueError("llama.cpp refused the grammar")
        ll.llama_sampler_chain_add(chain, made)
    if sampling.temperature <= 0.0:
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_greedy())
    else:
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_k(sampling.top_k))
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_typical(1.0, 1))
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_p(sampling.top_p, 1))
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_min_p(sampling.min_p, 1))
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_temp(sampling.temperature))
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_dist(sampling.seed & 0xFFFFFFFF))
    return chain
