"""Tiny random-weight causal LMs saved with save_pretrained, for the language-model tests."""

from __future__ import annotations

from pathlib import Path

WORDS = ["the", "a", "cat", "dog", "sat", "ran", "on", "mat", "big", "small", "you", "are", "kind", "rude", "and"]
PROMPTS = ["the cat sat", "a dog ran on", "you are kind", "the big mat", "a small cat ran",
           "you are rude", "the dog sat on the mat", "a cat", "the small dog", "you and a cat"]


def tokenizer(side: str = "right", words: list[str] = WORDS):
    """A word-level tokenizer (``tokenizers``) wrapped as a PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[EOS]": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]",
                                   eos_token="[EOS]", padding_side=side)


def gpt2(seed: int = 0, *, width: int = 32, layers: int = 3, context: int = 32,
         vocab: int | None = None):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(vocab_size=vocab or len(WORDS) + 3, n_positions=context,
                                      n_embd=width, n_layer=layers, n_head=2,
                                      bos_token_id=2, eos_token_id=2))


def llama(seed: int = 0, *, width: int = 32, layers: int = 2, context: int = 32):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=len(WORDS) + 3, hidden_size=width,
                                        intermediate_size=2 * width, num_hidden_layers=layers,
                                        num_attention_heads=2, num_key_value_heads=2,
                                        max_position_embeddings=context, bos_token_id=2,
                                        eos_token_id=2, pad_token_id=0))


def save(model, tok, path: Path) -> Path:
    """Write a model directory as a user would (config, safetensors weights, tokenizer)."""
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
