"""The HF tokenizer rebuilt from the built-in GGUF equals OpenVINO's tokenizer and round-trips."""

import pytest

from sdgen.models.gguf_tokenizer import hf_tokenizer_from_gguf
from sdgen.models import resolve_model

SAMPLES = [
    "Hello world! It's 2026-11-24, 12345 items.",
    "def f(x):\n    return x**2  # code\n\tTabs",
    "Café naïve résumé 😀🎉 東京タワー 中文",
    "<|im_start|>user\nhi<|im_end|>\n",
    "  leading   spaces\n\n\nnewlines",
]


@pytest.fixture(scope="module")
def tokenizers(tiny_models):
    import openvino_genai as ov_genai

    from sdgen.engines.openvino import scheduler_config
    from sdgen.spec import EngineOptions

    hf = hf_tokenizer_from_gguf(resolve_model("smollm2-135m-instruct").path)
    # The tiny model carries the same vocabulary and loads in a second.
    pipe = ov_genai.ContinuousBatchingPipeline(str(tiny_models["chat"]), scheduler_config(EngineOptions()), "CPU")
    return hf, pipe.get_tokenizer()


@pytest.mark.parametrize("text", SAMPLES)
def test_ids_match_openvino_and_round_trip(tokenizers, text):
    hf, ov = tokenizers
    ids = hf(text, add_special_tokens=False)["input_ids"]
    assert ids == list(ov.encode([text], add_special_tokens=False).input_ids.data[0])
    assert hf.decode(ids) == text


def test_chat_template_survives(tokenizers):
    hf, ov = tokenizers
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    assert hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == ov.apply_chat_template(
        messages, add_generation_prompt=True
    )


def test_sentencepiece_merges_rank_pieces_by_score():
    from sdgen.models.gguf_tokenizer import _sentencepiece_merges

    tokens = ["a", "b", "c", "ab", "bc", "abc"]
    scores = [0.0, 0.0, 0.0, -2.0, -1.0, -3.0]  # "bc" is the likelier piece, so it merges first
    assert _sentencepiece_merges(tokens, scores) == [("b", "c"), ("a", "b"), ("a", "bc"), ("ab", "c")]
