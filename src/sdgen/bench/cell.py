"""Run one benchmark cell in this process and print its measurements as one JSON line.

Each cell runs in a fresh process (`python -m sdgen.bench.cell '{...}'`) so that its peak RSS is
its own, one engine at a time holds the cores, and the IPEX cell can run in IPEX's environment.
"""

from __future__ import annotations

import json
import resource
import sys
import traceback

RESULT_TAG = "SDGEN_BENCH_RESULT "


def run_cell(args: dict) -> dict:
    from sdgen.bench.machine import matmul_params
    from sdgen.bench.runners import count_distinct, runner
    from sdgen.models.resolve import resolve_model
    from sdgen.spec import load_spec

    overrides = {"rows": args["rows"], "model": args["model"], "threads": args["threads"],
                 "prompt_style": args["style"]}  # fmt: skip
    spec = load_spec(args["spec"], **overrides)
    if args.get("engine"):
        engine = type(spec.engine).model_validate({**spec.engine.model_dump(), **args["engine"]})  # validated
        spec = spec.model_copy(update={"engine": engine})
    model = resolve_model(args["model"], base_dir=spec.base_dir)
    measured = runner(args["backend"])(spec, model)
    clock = measured.clock
    gen_s = max(clock.end_at - clock.loaded_at, 1e-9)
    params = matmul_params(model)
    distinct = count_distinct(measured.texts)
    return {
        "rows": measured.rows, "parsed": len(measured.texts), "distinct": distinct,
        "generated_tokens": measured.generated_tokens, "prompt_tokens": measured.prompt_tokens,
        "load_s": round(clock.loaded_at, 2), "gen_s": round(gen_s, 4),
        "ttfr_s": round(clock.first_row_at, 2) if clock.first_row_at is not None else None,
        "tail_s": measured.tail_s,
        "distinct_rows_s": round(distinct / gen_s, 3), "rows_s": round(len(measured.texts) / gen_s, 3),
        "tok_s": round(measured.generated_tokens / gen_s, 1), "prompt_tok_s": round(measured.prompt_tokens / gen_s, 1),
        "gflops": round(2 * params * measured.generated_tokens / gen_s / 1e9, 3) if params else None,
        "matmul_params": params, "weights": measured.weights, "labelled": measured.texts,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }  # fmt: skip


def main() -> None:
    args = json.loads(sys.argv[1])
    try:
        if args.get("kind") == "peak":
            from sdgen.bench.machine import matmul_peak_gflops

            result = {"peak": matmul_peak_gflops(args["threads"])}
        else:
            result = run_cell(args)
    except Exception as exc:  # the parent shows the cause in the table and carries on with the other cells
        traceback.print_exc()
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        result = {"error": f"{type(exc).__name__}: {detail}"[:300]}
    print(RESULT_TAG + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
