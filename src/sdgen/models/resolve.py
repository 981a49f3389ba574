"""From a name the user wrote (a built-in, a GGUF file, an OpenVINO IR dir) to a model ready to load."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sdgen.errors import ModelError
from sdgen.models.accuracy import load_accuracy
from sdgen.models.provision import Progress, builtin_path, provision
from sdgen.models.registry import BUILTINS, CONVERT_REPORT, ResolvedModel, inspect_path


def resolve_model(name: str, *, base_dir: Path | None = None, auto_provision: bool = True,
                  progress: Progress | None = None) -> ResolvedModel:  # fmt: skip
    """Resolve a built-in name or a local path (relative to ``base_dir``) to a loadable model."""
    if name in BUILTINS:
        path = builtin_path(name)
        if path is None:
            if not auto_provision:
                raise ModelError(f"built-in model {name!r} is not provisioned; run `sdgen models --provision {name}`")
            path = provision(name, quiet=True, **({"progress": progress} if progress else {}))
        return ResolvedModel(name=name, path=path, format=inspect_path(path), builtin=BUILTINS[name])
    path = Path(name).expanduser()
    if not path.is_absolute() and base_dir is not None and not path.exists():
        path = base_dir / path
    if not path.exists():
        raise ModelError(f"unknown model {name!r}: not a built-in ({', '.join(BUILTINS)}) and no such file or dir")
    return ResolvedModel(name=name, path=path.resolve(), format=inspect_path(path))


@dataclass(frozen=True)
class ModelInfo:
    name: str
    kind: str
    format: str
    location: str
    provisioned: bool
    size_mb: float | None = None
    speed: str = ""
    quality: str = ""
    note: str = ""


def _size_mb(path: Path) -> float:
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    return round(sum(f.stat().st_size for f in files) / 2**20, 1)


def _accuracy_note(path: Path) -> str:
    report = load_accuracy(path) if path.is_dir() else None
    return f"accuracy: {report.summary()}" if report else ""


def list_models(paths: list[Path] | None = None) -> list[ModelInfo]:
    """Built-in models and any local model paths given: where each lives, whether it is ready, what it does."""
    infos = []
    for model in BUILTINS.values():
        path = builtin_path(model.name)
        location = str(path) if path else f"PyPI {model.packages[0]}=={model.version} ({len(model.packages)} packages)"
        figures = model.figures
        infos.append(ModelInfo(
            model.name, "built-in", "gguf", location, path is not None,
            _size_mb(path) if path else (round(model.size / 2**20, 1) if model.size else None),
            figures.rows_per_s if figures else "", figures.quality if figures else "",
            f"{model.description}; {model.license}",
        ))  # fmt: skip
    for path in paths or []:
        try:
            fmt = inspect_path(path)
            infos.append(ModelInfo(str(path), "local", fmt, str(path.resolve()), True, _size_mb(path),
                                   note=_accuracy_note(path) or (_convert_note(path) if fmt == "openvino-ir" else "")))
        except ModelError as exc:
            infos.append(ModelInfo(str(path), "local", "?", str(path), False, note=str(exc)))
    return infos


def _convert_note(path: Path) -> str:
    report = path / CONVERT_REPORT
    return f"IR {json.loads(report.read_text()).get('weights', '?')}" if report.is_file() else ""
