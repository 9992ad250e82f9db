"""Shared by lora-finetune's graders: a tiny random Llama, token ids and a next-token loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

VOCAB = 40


def tiny_llama(seed: int = 0, tie: bool = False) -> LlamaForCausalLM:
    """A seeded float64 two-layer Llama (vocabulary 40, width 16) in eval mode."""
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
        tie_word_embeddings=tie,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).double().eval()


def token_ids(seed: int = 1) -> torch.Tensor:
    """A seeded (2, 9) batch of token ids."""
    return torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(seed))


def lm_loss(model, ids: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of the model on ids."""
    logits = model(input_ids=ids).logits
    return F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
