"""A correct Hugging Face tokenizer rebuilt from a GGUF file's byte-level BPE metadata.

transformers' own GGUF tokenizer conversion (5.x) breaks SmolLM2's: encoded text gains a
second BOS and <unk> ids, and decoded text is full of byte-level markers (Ġ, Ċ). This builds
the tokenizer the model was trained with: the GGUF vocab and merges, the `smollm`/`gpt2`
pre-tokenization (digits split one by one, then the GPT-2 byte-level regex), a byte-level
decoder and the control tokens as special tokens. Needs `tokenizers` and `transformers`.
"""

from __future__ import annotations

from pathlib import Path

CONTROL_TOKEN = 3  # gguf TokenType.CONTROL
DIGIT_SPLITTING_PRE = {"smollm", "qwen2", "llama-bpe", "deepseek-llm"}


def hf_tokenizer_from_gguf(path: Path):
    """A `PreTrainedTokenizerFast` equivalent to the model's original tokenizer (gpt2-style BPE GGUFs)."""
    import gguf
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    reader = gguf.GGUFReader(str(path))

    def field(key: str, default=None):
        return reader.fields[key].contents() if key in reader.fields else default

    if field("tokenizer.ggml.model") != "gpt2":
        raise ValueError(f"{path}: only byte-level BPE (gpt2) GGUF tokenizers are rebuilt here")
    tokens: list[str] = field("tokenizer.ggml.tokens")
    types: list[int] = field("tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in field("tokenizer.ggml.merges")]
    bpe = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, ignore_merges=False))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if field("tokenizer.ggml.pre") in DIGIT_SPLITTING_PRE:
        bpe.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    else:
        bpe.pre_tokenizer = byte_level
    bpe.decoder = decoders.ByteLevel()
    specials = [t for t, kind in zip(tokens, types) if kind == CONTROL_TOKEN]

    def token(key: str) -> str | None:
        idx = field(key)
        return tokens[idx] if idx is not None else None

    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=token("tokenizer.ggml.bos_token_id"),
        eos_token=token("tokenizer.ggml.eos_token_id"),
        unk_token=token("tokenizer.ggml.unknown_token_id"),
        pad_token=token("tokenizer.ggml.padding_token_id"),
        additional_special_tokens=specials,
        chat_template=field("tokenizer.chat_template"),
        clean_up_tokenization_spaces=False,
    )
