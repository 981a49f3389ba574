"""What the machine can do and what a model costs: matmul peak, FLOPs per token, versions."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import time
from pathlib import Path

from sdgen.hardware import cpu_class, cpu_name, has_bf16, has_int8_dot
from sdgen.models.registry import ResolvedModel


def matmul_peak_gflops(threads: int, seconds: float = 1.5) -> dict[str, float]:
    """Best dense matmul GFLOP/s (GOP/s for int8) on `threads` cores: torch fp32, bf16 where the CPU has it in
    hardware and int8 where it has int8 dot products (VNNI, AMX), when torch is there; else numpy fp32."""
    results: dict[str, float] = {}
    try:
        import torch

        torch.set_num_threads(threads)
        dtypes = [("bf16", torch.bfloat16)] if has_bf16() else []
        for name, dtype in [*dtypes, ("fp32", torch.float32)]:
            a = torch.randn(2048, 2048, dtype=dtype)
            b = torch.randn(2048, 2048, dtype=dtype)
            results[f"torch-{name}"] = _best_rate(lambda: torch.mm(a, b), 2 * 2048**3, seconds)
        if has_int8_dot():  # int8 x int8 -> int32 (oneDNN: AMX tiles or VNNI), what dynamic quantization runs on
            a = torch.randint(-127, 127, (2048, 2048), dtype=torch.int8)
            b = torch.randint(-127, 127, (2048, 2048), dtype=torch.int8)
            try:
                results["torch-int8"] = _best_rate(lambda: torch._int_mm(a, b), 2 * 2048**3, seconds)
            except RuntimeError:  # a torch build without the CPU int8 matmul
                pass
    except ImportError:
        import numpy as np

        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        a = np.random.rand(2048, 2048).astype(np.float32)
        results["numpy-fp32"] = _best_rate(lambda: a @ a, 2 * 2048**3, seconds)
    return results


def _best_rate(fn, flops: float, seconds: float) -> float:
    fn()  # warm-up
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        fn()
        best = max(best, flops / (time.perf_counter() - t0) / 1e9)
    return round(best, 1)


def matmul_params(model: ResolvedModel) -> int | None:
    """Weights that take part in a token's matmuls (layers + LM head, not the embedding lookup)."""
    if model.format == "gguf":
        return _gguf_matmul_params(model.path)
    config = model.path / "config.json"
    if model.path.is_dir() and config.is_file():
        return _config_matmul_params(json.loads(config.read_text()))
    return None


def _gguf_matmul_params(path: Path) -> int | None:
    try:
        from gguf import GGUFReader
    except ImportError:
        return None
    tensors = {t.name: int(t.n_elements) for t in GGUFReader(path).tensors if len(t.shape) == 2}
    total = sum(n for name, n in tensors.items() if name != "token_embd.weight")
    if "output.weight" not in tensors:  # tied LM head: the embedding matrix is also the output projection
        total += tensors.get("token_embd.weight", 0)
    return total


def _config_matmul_params(cfg: dict) -> int | None:
    """Decoder-only transformer with a gated MLP (llama, gemma, qwen, mistral...)."""
    cfg = cfg.get("text_config", cfg)
    try:
        hidden, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
        heads, vocab = cfg["num_attention_heads"], cfg["vocab_size"]
    except KeyError:
        return None
    kv_heads = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or hidden // heads
    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim
    return layers * (attention + 3 * hidden * inter) + hidden * vocab


def versions() -> dict[str, str]:
    found = {}
    for dist in ("sdgen", "openvino", "openvino-genai", "torch", "transformers", "optimum-intel",
                 "intel-extension-for-pytorch"):  # fmt: skip
        try:
            found[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return found


def git_commit(where: Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=where or Path.cwd(), capture_output=True,
                             text=True, timeout=5)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where or Path.cwd(),
                           capture_output=True, text=True, timeout=5).stdout.strip()  # fmt: skip
    return out.stdout.strip() + ("-dirty" if dirty else "")


def machine_info(threads: int) -> dict[str, object]:
    return {"cpu": cpu_name(), "cpu_class": cpu_class(), "int8_dot": has_int8_dot(), "cores": len(os.sched_getaffinity(0)),
            "threads": threads,
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}  # fmt: skip
