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


def test_int8_dot_products_and_sequences_in_flight_follow_the_flags():
    """int8 x int8 (what OpenVINO's dynamic quantization needs) with VNNI or AMX only; the default sequences in
    flight come from the class, and an explicit max_num_seqs wins."""
    from sdgen.hardware import SATURATION_SEQS, has_int8_dot, saturation_seqs
    from sdgen.spec import EngineOptions

    assert has_int8_dot(frozenset({"avx2", "avx_vnni"})) and has_int8_dot(frozenset({"avx512f", "avx512_vnni"}))
    assert not has_int8_dot(frozenset({"avx2", "fma"}))
    assert set(SATURATION_SEQS) == set(CLASSES)
    assert saturation_seqs(frozenset({"avx2"})) == SATURATION_SEQS["avx2"] < saturation_seqs(frozenset({"amx_bf16"}))
    assert EngineOptions().seqs_in_flight == saturation_seqs()
    assert EngineOptions(max_num_seqs=7).seqs_in_flight == 7
