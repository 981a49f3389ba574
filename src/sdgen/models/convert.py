"""Convert models to OpenVINO IR (fp16 / int8 / int4 via NNCF) with a verified tokenizer.

Sources: a local HF model dir, a GGUF file (dequantized through transformers, tokenizer rebuilt
from the GGUF's own vocab because transformers' conversion garbles it), or a hub id where a
network exists (the CLI turns a built-in name into its GGUF). Every conversion ends with a tokenizer check: OpenVINO's ids must equal
the HF tokenizer's on a fixed multilingual sample, decoding must round-trip, and the chat template
must survive; otherwise the conversion fails. Needs the `[convert]` extra (see README).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sdgen.errors import ModelError, SdgenError
from sdgen.models.hf_compat import dtype_kwargs
from sdgen.models.registry import CONVERT_REPORT, inspect_path

TOKENIZER_SAMPLES = [
    "Hello world! It's 2026-11-24; 12345 items cost $6.78.",
    "def f(x):\n    return x**2  # squared\n\tif x: print('tab')",
    "Emoji: 😀🎉👍🏽 and symbols © ® ™ → ≤ ≥",
    "東京タワーは美しい。中文测试。한국어 텍스트.",
    "Café naïve résumé façade jalapeño Ångström Øre straße",
    "  leading spaces,\n\n\ntrailing newlines\n",
]


class ConvertError(SdgenError):
    """A conversion cannot start or failed verification."""


class WeightFormat(str, Enum):
    fp16 = "fp16"
    int8 = "int8"
    int4 = "int4"


class ConvertOptions(BaseModel):
    """NNCF weight compression settings; validated here so a bad combination fails before any work."""

    model_config = ConfigDict(extra="forbid")

    weights: WeightFormat = Field(WeightFormat.int8, description="Weight format of the IR.")
    group_size: int = Field(128, description="int4 group size; -1 means per-channel.")
    group_size_fallback: Literal["adjust", "ignore", "error"] = Field(
        "adjust", description="Layers whose width the group size does not divide: adjust the group, keep them int8, or fail."
    )
    ratio: float = Field(1.0, gt=0.0, le=1.0, description="Share of layers in int4 (the rest int8).")
    sym: bool = Field(False, description="Symmetric quantization.")
    awq: bool = Field(False, description="Activation-aware weight quantization (int4, needs a calibration spec).")
    scale_estimation: bool = Field(False, description="Scale estimation (int4, needs a calibration spec).")
    all_layers: bool = Field(False, description="Compress embeddings and the LM head to int4 too.")
    calibration_spec: Path | None = Field(None, description="Spec whose prompts form the calibration dataset.")
    calibration_rows: int = Field(64, ge=1, le=4096)

    @model_validator(mode="after")
    def _consistent(self) -> ConvertOptions:
        if self.group_size != -1 and self.group_size <= 0:
            raise ValueError(f"group_size must be a positive number or -1, got {self.group_size}")
        int4_only = {"awq": self.awq, "scale_estimation": self.scale_estimation, "all_layers": self.all_layers}
        if self.weights is not WeightFormat.int4:
            used = [k for k, v in int4_only.items() if v] + (["ratio"] if self.ratio != 1.0 else [])
            if used:
                raise ValueError(f"{', '.join(used)} only apply to --weights int4, got --weights {self.weights.value}")
        if (self.awq or self.scale_estimation) and self.calibration_spec is None:
            raise ValueError("awq and scale_estimation need calibration data: pass --dataset SPEC")
        return self


@dataclass
class TokenizerCheck:
    converted: bool = True  # openvino_tokenizers produced a tokenizer and detokenizer at all
    samples: int = 0
    id_mismatches: list[str] = field(default_factory=list)
    round_trip_failures: list[str] = field(default_factory=list)
    chat_template_ok: bool | None = None

    @property
    def ok(self) -> bool:
        return (
            self.converted
            and not self.id_mismatches
            and not self.round_trip_failures
            and self.chat_template_ok is not False
        )


@dataclass
class ConvertReport:
    source: str
    output: str
    weights: str
    seconds: float
    ir_bytes: int
    tokenizer: TokenizerCheck
    options: dict[str, Any]
    accuracy: dict[str, Any] | None = None

    def save(self) -> Path:
        path = Path(self.output) / CONVERT_REPORT
        path.write_text(json.dumps(asdict(self), indent=2, default=str))
        return path


def require_convert_extra() -> None:
    try:
        import optimum.intel  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise ConvertError(
            f"conversion needs the [convert] extra ({exc.name} is missing); run `make install-convert`"
        ) from None


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _check_disk(needed: int, where: Path) -> None:
    free = shutil.disk_usage(where).free
    if free < needed:
        raise ConvertError(f"not enough disk space in {where}: need about {needed / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free")


def hf_dir_from_gguf(gguf: Path, workdir: Path) -> Path:
    """Dequantize a GGUF into an HF model dir, with its tokenizer rebuilt from the GGUF vocab."""
    from transformers import AutoModelForCausalLM

    workdir.mkdir(parents=True, exist_ok=True)
    _check_disk(8 * gguf.stat().st_size, workdir)  # fp32 weights are ~8x a 4-bit GGUF
    try:
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, **dtype_kwargs("float32"))
    except (ValueError, KeyError, OSError) as exc:
        raise ConvertError(f"{gguf}: transformers cannot read this GGUF ({exc})") from None
    model.config.architectures = [type(model).__name__]  # absent in GGUF-derived configs; IPEX needs it
    hf_dir = workdir / "hf"
    model.save_pretrained(hf_dir)
    hf_dir.joinpath("source.txt").write_text(f"{gguf}\n")
    _gguf_tokenizer(gguf).save_pretrained(hf_dir)
    return hf_dir


def _gguf_tokenizer(gguf: Path):
    """Byte-level BPE GGUFs get the rebuilt tokenizer; others (SentencePiece) transformers' conversion.

    Either way the tokenizer check after export decides whether the result is usable.
    """
    from transformers import AutoTokenizer

    from sdgen.models.gguf_tokenizer import hf_tokenizer_from_gguf

    try:
        return hf_tokenizer_from_gguf(gguf)
    except ValueError:
        return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def prepare_source(src: str, workdir: Path) -> str:
    """A local HF model dir (or hub id) that optimum can export, from any supported source."""
    path = Path(src).expanduser()
    if path.is_file():
        try:
            fmt = inspect_path(path)
        except ModelError as exc:
            raise ConvertError(str(exc)) from None
        return str(hf_dir_from_gguf(path, workdir)) if fmt == "gguf" else src
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConvertError(f"{path} is not a Hugging Face model dir: config.json is missing")
        return str(path)
    if re.fullmatch(r"[\w.-]+/[\w.-]+", src):
        return src  # a hub id: optimum fetches it where a network exists
    raise ConvertError(f"{src!r} is not a GGUF file, a model dir or a hub id (org/name)")


def _check_architecture(source: str) -> None:
    import optimum.exporters.openvino.model_configs  # noqa: F401  (registers the OpenVINO export configs)
    from optimum.exporters.tasks import TasksManager
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source)
    except OSError as exc:
        if Path(source).exists():
            raise ConvertError(f"{source}: cannot read config.json ({exc})") from None
        raise ConvertError(
            f"cannot fetch {source!r} from the model hub (no network here?): download it where there is one "
            "and pass the local dir"
        ) from None
    except ValueError as exc:
        raise ConvertError(f"{source}: unsupported or unknown architecture ({str(exc).splitlines()[0]})") from None
    supported = TasksManager.get_supported_model_type_for_task("text-generation-with-past", exporter="openvino")
    if config.model_type not in supported:
        raise ConvertError(f"{source}: architecture {config.model_type!r} cannot be exported to OpenVINO by optimum")


def calibration_prompts(spec_path: Path, source: str, rows: int) -> list[str]:
    """The first `rows` prompts of a spec, rendered with the source model's chat template."""
    from transformers import AutoTokenizer

    from sdgen.plan import make_plan
    from sdgen.prompts import PromptBuilder, detect_mode
    from sdgen.spec import load_spec

    spec = load_spec(spec_path, rows=rows)
    tokenizer = AutoTokenizer.from_pretrained(source)

    def render(messages):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    builder = PromptBuilder(spec, detect_mode(tokenizer.chat_template, render), render)
    return [builder.build(row) for row in make_plan(spec)]


