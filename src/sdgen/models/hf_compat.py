"""Differences between the transformers versions sdgen runs with (5.x main env, 4.51 in .venv-ipex)."""

from __future__ import annotations

from typing import Any


def dtype_kwargs(dtype: Any) -> dict[str, Any]:
    """`from_pretrained` takes `dtype=` since transformers 5 and `torch_dtype=` before."""
    import transformers

    major = int(transformers.__version__.split(".")[0])
    return {"dtype": dtype} if major >= 5 else {"torch_dtype": dtype}
