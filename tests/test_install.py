"""The install stays CPU-only: no CUDA wheels, now or through the optional torch extra."""

import importlib.metadata as md
import json
import subprocess
import sys

import pytest

from conftest import ROOT

GPU_PREFIXES = ("nvidia-", "cuda-", "triton", "cupy")


def is_gpu_package(name: str) -> bool:
    return name.lower().replace("_", "-").startswith(GPU_PREFIXES)


def test_environment_has_no_cuda_wheels():
    names = sorted({d.metadata["Name"] for d in md.distributions()})
    assert [n for n in names if is_gpu_package(n)] == []
    torch = next((d for d in md.distributions() if d.metadata["Name"] == "torch"), None)
    if torch is not None:  # a developer may have the [torch] extra installed: it must be the CPU build
        assert "+cpu" in torch.version or torch.version == "2.13.0"


def test_core_dependencies_do_not_include_torch():
    requires = md.requires("sdgen") or []
    core = [r for r in requires if "extra ==" not in r]
    assert not [r for r in core if r.split()[0].lower().startswith(("torch", "transformers"))]


@pytest.mark.slow
def test_torch_extra_resolves_cpu_only(tmp_path):
    """Ask pip what `[torch]` would install into this environment; none of it may be CUDA."""
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report), f"{ROOT}[torch]"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    items = json.loads(report.read_text())["install"]
    names = {i["metadata"]["name"]: i["metadata"]["version"] for i in items}
    assert [n for n in names if is_gpu_package(n)] == []
    assert names.get("torch", "2.13.0").startswith("2.13.0")
    assert "torchvision" not in names