def _quantization_config(options: ConvertOptions, source: str):
    """optimum-intel's weight compression config for int8/int4 (None for fp16)."""
    from optimum.intel import OVWeightQuantizationConfig

    if options.weights is WeightFormat.fp16:
        return None
    if options.weights is WeightFormat.int8:
        return OVWeightQuantizationConfig(bits=8, sym=options.sym)
    dataset = None
    if options.calibration_spec is not None:
        dataset = calibration_prompts(options.calibration_spec, source, options.calibration_rows)
    return OVWeightQuantizationConfig(
        bits=4, sym=options.sym, group_size=options.group_size, ratio=options.ratio,
        group_size_fallback=options.group_size_fallback,
        all_layers=options.all_layers or None, dataset=dataset, tokenizer=source if dataset else None,
        num_samples=len(dataset) if dataset else None, quant_method="awq" if options.awq else "default",
        scale_estimation=options.scale_estimation or None,
    )  # fmt: skip


def _export(source: str, out: Path, options: ConvertOptions, workdir: Path) -> None:
    """Export with optimum (fp16 directly; int8/int4 by compressing the exported IR with NNCF)."""
    from optimum.exporters.openvino import main_export
    from optimum.intel import OVConfig, OVModelForCausalLM

    quant = _quantization_config(options, source)
    if quant is None:
        main_export(source, out, task="text-generation-with-past", ov_config=OVConfig(dtype="fp16"),
                    convert_tokenizer=True)  # fmt: skip
        return
    exported = workdir / "ir-fp32"
    # main_export ignores a quantization config (optimum-cli runs a second step): export, then compress.
    main_export(source, exported, task="text-generation-with-past", ov_config=OVConfig(dtype="fp32"),
                convert_tokenizer=True)  # fmt: skip
    import nncf

    try:
        model = OVModelForCausalLM.from_pretrained(exported, quantization_config=quant, compile=False)
    except nncf.InvalidGroupSizeError:
        raise ConvertError(
            f"--group-size {options.group_size} does not divide every layer's width; "
            "pick another size or use --group-size-fallback adjust"
        ) from None
    model.save_pretrained(out)
    for item in exported.iterdir():  # tokenizer, detokenizer, HF tokenizer files, chat template
        if not (out / item.name).exists():
            shutil.copy2(item, out / item.name)


