"""Does a request's output depend on the requests that share its batch? GenAI's log-probs, bit for bit.

Runs a few requests alone, then among 8 and 24 others, in reverse order and joining a few steps apart, with the
engine's own scheduler and CPU settings, and prints for each where its log-probs first differ from the solo run
and by how much. A difference at all means sampled tokens can flip now and then (docs/resume.md).

    python benchmarks/batch_invariance.py smollm2-135m-instruct '{"kv_cache_precision": "u8"}'
"""

from __future__ import annotations

import argparse
import json

import openvino_genai as ov_genai

from sdgen.engines.openvino import cpu_properties, scheduler_config
from sdgen.models.resolve import resolve_model
from sdgen.spec import EngineOptions

HEAD = "Here are customer messages, each with its politeness label.\n" + "\n".join(
    f"Text: message number {i} about a late train and a broken kettle, please help.\nLabel: polite" for i in range(25)
)
PROMPTS = [HEAD + f"\nWrite message {i} about topic {i * 7 % 13}.\nText:" for i in range(24)]
WATCHED = (0, 1, 2)


def run(pipe, ids: list[int], stagger: int = 0) -> dict[int, tuple[list[int], list[float]]]:
    handles = {}
    for n, i in enumerate(ids):
        config = ov_genai.GenerationConfig()
        config.max_new_tokens, config.do_sample, config.temperature, config.top_p = 48, True, 0.9, 0.95
        config.rng_seed, config.logprobs = i, 1
        handles[i] = pipe.add_request(i, PROMPTS[i], config)
        for _ in range(stagger if n else 0):
            pipe.step()
    while pipe.has_non_finished_requests():
        pipe.step()
    outs = {i: h.read_all()[0] for i, h in handles.items()}
    return {i: (list(o.generated_ids), list(o.generated_log_probs)) for i, o in outs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("engine", nargs="?", default="{}", help="JSON engine options (dtype defaults to fp32)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    options = EngineOptions(**{"threads": args.threads, "dtype": "fp32", **json.loads(args.engine)})
    model = resolve_model(args.model)
    props = cpu_properties(options, args.threads)
    pipe = ov_genai.ContinuousBatchingPipeline(str(model.path), scheduler_config(options), "CPU", props)
    print(f"{model.name}, {props}")
    solo = {}
    for i in WATCHED:
        solo.update(run(pipe, [i]))
    cases = {"among 24": list(range(24)), "among 8": list(range(8)), "reversed": list(range(23, -1, -1))}
    for name, ids, stagger in [*((n, c, 0) for n, c in cases.items()), ("joining 3 steps apart", list(range(12)), 3)]:
        got = run(pipe, ids, stagger)
        for i in WATCHED:
            (ids_a, lp_a), (ids_b, lp_b) = solo[i], got[i]
            first = next((k for k, (x, y) in enumerate(zip(lp_a, lp_b)) if x != y), None)
            worst = max((abs(x - y) for x, y in zip(lp_a, lp_b)), default=0.0)
            tokens = "same tokens" if ids_a == ids_b else "OTHER TOKENS"
            print(f"{name:>22}: request {i}: {tokens}; log-probs first differ at token {first}, by up to {worst:.1e}")


if __name__ == "__main__":
    main()
