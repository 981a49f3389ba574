"""CPU class detection from /proc/cpuinfo flags."""

import pytest

from sdgen.hardware import CLASSES, cpu_class, has_bf16


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8"}, "amx"),  # Sapphire Rapids
        ({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}, "avx512-bf16"),  # Zen 4
        ({"avx2", "avx512f", "avx512_vnni"}, "avx512"),  # Ice Lake
        ({"avx2", "fma", "f16c"}, "avx2"),  # Zen 3
        ({"sse4_2"}, "other"),
    ],
)
def test_cpu_class(flags, expected):
    assert cpu_class(frozenset(flags)) == expected
    assert has_bf16(frozenset(flags)) == (expected in ("amx", "avx512-bf16"))


def test_this_machine_has_a_class():
    assert cpu_class() in CLASSES