def verify_tokenizer(ir_dir: Path, hf_source: str) -> TokenizerCheck:
    """Compare the IR's OpenVINO tokenizer/detokenizer with the HF tokenizer on a fixed sample."""
    import openvino_genai as ov_genai
    from transformers import AutoTokenizer

    if not all((ir_dir / f"openvino_{part}.xml").is_file() for part in ("tokenizer", "detokenizer")):
        return TokenizerCheck(converted=False)
    hf = AutoTokenizer.from_pretrained(hf_source)
    ov = ov_genai.Tokenizer(str(ir_dir))
    check = TokenizerCheck(samples=len(TOKENIZER_SAMPLES))
    for text in TOKENIZER_SAMPLES:
        expected = hf(text, add_special_tokens=False)["input_ids"]
        got = [int(i) for i in ov.encode([text], add_special_tokens=False).input_ids.data[0]]
        if got != expected:
            check.id_mismatches.append(text)
        if ov.decode(got, skip_special_tokens=False) != text:
            check.round_trip_failures.append(text)
    if hf.chat_template:
        messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
        try:
            want = hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception:  # a template that refuses a system turn: compare without one
            messages = messages[1:]
            want = hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        check.chat_template_ok = ov.apply_chat_template(messages, add_generation_prompt=True) == want
    return check


def convert(
    src: str,
    out: Path,
    options: ConvertOptions | None = None,
    *,
    overwrite: bool = False,
    accuracy: bool = True,
    log: Callable[[str], None] = lambda _msg: None,
) -> ConvertReport:
    """Convert `src` into an OpenVINO IR dir at `out`, verify its tokenizer, and write a JSON report there."""
    options = options or ConvertOptions()
    require_convert_extra()
    out = out.expanduser().resolve()
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConvertError(f"{out} exists and is not empty; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sdgen-convert-", dir=out.parent) as tmp:
        log(f"preparing {src}")
        source = prepare_source(src, Path(tmp))
        _check_architecture(source)
        if Path(source).is_dir():
            _check_disk(2 * _dir_size(Path(source)), out.parent)
        log(f"exporting to OpenVINO IR ({options.weights.value})")
        if out.exists():
            shutil.rmtree(out)
        _export(source, out, options, Path(tmp))
        log("verifying the tokenizer")
        check = verify_tokenizer(out, source)
        measured = None
        if accuracy and check.ok:
            from sdgen.models.accuracy import measure

            log("measuring accuracy against the fp32 torch reference")
            measured = measure(out, source, label=src)  # the user's name for the source, not a temp dir
            measured.save(out)
    report = ConvertReport(
        source=src, output=str(out), weights=options.weights.value, seconds=round(time.perf_counter() - t0, 1),
        ir_bytes=_dir_size(out), tokenizer=check, options=options.model_dump(mode="json"),
        accuracy=asdict(measured) if measured else None,
    )  # fmt: skip
    report.save()
    if not check.ok:
        raise ConvertError(
            f"tokenizer check failed for {out}: converted: {check.converted}, {len(check.id_mismatches)} id mismatches, "
            f"{len(check.round_trip_failures)} round-trip failures, chat template ok: {check.chat_template_ok}"
        )
    return report
