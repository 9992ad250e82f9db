"""Shared by prompt-engineering's graders: a tiny byte-level BPE chat tokenizer built with
`tokenizers` (no model files) and a tiny random Llama over its vocabulary."""

from __future__ import annotations

import json

import torch
from transformers import LlamaConfig, LlamaForCausalLM

SPECIAL = ["<pad>", "<eos>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_tokenizer(vocab_size: int = 320):
    """A byte-level BPE (all 256 bytes + merges learnt on JSON objects and sentences) with
    <pad> 0, <eos> 1 and a ChatML chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [
        json.dumps({"name": n, "age": a, "city": c}, separators=(",", ":"))
        for n, a, c in [("Ava", 31, "Oslo"), ("Ben", 7, "Lima"), ("Kira", 64, "Porto")] * 5
    ] + ["Ava has 12 apples. Then Ava buys 3 more. How many apples does Ava have now?"] * 5
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )  # fmt: skip
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>",
        additional_special_tokens=SPECIAL[2:],
    )  # fmt: skip
    fast.chat_template = CHATML
    return fast


def tiny_llama(vocab: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> LlamaForCausalLM:
    """A seeded two-layer Llama (width 16) in eval mode."""
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
    )  # fmt: skip
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).to(dtype).eval()
