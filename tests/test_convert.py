"""Conversion to OpenVINO IR with the real toolchain (optimum-intel + NNCF) on tiny self-built models."""

import json
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from sdgen.models.convert import ConvertError, ConvertOptions, convert, verify_tokenizer
from sdgen.engines import Request
from sdgen.hosting import start_engine
from sdgen.models import list_models, resolve_model
from sdgen.spec import EngineOptions, GenerationParams

pytestmark = pytest.mark.slow  # real optimum-intel + NNCF exports: minutes on 2 cores


def element_types(ir: Path) -> set[str]:
    import re

    return set(re.findall(r'element_type="(\w+)"', (ir / "openvino_model.xml").read_text()))


@pytest.mark.parametrize(("weights", "expected"), [("fp16", "f16"), ("int8", "u8"), ("int4", "u4")])
def test_hf_dir_to_ir(tiny_hf, tmp_path, weights, expected):
    out = tmp_path / f"ir-{weights}"
    report = convert(str(tiny_hf), out, ConvertOptions(weights=weights, group_size=32))
    assert expected in element_types(out)
    assert report.tokenizer.ok and report.tokenizer.chat_template_ok
    assert report.ir_bytes > 0 and report.seconds > 0
    saved = json.loads((out / "sdgen_convert.json").read_text())
    assert saved["weights"] == weights and saved["tokenizer"]["id_mismatches"] == []
    accuracy = json.loads((out / "sdgen_accuracy.json").read_text())
    assert accuracy == saved["accuracy"] and accuracy["new_tokens"] == 32
    assert accuracy["reference"] == f"{tiny_hf} (torch fp32)"
    assert 0.0 <= accuracy["greedy_prefix_agreement"] <= 1.0
    # A random tiny model has a near-uniform next-token distribution: perplexity near the vocab size.
    assert accuracy["reference_perplexity"] > 10_000
    tolerance = {"fp16": 0.01, "int8": 0.02, "int4": 0.05}[weights]
    assert abs(accuracy["perplexity"] / accuracy["reference_perplexity"] - 1) < tolerance
    listed = {i.name: i for i in list_models([out])}[str(out)]
    assert listed.note.startswith("accuracy: greedy ")
    # GenAI loads it and generates through sdgen's engine.
    with start_engine("openvino", resolve_model(str(out)), EngineOptions(threads=2)) as engine:
        prompt = engine.render_chat([{"role": "user", "content": "hi"}])
        result = next(engine.generate([Request(0, prompt, GenerationParams(max_new_tokens=4), seed=1)]))
        assert result.generated_tokens > 0


def test_gguf_to_ir_keeps_a_correct_tokenizer(tiny_models, tmp_path):
    """The GGUF path that produced Ġ/Ċ garbage: tokenizer rebuilt from the GGUF, verified after export."""
    out = tmp_path / "from-gguf"
    report = convert(str(tiny_models["chat"]), out, ConvertOptions(weights="int8"), accuracy=False)
    assert report.tokenizer.ok
    hf_config = json.loads((out / "config.json").read_text())
    assert hf_config["architectures"] == ["LlamaForCausalLM"]


def test_broken_tokenizer_fails_the_conversion_loudly(tiny_hf, tmp_path):
    """A source carrying transformers' own GGUF tokenizer conversion (the DESIGN.md bug) must not pass."""
    from transformers import AutoTokenizer

    src = tmp_path / "broken-src"
    shutil.copytree(tiny_hf, src)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (src / name).unlink()
    gguf = resolve_model("smollm2-135m-instruct").path
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(src)
    with pytest.raises(ConvertError, match="tokenizer check failed"):
        convert(str(src), tmp_path / "out", ConvertOptions(weights="int8"), accuracy=False)
    report = json.loads((tmp_path / "out" / "sdgen_convert.json").read_text())
    check = report["tokenizer"]
    assert not check["converted"] or check["round_trip_failures"] or check["id_mismatches"]


