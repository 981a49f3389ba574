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


@pytest.mark.slow  # builds and installs a wheel into a fresh venv
def test_bench_runs_from_an_installed_wheel(tmp_path, tiny_models):
    """The wheel carries the example spec `sdgen bench` defaults to; a bench cell runs from the installed copy."""
    import zipfile

    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)]
    assert subprocess.run(build, capture_output=True, text=True).returncode == 0
    (wheel,) = wheels.glob("sdgen-*.whl")
    assert "sdgen/examples/customer_service.yaml" in zipfile.ZipFile(wheel).namelist()
    site = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)]
    assert subprocess.run(install, capture_output=True, text=True).returncode == 0
    env = {**__import__("os").environ, "PYTHONPATH": str(site), "SDGEN_CACHE": str(tmp_path / "cache")}
    where = subprocess.run([sys.executable, "-c", "import sdgen.bench as b; print(b.EXAMPLE_SPEC)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True)  # fmt: skip
    assert where.stdout.strip().startswith(str(site)), where.stderr
    bench = [sys.executable, "-m", "sdgen.cli", "bench", "--models", str(tiny_models["chat"]), "--styles", "fewshot",
             "--backends", "sdgen", "--rows", "3", "--history", str(tmp_path / "h.jsonl"), "--json"]  # fmt: skip
    proc = subprocess.run(bench, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (cell,) = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert cell["backend"] == "sdgen" and cell["rows"] == 3 and "error" not in cell
