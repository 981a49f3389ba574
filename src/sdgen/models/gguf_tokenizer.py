"""Correct Hugging Face tokenizers rebuilt from a GGUF file's tokenizer metadata.

transformers' own GGUF tokenizer conversion (5.x) breaks both kinds we ship: SmolLM2's
byte-level BPE gains a second BOS and <unk> ids and decodes to byte-level markers (Ġ, Ċ), and
Gemma 3's SentencePiece BPE loses merges ("world" -> "▁w", "or", "ld"). This builds the
tokenizers the models were trained with from the GGUF vocab (and merges, or scores), with the
matching pre-tokenization, decoder and special tokens. Needs `tokenizers` and `transformers`.
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

    kind = field("tokenizer.ggml.model")
    if kind == "llama":
        return _sentencepiece_bpe(path, field)
    if kind != "gpt2":
        raise ValueError(f"{path}: GGUF tokenizer model {kind!r} is not rebuilt here (gpt2 and llama are)")
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


def _sentencepiece_merges(tokens: list[str], scores: list[float]) -> list[tuple[str, str]]:
    """BPE merges implied by a SentencePiece vocab: a piece's halves merge with the piece's score as rank.

    The same ordering transformers uses when it converts a SentencePiece .model file.
    """
    ids = {t: i for i, t in enumerate(tokens)}
    merges = []
    for piece, score in zip(tokens, scores):
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in ids and right in ids:
                merges.append((-score, ids[left], ids[right], left, right))
    merges.sort()
    return [(left, right) for *_, left, right in merges]


def _sentencepiece_bpe(path: Path, field):
    """A SentencePiece BPE tokenizer (Gemma, llama-style GGUFs) from tokens, scores and token types."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers
    from transformers import PreTrainedTokenizerFast

    tokens: list[str] = list(field("tokenizer.ggml.tokens"))
    scores: list[float] = field("tokenizer.ggml.scores")
    types: list[int] = field("tokenizer.ggml.token_type")
    unk = tokens[field("tokenizer.ggml.unknown_token_id", 0)]
    # GGUF writers store user-defined whitespace pieces with spaces; SentencePiece matches them on normalized
    # text (spaces as ▁). As ordinary pieces with top merge priority they segment the same way.
    for i, (t, k) in enumerate(zip(tokens, types)):
        if k == 4 and t.strip(" ") == "" and "▁" * len(t) not in tokens:
            tokens[i] = "▁" * len(t)
    bpe = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=_sentencepiece_merges(tokens, scores),
                               unk_token=unk, fuse_unk=True, byte_fallback=True))  # fmt: skip
    prefix = [normalizers.Prepend("▁")] if field("tokenizer.ggml.add_space_prefix", False) else []
    bpe.normalizer = normalizers.Sequence(prefix + [normalizers.Replace(" ", "▁")])
    bpe.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    # Control (3) and user-defined (4) tokens are matched whole before BPE, as SentencePiece does.
    bpe.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, k in zip(tokens, types) if k == 3])
    bpe.add_tokens([AddedToken(t, normalized=False) for t, k in zip(tokens, types) if k == 4 and "▁" not in t])

    def token(key: str) -> str | None:
        idx = field(key)
        return tokens[idx] if idx is not None else None

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=token("tokenizer.ggml.bos_token_id"),
        eos_token=token("tokenizer.ggml.eos_token_id"),
        unk_token=unk,
        pad_token=token("tokenizer.ggml.padding_token_id"),
        chat_template=field("tokenizer.chat_template"),
        clean_up_tokenization_spaces=False,
    )
    tokenizer.add_bos_token = bool(field("tokenizer.ggml.add_bos_token", False))
    return tokenizer
