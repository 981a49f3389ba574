"""Intel Extension for PyTorch backend: `ipex.llm.optimize` (bf16, or weight-only int8), batched.

IPEX is retired upstream and needs torch 2.8.x with transformers 4.51.x, so it runs in its own
environment (`make ipex-env`, `.venv-ipex`). Its optimized models keep their KV cache in IPEX's
own format, so batches go through HF `generate`; per-row seeds survive through a logits
processor that samples each row with that row's generator and hands `generate` a one-hot
distribution (greedy decoding then picks exactly that token).
"""

from __future__ import annotations

from pathlib import Path

from sdgen.engines.base import Request, Result
from sdgen.engines.torch import TorchEngine
from sdgen.errors import EngineError
from sdgen.hardware import cpu_class, cpu_flags


def ipex_bf16_ok() -> bool:
    """IPEX prepacks bf16 weights only with these instruction sets (it asserts otherwise)."""
    flags = cpu_flags()
    return "avx_ne_convert" in flags or {"avx512bw", "avx512vl", "avx512dq"} <= flags


class IpexEngine(TorchEngine):
    backend = "ipex"

    def _load(self, auto_class, path: Path):
        try:
            import intel_extension_for_pytorch as ipex
        except ImportError:
            raise EngineError(
                "the ipex backend runs in its own environment: `make ipex-env`, then `.venv-ipex/bin/sdgen ...`"
            ) from None
        torch = self.torch
        if self.dtype == torch.bfloat16 and self.options.dtype != "int8" and not ipex_bf16_ok():
            raise EngineError(f"IPEX bf16 needs AVX-512 (bw, vl, dq) or AVX-NE-CONVERT; this CPU is {cpu_class()}: "
                              "use engine.dtype fp32 or int8")  # fmt: skip
        model = super()._load(auto_class, path)
        if self.options.dtype == "int8":
            from intel_extension_for_pytorch.quantization import WoqWeightDtype, get_weight_only_quant_qconfig_mapping

            qconfig = get_weight_only_quant_qconfig_mapping(weight_dtype=WoqWeightDtype.INT8)
            return ipex.llm.optimize(model.float(), dtype=torch.bfloat16, quantization_config=qconfig, inplace=True,
                                     deployment_mode=False)  # fmt: skip
        return ipex.llm.optimize(model, dtype=self.dtype, inplace=True, deployment_mode=False)

    def _generate_batch(self, batch: list[Request]) -> list[Result]:
        torch = self.torch
        from transformers import LogitsProcessor, LogitsProcessorList

        engine, params = self, batch[0].params
        generators = [torch.Generator().manual_seed(r.seed) for r in batch]

        class PerRowSampling(LogitsProcessor):
            def __call__(self, input_ids, scores):
                chosen = engine._sample(scores.float(), input_ids, params, generators)
                return torch.full_like(scores, float("-inf")).scatter_(1, chosen[:, None], 0.0)

        enc = self.tokenizer([r.prompt for r in batch], return_tensors="pt", padding=True, add_special_tokens=False)
        stops = sorted(set().union(*(r.stop_strings for r in batch)))
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], max_new_tokens=params.max_new_tokens, do_sample=False, num_beams=1,
                logits_processor=LogitsProcessorList([PerRowSampling()]), pad_token_id=self.tokenizer.pad_token_id,
                stop_strings=stops or None, tokenizer=self.tokenizer if stops else None,
            )  # fmt: skip
        results = []
        for req, row in zip(batch, out[:, enc["input_ids"].shape[1] :].tolist()):
            tokens, reason = [], "length"
            for token in row:
                if token in self.eos_ids:
                    reason = "stop"
                    break
                tokens.append(token)
            results.append(self._result(req, tokens, reason))
        return results