def test_verify_detects_a_different_tokenizer(tiny_hf, tmp_path):
    out = tmp_path / "ir"
    convert(str(tiny_hf), out, ConvertOptions(weights="fp16"), accuracy=False)
    other = tmp_path / "other-tok"
    shutil.copytree(tiny_hf, other)
    tok = json.loads((other / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    vocab["Ġworld"], vocab["Ġitems"] = vocab["Ġitems"], vocab["Ġworld"]  # same text, different ids
    (other / "tokenizer.json").write_text(json.dumps(tok))
    check = verify_tokenizer(out, str(other))
    assert not check.ok and any(t.startswith("Hello world") for t in check.id_mismatches)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(weights="int8", awq=True), "awq only apply to --weights int4"),
        (dict(weights="int4", ratio=1.5), "ratio"),
        (dict(weights="int4", group_size=0), "group_size must be a positive number or -1"),
        (dict(weights="int4", awq=True), "need calibration data"),
        (dict(weights="int2"), "weights"),
    ],
)
def test_bad_quantization_options(options, message):
    with pytest.raises(ValueError, match=message):
        ConvertOptions(**options)


def test_bad_sources(tmp_path, tiny_hf):
    with pytest.raises(ConvertError, match="is not a GGUF file, a model dir or a hub id"):
        convert(str(tmp_path / "missing.gguf"), tmp_path / "o")
    junk = tmp_path / "junk.gguf"
    junk.write_text("not a model")
    with pytest.raises(ConvertError, match="not a GGUF file"):
        convert(str(junk), tmp_path / "o")
    (tmp_path / "empty-dir").mkdir()
    with pytest.raises(ConvertError, match="config.json is missing"):
        convert(str(tmp_path / "empty-dir"), tmp_path / "o")
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    with pytest.raises(ConvertError, match="architecture 'bert' cannot be exported"):
        convert(str(bert), tmp_path / "o")


def test_existing_output_and_full_disk(tiny_hf, tmp_path, monkeypatch):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep").write_text("x")
    with pytest.raises(ConvertError, match="not empty; pass --overwrite"):
        convert(str(tiny_hf), out)
    assert (out / "keep").exists()
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr("sdgen.models.convert.shutil.disk_usage", lambda _p: Usage(10**12, 10**12, 1024))
    with pytest.raises(ConvertError, match="not enough disk space"):
        convert(str(tiny_hf), tmp_path / "o2")


def test_group_size_that_does_not_divide_the_width(tiny_hf, tmp_path):
    """The tiny model is 64 wide: group 48 fits no layer. Default: adjusted; with fallback=error: one clear error."""
    report = convert(str(tiny_hf), tmp_path / "adjusted", ConvertOptions(weights="int4", group_size=48), accuracy=False)
    assert "u4" in element_types(tmp_path / "adjusted") and report.tokenizer.ok
    with pytest.raises(ConvertError, match="--group-size 48 does not divide every layer's width"):
        convert(str(tiny_hf), tmp_path / "strict", ConvertOptions(weights="int4", group_size=48, group_size_fallback="error"),
                accuracy=False)  # fmt: skip


def test_data_aware_int4_calibrated_on_spec_prompts(tiny_hf, tmp_path):
    """AWQ + scale estimation, with the calibration set rendered from a spec's own prompts."""
    from sdgen.models.convert import calibration_prompts

    from conftest import EXAMPLE_SPEC

    prompts = calibration_prompts(EXAMPLE_SPEC, str(tiny_hf), rows=4)
    assert len(prompts) == 4 and all(p.startswith("<|im_start|>system") for p in prompts)
    options = ConvertOptions(weights="int4", group_size=32, awq=True, scale_estimation=True,
                             calibration_spec=EXAMPLE_SPEC, calibration_rows=4)  # fmt: skip
    report = convert(str(tiny_hf), tmp_path / "awq", options, accuracy=False)
    assert "u4" in element_types(tmp_path / "awq") and report.tokenizer.ok
    assert report.options["awq"] and report.options["scale_estimation"]
