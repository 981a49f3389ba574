"""The `sdgen` command: a thin typer layer over the library API."""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sdgen.debug import dump_stacks_on_sigusr1
from sdgen.errors import Interrupted, SdgenError
from sdgen.formats import suffixes
from sdgen.run.generate import generate
from sdgen.run.summary import Summary
from sdgen.models.provision import provision
from sdgen.models.registry import BUILTINS
from sdgen.models.resolve import list_models
from sdgen.progress import NullProgress, progress_for

app = typer.Typer(
    help="Generate labelled synthetic text datasets with language models, fast, on CPUs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # bugs keep a plain traceback; user errors are one line (see main)
    add_completion=False,
)
out = Console()
err = Console(stderr=True)
if not err.is_terminal:  # a log file or a pipe: whole lines, not an 80-column fold
    err = Console(stderr=True, width=200)


@app.command("generate")
def generate_cmd(
    spec: Path = typer.Argument(..., help="Task spec file (YAML or TOML)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help=f"Output file ({suffixes()})."),
    rows: Optional[int] = typer.Option(None, "--rows", "-n", help="Rows to generate (overrides sample_size)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Built-in model name, IR dir or GGUF path."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Run seed (overrides the spec)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Inference threads."),
    backend: str = typer.Option("openvino", "--backend", help="Generation backend."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
    resume: bool = typer.Option(False, "--resume", help="Finish an interrupted run of the same spec into its output."),
    keep_duplicates: bool = typer.Option(
        False, "--keep-duplicates", help="Write duplicates too, flagged in `duplicate`/`duplicate_of` columns."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar; print only the output path."),
    ray: Optional[str] = typer.Option(
        None, "--ray", is_flag=False, flag_value="", metavar="[ADDRESS]",
        help="Run on a Ray cluster: ADDRESS (host:port) or, alone, the spec's or this machine's cluster.",
    ),  # fmt: skip
    eval_real: Optional[Path] = typer.Option(
        None, "--eval", metavar="REAL", help="Score the dataset against this real labelled file when done (see `sdgen eval`)."
    ),
    mix_real: Optional[Path] = typer.Option(
        None, "--mix-real", metavar="REAL", help="Write these real labelled rows into the dataset too, with a `source` "
        "column (real / generated); no generated row copies one.",
    ),  # fmt: skip
    text_col: str = typer.Option("text", "--text-col", help="--eval, --mix-real: the real file's text column."),
    label_col: str = typer.Option("label", "--label-col", help="--eval, --mix-real: the real file's label column."),
) -> None:
    """Generate a dataset from a task spec (plus its conflicts file, run stats and report.md beside it)."""
    overrides = {"output": output, "rows": rows, "model": model, "seed": seed, "threads": threads,
                 "keep_duplicates": keep_duplicates or None, "ray": ray,
                 "mix_real": {"path": str(mix_real.expanduser().resolve()), "text_col": text_col, "label_col": label_col}
                 if mix_real is not None else None}  # fmt: skip
    progress = NullProgress() if quiet else progress_for(err)
    summary = generate(spec, overwrite=overwrite, resume=resume, backend=backend, progress=progress,
                       evaluate=eval_real, eval_columns=(text_col, label_col), **overrides)  # fmt: skip
    if quiet:
        out.print(str(summary.output), highlight=False)
        if summary.missing_note:
            err.print(f"[yellow]{escape(summary.missing_note)}[/yellow]", highlight=False, soft_wrap=True)
    else:
        _print_summary(summary)


def _print_summary(s: Summary) -> None:
    table = Table(title="sdgen generate", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("output", str(s.output))
    table.add_row("rows written", f"{s.written} of {s.planned} planned"
                  + (f", plus {s.real_rows} real rows (source: real)" if s.real_rows else ""))  # fmt: skip
    table.add_row("unparseable", f"{s.unparseable} (after retries)")
    parsed = sum(m.rows for m in s.per_model.values())
    for what, count in (("exact duplicates", s.exact_duplicates), ("near duplicates", s.near_duplicates),
                        ("label conflicts", s.conflicts)):  # fmt: skip
        table.add_row(what, f"{count} ({100 * count / max(parsed, 1):.1f}% of parsed rows)")
    from sdgen.quality.report import phrase_counts
    from sdgen.quality.steps import step_titles

    for step, title in step_titles().items():
        dropped = s.screened(step)
        if dropped:
            count = sum(dropped.values())
            table.add_row(step, f"{count} ({100 * count / max(parsed, 1):.1f}% of parsed rows) "
                          f"{title}: {phrase_counts(dropped)}")  # fmt: skip
    if s.missing_note:
        table.add_row("missing", f"[yellow]{escape(s.missing_note)}[/yellow]")
    if s.quotas:
        short = s.shortfall
        table.add_row("quotas", f"{len(s.quotas) - len(short)} of {len(s.quotas)} cells full"
                      + (": short " + ", ".join(f"{' x '.join(c)} by {n}" for c, n in short.items()) if short else ""))  # fmt: skip
    if s.judge is not None:
        j = s.judge.overall
        unsure = f" ({s.judge.unsure} given their own label below min_confidence)" if s.judge.unsure else ""
        table.add_row("judge", f"{j.agree} of {j.total} rows passed ({100 * j.rate:.1f}%); "
                      f"{j.total - j.agree} {'flagged' if s.judge.action == 'flag' else 'rejected'}{unsure}")  # fmt: skip
    table.add_row("generated tokens", f"{s.generated_tokens:,}" + (f", {s.lost_tokens:,} ({100 * s.lost_share:.1f}%) on "
                  "texts that did not reach the dataset" if s.lost_tokens else ""))  # fmt: skip
    table.add_row("throughput", f"{s.tokens_per_s:,.0f} tok/s, {s.rows_per_s:.2f} rows/s")
    table.add_row("wall time", f"{s.wall_time:.1f} s" + (f" ({s.timing_line()})" if s.per_model else ""))
    if len(s.per_model) > 1:
        for name, m in s.per_model.items():
            q = s.quality.get(name)
            dupes = f", {q.exact_duplicates + q.near_duplicates} dupes, {q.conflicts} conflicts" if q else ""
            table.add_row(f"  {name}", f"{m.rows} parsed, {m.unparseable} unparseable{dupes}")
    for name, m in s.per_model.items():
        if m.workers:
            table.add_row(f"  workers ({name})", ", ".join(f"{w}: {n}" for w, n in m.workers.items()))
    if s.evaluation is not None:
        table.add_row("eval on real data", s.evaluation.summary())
    for what, path in (("conflicts", s.conflicts_file), ("rejected", s.rejected_file), ("report", s.report_file)):
        if path is not None:
            table.add_row(what, str(path))
    err.print(table)


@app.command("report")
def report_cmd(output: Path = typer.Argument(..., help="A dataset file written by sdgen generate.")) -> None:
    """Rebuild <stem>.report.md and its charts for an existing dataset."""
    from sdgen.quality.report import build_report

    out.print(str(build_report(output)), highlight=False)


@app.command("eval")
def eval_cmd(
    dataset: Path = typer.Argument(..., help="A dataset written by sdgen generate (or any file with text and label)."),
    real: Path = typer.Option(..., "--real", help="Real, human-labelled rows with the same labels (CSV, JSONL, Parquet)."),
    text_col: str = typer.Option("text", "--text-col", help="The real file's text column."),
    label_col: str = typer.Option("label", "--label-col", help="The real file's label column."),
    seed: Optional[str] = typer.Option(
        None, "--seed", metavar="SEED", help="Your own small real sample (e.g. the one `sdgen tune` learnt from): adds "
        "the learning curve, seed alone against seed + generated rows. (A whole number here is --split-seed.)",
    ),  # fmt: skip
    split_seed: int = typer.Option(0, "--split-seed", help="Seed of the real file's test split and the classifiers."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Train on the dataset, test on real data: macro-F1 against a real-trained reference, agreement, diversity.

    Writes <stem>.eval.md, <stem>.eval.json and a confusion matrix PNG beside the dataset.
    """
    from sdgen.quality.evaluate import evaluate

    seed_file = None
    if seed is not None:
        if seed.isdigit() and not Path(seed).exists():  # the option's old meaning
            split_seed = int(seed)
        else:
            seed_file = Path(seed)
    report = evaluate(dataset, real, text_col=text_col, label_col=label_col, seed=split_seed, seed_file=seed_file)
    for warning in report.warnings:
        err.print(f"[yellow]warning: {escape(warning)}[/yellow]", highlight=False, soft_wrap=True)
    if as_json:
        out.print(json.dumps(report.to_json()), highlight=False, soft_wrap=True)
        return
    table = Table(title=f"sdgen eval: {dataset.name} against {real.name}", show_header=True, title_justify="left")
    for col in ("label", "F1 on real", "agreement", "misread as", "real rows' marker words"):
        table.add_column(col)
    for label in report.labels:
        misread = next(iter(report.read_as.get(label, {}).items()), None)
        table.add_row(label, f"{report.per_label_f1[label]:.3f}", f"{report.agreement_by_label.get(label, 0):.1%}",
                      f"{misread[0]} {misread[1]:.0%}" if misread else "-",
                      ", ".join(report.markers.get(label, {}).get("real", [])[:5]))  # fmt: skip
    out.print(table)
    out.print(report.summary(), highlight=False, soft_wrap=True)
    if report.shares_macro_f1 is not None:
        out.print(f"label shares: {escape(report.shares_line())}", highlight=False, soft_wrap=True)
    out.print(f"report: {dataset.with_name(dataset.stem + '.eval.md')}", highlight=False)


@app.command("tune")
def tune_cmd(
    spec: Path = typer.Argument(..., help="The task spec to refine (YAML or TOML)."),
    real: Path = typer.Option(..., "--real", help="Your real labelled rows (10-100 per label; CSV, JSONL, Parquet)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="The tuned spec (default <spec>.tuned.yaml)."),
    text_col: str = typer.Option("text", "--text-col", help="The real file's text column."),
    label_col: str = typer.Option("label", "--label-col", help="The real file's label column."),
    minutes: Optional[float] = typer.Option(None, "--minutes", help="Budget: no new round starts that would end "
                                            "after this (default: 5 per label, 15 for 3 labels)."),
    budget_rows: Optional[int] = typer.Option(None, "--budget-rows", help="Budget in pilot rows (default: none)."),
    pilot_rows: int = typer.Option(24, "--pilot-rows", help="Rows per label in each pilot."),
    seed: int = typer.Option(0, "--seed", help="Seed of the folds and the pilots."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Inference threads."),
    backend: str = typer.Option("openvino", "--backend", help="Generation backend."),
) -> None:
    """Refine a spec against a few real rows: pilot runs scored on held-out real rows keep what helps.

    Writes the tuned spec (each change commented) and <stem>.tune.md (every round's figures).
    """
    from sdgen.tuning.loop import tune
    from sdgen.tuning.output import judge_warning

    def on_event(kind: str, what) -> None:
        if kind == "round":
            err.print(_round_line(what), highlight=False, soft_wrap=True)

    result = tune(spec, real, output=output, text_col=text_col, label_col=label_col, budget_minutes=minutes,
                  budget_rows=budget_rows, pilot_rows_per_label=pilot_rows, seed=seed, threads=threads, backend=backend,
                  progress=lambda: progress_for(err), on_event=on_event)  # fmt: skip
    if result.stopped:
        err.print(f"[yellow]left untried: {escape(result.stopped)}[/yellow]", highlight=False, soft_wrap=True)
    if result.weak_judge:
        err.print(f"[yellow]{escape(judge_warning(result))}[/yellow]", highlight=False, soft_wrap=True)
    before = sum(s.value for s in result.before) / len(result.before)
    after = sum(s.value for s in result.after) / len(result.after)
    err.print(f"{len(result.changes)} change(s) kept; held-out score {before:.3f} -> {after:.3f}; "
              f"{result.pilot_rows} pilot rows in {result.seconds / 60:.1f} min", highlight=False)  # fmt: skip
    err.print(f"log: {result.log_path}", highlight=False)
    out.print(str(result.spec_path), highlight=False)


def _round_line(r) -> str:
    agreement = " / ".join(f"{s.agreement:.0%}" for s in r.scores)
    f1 = " / ".join(f"{s.f1:.3f}" for s in r.scores)
    if r.number == 0:
        return f"round 0 baseline: agreement {agreement}, F1 {f1}"
    verdict = "kept" if r.kept else "dropped"
    return f"round {r.number} {r.name}: {verdict} (gain {r.gains_line}; agreement {agreement}, F1 {f1})"


@app.command("models")
def models_cmd(
    paths: Optional[list[Path]] = typer.Argument(None, help="Local model dirs or GGUF files to inspect."),
    provision_name: Optional[str] = typer.Option(
        None, "--provision", help=f"Install a built-in model ({', '.join(BUILTINS)})."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per model, for scripts."),
) -> None:
    """List built-in models and local model paths: where each lives and whether it is ready."""
    if provision_name:
        path = provision(provision_name)
        err.print(f"provisioned {provision_name}: {path}")
    infos = list_models(paths)
    if as_json:
        for info in infos:
            out.print(json.dumps(dataclasses.asdict(info)), highlight=False, soft_wrap=True)
        return
    if not out.is_terminal:  # `sdgen models | grep qwen`: one model per line, tab-separated, names whole
        for info in infos:
            fields = (info.name, info.kind, info.format, "yes" if info.provisioned else "no", info.location, info.note)
            typer.echo("\t".join(" ".join(str(f).split()) for f in fields))  # rich would expand the tabs
        return
    table = Table(title="models")
    for col in ("name", "kind", "format", "ready", "location", "note"):
        table.add_column(col, overflow="fold")
    for info in infos:
        table.add_row(info.name, info.kind, info.format, "yes" if info.provisioned else "no", info.location, info.note)
    out.print(table)


@app.command("convert")
def convert_cmd(
    src: str = typer.Argument(..., help="HF model dir, GGUF file, built-in name, or hub id (org/name)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output dir for the OpenVINO IR."),
    weights: str = typer.Option("int8", "--weights", "-w", help="fp16 | int8 | int4"),
    group_size: int = typer.Option(128, "--group-size", help="int4 group size (-1: per channel)."),
    group_size_fallback: str = typer.Option(
        "adjust", "--group-size-fallback", help="adjust | ignore | error, for layers the group size does not divide."
    ),
    ratio: float = typer.Option(1.0, "--ratio", help="Share of layers in int4, the rest int8."),
    sym: bool = typer.Option(False, "--sym", help="Symmetric quantization."),
    awq: bool = typer.Option(False, "--awq", help="AWQ (int4; needs --dataset)."),
    scale_estimation: bool = typer.Option(False, "--scale-estimation", help="Scale estimation (int4; needs --dataset)."),
    all_layers: bool = typer.Option(False, "--all-layers", help="Embeddings and LM head in int4 too."),
    dataset: Optional[Path] = typer.Option(None, "--dataset", help="Spec whose prompts calibrate AWQ/scale estimation."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty output dir."),
    no_accuracy: bool = typer.Option(False, "--no-accuracy", help="Skip the accuracy report against fp32 torch."),
) -> None:
    """Convert a model to OpenVINO IR (fp16/int8/int4) and verify its tokenizer."""
    from pydantic import ValidationError

    from sdgen.models.convert import ConvertError, ConvertOptions, convert
    from sdgen.spec import format_validation_error

    try:
        options = ConvertOptions(
            weights=weights, group_size=group_size, group_size_fallback=group_size_fallback, ratio=ratio, sym=sym, awq=awq,
            scale_estimation=scale_estimation, all_layers=all_layers, calibration_spec=dataset,
        )  # fmt: skip
    except ValidationError as exc:
        raise ConvertError(format_validation_error(exc, "convert options")) from None
    if src in BUILTINS:
        from sdgen.models.provision import source_gguf

        src = str(source_gguf(src))
    with err.status(f"converting {src}") as status:
        report = convert(src, out, options, overwrite=overwrite, accuracy=not no_accuracy,
                         log=lambda msg: status.update(msg))  # fmt: skip
    check = report.tokenizer
    err.print(
        f"[green]converted[/green] {src} -> {report.output} ({report.weights}): "
        f"{report.ir_bytes / 2**20:.1f} MiB in {report.seconds:.1f} s; tokenizer verified on {check.samples} samples"
    )
    if report.accuracy:
        from sdgen.models.accuracy import AccuracyReport

        err.print(f"accuracy vs {report.accuracy['reference']}: {AccuracyReport(**report.accuracy).summary()}")


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _engine_overrides(pairs: list[str]) -> dict:
    import yaml

    from sdgen.bench import BenchError

    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BenchError(f"--engine takes KEY=VALUE (an engine option), got {pair!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


@app.command("bench")
def bench_cmd(
    models: Optional[str] = typer.Option(None, "--models", help="Comma-separated models (default: the built-ins)."),
    styles: Optional[str] = typer.Option(None, "--styles", help="Comma-separated prompt styles (fewshot,reasoning)."),
    backends: Optional[str] = typer.Option(
        None, "--backends", help="Comma-separated: recipe, genai-default, llama.cpp, optimum, torch, ipex, engine, sdgen, "
        "or sdgen@COMMIT (this repository's sdgen at a commit, on the same model file)."
    ),
    rows: int = typer.Option(256, "--rows", "-n", help="Rows per cell."),
    sizes: Optional[str] = typer.Option(
        None, "--sizes", help="Comma-separated run sizes, e.g. 64,256,1024: every cell at each size (instead of --rows)."
    ),
    baseline_rows: Optional[int] = typer.Option(
        None, "--baseline-rows", help="Rows for the slow baselines (default: recipe 16, torch/ipex 64)."
    ),
    threads: Optional[int] = typer.Option(None, "--threads", help="Threads for every backend (default: all cores)."),
    spec: Optional[Path] = typer.Option(None, "--spec", help="Workload spec (default: the example spec)."),
    engine: list[str] = typer.Option([], "--engine", help="Engine option for every cell, KEY=VALUE (repeatable)."),
    history: Path = typer.Option(Path("sdgen-bench.jsonl"), "--history", help="JSONL history to append to / plot."),
    real: Optional[Path] = typer.Option(
        None, "--real", help="Real labelled rows (text, label columns): each cell's agreement and useful rows/s."
    ),
    plot: bool = typer.Option(False, "--plot", help="Draw the history as a PNG instead of running."),
    plot_out: Optional[Path] = typer.Option(None, "--plot-out", help="PNG path (default: the history's, .png)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per cell instead of the table."),
) -> None:
    """Benchmark backends side by side on the same rows: distinct rows/s, tok/s, TTFR, RSS, share of peak."""
    from sdgen import bench
    from sdgen.bench.history import plot_history
    from sdgen.bench.report import bench_table, cell_line, roofline_line

    if plot:
        path = plot_history(history, plot_out or history.with_suffix(".png"))
        out.print(str(path), highlight=False)
        return
    config = bench.BenchConfig(
        spec=spec or bench.EXAMPLE_SPEC, models=_csv(models) or list(BUILTINS),
        styles=_csv(styles) or list(bench.STYLES), backends=_csv(backends) or list(bench.DEFAULT_BACKENDS), rows=rows, baseline_rows=baseline_rows, history=history,
        sizes=_sizes(sizes),
        engine=_engine_overrides(engine), real=real, **({"threads": threads} if threads else {}),
    )  # fmt: skip
    total = len(config.cells())
    done = 0
    session = bench.Bench(config)
    with err.status("measuring the matmul peak") as status:

        def on_event(kind: str, data: dict) -> None:
            nonlocal done
            if kind == "start":
                status.update(f"cell {done + 1}/{total}: {data['model']} · {data['style']} · {data['backend']} "
                              f"({data['rows']} rows)")  # fmt: skip
            elif kind == "done":
                done += 1
                err.print(cell_line(data), highlight=False)

        cells = session.run(on_event)
    if as_json:
        for cell in cells:
            out.print(json.dumps(cell), highlight=False, soft_wrap=True)
    else:  # the table is wide: let it be when piped into a file
        (out if out.is_terminal else Console(width=220)).print(bench_table(cells))
    err.print(roofline_line(session.common.get("matmul_peaks", {}), session.common["machine"]), highlight=False)
    for text, met in bench.check_targets(cells):
        err.print(f"[{'green' if met else 'yellow'}]{'met' if met else 'missed'}[/]: {text}", highlight=False)
    if config.history:
        err.print(f"history: {config.history} (`sdgen bench --plot --history {config.history}` draws it)")
    failed = [c for c in cells if "error" in c]
    if failed:
        raise bench.BenchError(f"{len(failed)} of {len(cells)} cells failed (see the table)")


def _sizes(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in _csv(text)]
    except ValueError:
        from sdgen.bench import BenchError

        raise BenchError(f"--sizes takes row counts separated by commas, as in 64,256,1024 (got {text!r})") from None


def _bare_ray_flag(argv: list[str]) -> list[str]:
    """`--ray` with no address before another option, the spec file or the end: `--ray=` (click would
    otherwise take the next word as the address)."""
    out = list(argv)
    for i, arg in enumerate(out):
        following = out[i + 1] if i + 1 < len(out) else None
        if arg == "--ray" and (following is None or following.startswith("-")
                               or Path(following).suffix.lower() in (".yaml", ".yml", ".toml")):  # fmt: skip
            out[i] = "--ray="
    return out


def main() -> None:
    dump_stacks_on_sigusr1()
    try:
        app(args=_bare_ray_flag(sys.argv[1:]))
    except Interrupted as exc:
        err.print(f"[yellow]{escape(str(exc))}[/yellow]", highlight=False, soft_wrap=True)
        err.print(f"resume with: {escape(_resume_command(sys.argv))}", highlight=False, soft_wrap=True)
        raise SystemExit(130) from None
    except SdgenError as exc:  # messages hold [brackets] (extras, ranges): print them as text, not markup
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from None


def _resume_command(argv: list[str]) -> str:
    """The command line that was run, with --resume instead of --overwrite."""
    args = [a for a in argv[1:] if a not in ("--overwrite", "--resume")]
    return shlex.join(["sdgen", *args, "--resume"])


if __name__ == "__main__":
    main()
