"""Where a run's time and tokens went, in one sentence, from its per-model figures (``ModelStats`` as dicts).

The summary line, the stats and the report all say it the same way. Engines that report their steps (OpenVINO)
add priming, the time at full batch and the prompt tokens computed or served from the prefix cache.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping


def _share(part: float, whole: float) -> str:
    return f"{100 * part / max(whole, 1e-9):.0f}%"


def timing_text(models: Iterable[Mapping[str, Any]]) -> str:
    models = list(models)

    def total(key: str) -> float:
        return sum(m.get(key) or 0 for m in models)

    generation = sum(m["seconds"] - m["load_seconds"] for m in models)
    firsts = [m["first_row_seconds"] for m in models if m.get("first_row_seconds") is not None]
    parts = [f"model load {total('load_seconds'):.1f} s",
             f"first row after {min(firsts):.1f} s" if firsts else "no row"]  # fmt: skip
    if total("priming_seconds"):
        parts.append(f"priming {total('priming_seconds'):.1f} s")
    if total("step_seconds"):
        parts.append(f"{total('full_batch_seconds'):.1f} s at full batch ({_share(total('full_batch_seconds'), generation)} "
                     "of generation)")  # fmt: skip
    tail = total("tail_seconds")
    parts.append(f"tail {tail:.1f} s after the last request went in ({_share(tail, generation)} of generation)")
    text = ", ".join(parts)
    tokens = []
    if total("prompt_tokens"):
        cached = total("cached_prompt_tokens")
        tokens.append(f"prompt tokens {total('prompt_tokens') - cached:,} computed and {cached:,} from the prefix cache")
    generated, lost = total("generated_tokens"), total("lost_tokens")
    if generated:
        tokens.append(f"generated tokens {generated:,}, {lost:,} of them ({100 * lost / generated:.1f}%) spent on texts that "
                      "did not reach the dataset (unparseable, or dropped by curation)")  # fmt: skip
    return text + ("; " + ", ".join(tokens) if tokens else "")
