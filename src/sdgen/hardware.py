"""What CPU this is: its class (AMX, AVX-512 with bf16, AVX-512, AVX2) decides precisions and engine settings."""

from __future__ import annotations

import functools
import platform
from pathlib import Path

CLASSES = ("amx", "avx512-bf16", "avx512", "avx2", "other")


@functools.cache
def cpu_flags() -> frozenset[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_class(flags: frozenset[str] | None = None) -> str:
    """"amx" (Sapphire Rapids and later Xeons), "avx512-bf16" (e.g. Zen 4), "avx512", "avx2" (e.g. Zen 3), or "other"."""
    flags = cpu_flags() if flags is None else flags
    if "amx_bf16" in flags:
        return "amx"
    if "avx512_bf16" in flags:
        return "avx512-bf16"
    if "avx512f" in flags:
        return "avx512"
    if "avx2" in flags:
        return "avx2"
    return "other"


def has_bf16(flags: frozenset[str] | None = None) -> bool:
    """bf16 arithmetic in hardware (without it, a bf16 matmul is emulated: 61 s for 2048^2 on an AVX2 EPYC)."""
    return cpu_class(flags) in ("amx", "avx512-bf16")


def has_int8_dot(flags: frozenset[str] | None = None) -> bool:
    """int8 dot products in hardware (AVX512-VNNI, AVX-VNNI, AMX): OpenVINO's CPU plugin runs int8 x int8 (dynamic
    quantization of activations) only with them; elsewhere it unpacks int8 weights to f32."""
    flags = cpu_flags() if flags is None else flags
    return bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# Sequences in flight past which decode throughput stops rising (Qwen2.5-Coder-1.5B int8, 2 threads, OpenVINO or
# llama.cpp, generated tok/s with prefill included). More in flight only delays every request's end, and with it
# the first rows: with 128 a 240-row run wrote nothing for 8 minutes on a Zen 3.
#   avx2 (EPYC Zen 3, llama.cpp batched-bench): 23.0 tok/s at 16, 24.7 at 32, 26.3 at 48
#   amx (Xeon, OpenVINO CB, bf16, 48 forced tokens): 32.8 at 16, 45.2 at 32, 56.5-59.2 at 64, 48.5-86.0 at 128
#   (a noisy machine: the 128 figures are three runs); still rising at 128, the old fixed default, kept there
# avx512 classes were not swept; they sit between the two (int8 dot products via VNNI, no AMX tiles).
SATURATION_SEQS = {"amx": 128, "avx512-bf16": 48, "avx512": 48, "avx2": 32, "other": 16}


def saturation_seqs(flags: frozenset[str] | None = None) -> int:
    """Default sequences in flight for this CPU class (`SATURATION_SEQS`)."""
    return SATURATION_SEQS[cpu_class(flags)]
