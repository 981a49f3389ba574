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


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
