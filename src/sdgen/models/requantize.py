"""Rewrite a GGUF's tensors in one quantization type that OpenVINO GenAI's GGUF reader loads (Q8_0, Q4_0...).

GenAI reads F32/F16 and Q4_0/Q4_1/Q8_0 tensors; K-quants (Q4_K, Q5_K, Q6_K) and Q5_0 fail with
``gguf_tensor_to_f16 failed``. gguf-py dequantizes all of them with numpy, so a K-quant GGUF can be
rewritten tensor by tensor with no torch and no conversion toolchain: one tensor in memory at a time.
Q8_0 from Q4_K keeps the K-quant's weights almost exactly (8-bit blocks of 32 over 4-6-bit values).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

LOADABLE = {"F32", "F16", "Q4_0", "Q4_1", "Q8_0"}
FILE_TYPES = {"Q8_0": "MOSTLY_Q8_0", "Q4_0": "MOSTLY_Q4_0", "Q4_1": "MOSTLY_Q4_1", "F16": "MOSTLY_F16"}


def requantize(source: Path, target: Path, qtype: str = "Q8_0",
               progress: Callable[[str, float, float], None] = lambda *_: None) -> dict:  # fmt: skip
    """Write ``target``: ``source`` with every quantized matrix re-quantized to ``qtype`` (norms stay F32).

    Returns counts of the tensor types converted. The file appears at ``target`` only when complete.
    """
    import gguf

    want = gguf.GGMLQuantizationType[qtype]
    reader = gguf.GGUFReader(str(source))
    arch = reader.fields["general.architecture"].contents()
    partial = target.with_name(target.name + ".partial")
    writer = gguf.GGUFWriter(str(partial), arch)
    for field in reader.fields.values():
        if field.name == "general.architecture" or field.name.startswith("GGUF."):
            continue  # written by GGUFWriter itself
        value = field.contents()
        if field.name == "general.file_type":
            value = int(gguf.LlamaFileType[FILE_TYPES[qtype]])
        main = field.types[0]
        writer.add_key_value(field.name, value, main, sub_type=field.types[-1] if main == gguf.GGUFValueType.ARRAY else None)
    plan = []
    for tensor in reader.tensors:
        out = _target_type(tensor, want, gguf)
        shape = [int(d) for d in reversed(tensor.shape)]  # gguf-py's numpy order: slowest dimension first
        nbytes = int(np.prod(shape)) // gguf.GGML_QUANT_SIZES[out][0] * gguf.GGML_QUANT_SIZES[out][1]
        # a non-uint8 dtype: ``shape`` is in elements (gguf-py reads a uint8 array's shape as bytes)
        writer.add_tensor_info(tensor.name, shape, np.dtype(np.float32), nbytes, raw_dtype=out)
        plan.append((tensor, out, shape))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    converted: dict[str, int] = {}
    total = sum(int(t.n_bytes) for t, _, _ in plan)
    done = 0
    for tensor, out, shape in plan:
        writer.write_tensor_data(_convert(tensor, out, shape, gguf))
        if tensor.tensor_type != out:
            key = f"{tensor.tensor_type.name}->{out.name}"
            converted[key] = converted.get(key, 0) + 1
        done += int(tensor.n_bytes)
        progress(f"re-quantizing {source.name} to {qtype}", done, total)
    writer.close()
    partial.replace(target)
    return {"converted": converted, "bytes": target.stat().st_size}


def _target_type(tensor, want, gguf):
    kind = tensor.tensor_type
    if kind in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16) or len(tensor.shape) < 2:
        return kind if kind.name in LOADABLE else gguf.GGMLQuantizationType.F32
    block = gguf.GGML_QUANT_SIZES[want][0]
    return want if int(tensor.shape[0]) % block == 0 else gguf.GGMLQuantizationType.F16


def _convert(tensor, out, shape, gguf) -> np.ndarray:
    if tensor.tensor_type == out:
        return tensor.data
    values = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(shape)
    if out == gguf.GGMLQuantizationType.F32:
        return values.astype(np.float32)
    if out == gguf.GGMLQuantizationType.F16:
        return values.astype(np.float16)
    return gguf.quants.quantize(values.astype(np.float32), out)
