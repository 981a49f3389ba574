"""Task spec: a YAML/TOML file (or dict) validated into a `Spec`.

Errors name the file and the field path, e.g. ``spec.yaml: categories.stores: must list at least one type``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sdgen.errors import SpecError
from sdgen.formats import FORMATS, suffixes
from sdgen.text import AvoidedPhrases

# The default: the fastest built-in whose rows train a classifier that works on real text (docs/models.md,
# "Which model"): Qwen2.5-Coder-1.5B reached its real-trained reference's F1 on politeness (ratio 1.00) and 0.84
# on emotion tweets; SmolLM2-135M, 7x faster, stayed at chance on politeness (0.34 for 3 labels).
DEFAULT_MODEL = "qwen2.5-coder-1.5b-instruct"
BUILTIN_STYLES = ("fewshot", "reasoning")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class GenerationParams(_Strict):
    """Sampling parameters, applied to every request (each row still gets its own rng seed)."""

    max_new_tokens: int = Field(128, ge=1, le=8192, description="Upper bound on generated tokens per row.")
    temperature: float = Field(0.8, ge=0.0, le=5.0, description="0 means greedy decoding.")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    top_k: int = Field(50, ge=0, description="0 disables top-k filtering.")
    min_p: float = Field(
        0.0, ge=0.0, lt=1.0, description="Drop tokens less likely than this share of the likeliest token's probability (0 = off)."
    )
    repetition_penalty: float = Field(1.05, gt=0.0, le=5.0, description="1.0 disables it.")


class EngineOptions(_Strict):
    """OpenVINO continuous-batching engine settings (defaults measured on a 2-core Zen 4; see README)."""

    threads: int | None = Field(None, ge=1, description="Inference threads; default: all cores of this process.")
    max_num_seqs: int | None = Field(
        None, ge=1, description="Sequences decoded together per step; default: where this CPU class's decode "
        "throughput stops rising (sdgen.hardware.SATURATION_SEQS: 32 on AVX2, 128 on AMX). More gains no speed. "
        "The OpenVINO engine runs its first 16 requests alone until one finishes, so the first rows come early "
        "whatever this is.",
    )  # fmt: skip
    max_num_batched_tokens: int = Field(1024, ge=16, description="Token budget per scheduler step.")
    cache_size_gb: float = Field(1.0, gt=0.0, description="KV-cache size in GB.")
    enable_prefix_caching: bool = Field(True, description="Reuse the KV cache of the shared prompt prefix.")
    dynamic_split_fuse: bool = Field(True, description="Mix prefill chunks into decode steps.")
    max_attempts: int = Field(3, ge=1, le=20, description="Tries per row (new seed each) when its output cannot be parsed.")
    static_batch_size: int = Field(16, ge=1, description="Rows per batch for the static-batching backends (torch, ipex).")
    process: bool = Field(
        True,
        description="Run the engine in a worker process (OpenVINO, torch, ipex), restarted every recycle_every "
        "requests: OpenVINO GenAI's pipeline keeps a few MB per 1k requests that only process exit returns.",
    )
    cpu_pinning: bool | None = Field(
        None,
        description="Pin inference threads to cores (OpenVINO); default the plugin's choice. Ray workers turn it "
        "off: two 1-thread engines on one machine were both pinned to core 0.",
    )
    recycle_every: int = Field(
        4096,
        ge=0,
        description="Restart the engine's worker process after this many requests (0 = never); a restart costs one "
        "model load (0.5-3 s). Rows do not change.",
    )
    dtype: Literal["auto", "bf16", "fp32", "int8"] = Field(
        "auto",
        description="Inference precision; auto = bf16 where the CPU has it (OpenVINO: the plugin's hint); "
        "int8 = IPEX weight-only int8.",
    )
    kv_cache_precision: Literal["auto", "bf16", "f16", "f32", "u8", "u4"] = Field(
        "auto",
        description="OpenVINO KV-cache precision; auto = f32 when inference runs in f32 (CPUs without bf16, or "
        "dtype fp32), which keeps a row's text independent of the rows sharing its batch; else the plugin's "
        "choice (u8). A quantized cache is not batch-invariant (docs/resume.md).",
    )

    @property
    def seqs_in_flight(self) -> int:
        """``max_num_seqs``, or this CPU class's saturation point."""
        from sdgen.hardware import saturation_seqs

        return self.max_num_seqs or saturation_seqs()


class RayOptions(_Strict):
    """Spread the plan over a Ray cluster (``ray: true``, an address string, or these fields)."""

    address: str | None = Field(
        None, description="Cluster address (host:port, ray://host:port or auto); none = the cluster this machine "
        "runs, else a new local one.",
    )  # fmt: skip
    workers: int | None = Field(None, ge=1, description="Engine workers in all; default one per NUMA node of each node.")
    threads_per_worker: int | None = Field(
        None, ge=1, description="Threads (and Ray CPUs) per worker; default the worker's share of its node's CPUs."
    )
    ship_limit_mb: int = Field(
        512, ge=0, description="A local model up to this size is shipped to nodes that lack its path (object store)."
    )
    restarts: int = Field(4, ge=0, description="Dead workers replaced per engine run; their rows are never lost.")

    @model_validator(mode="before")
    @classmethod
    def _from_scalar(cls, value: Any) -> Any:
        if value is True:
            return {}
        return {"address": value} if isinstance(value, str) else value


class Example(_Strict):
    """A demonstrated row: shown to the model as a request and its answer (never written to the dataset)."""

    label: str = Field(description="One of the spec's labels.")
    category: str = Field(description="One of the spec's categories.")
    type: str = Field(description="A type of that category.")
    output: str = Field(min_length=1, description="The example text.")
    reasoning: str | None = Field(None, description="Why it has its label (the reasoning style shows it).")


class ModelChoice(_Strict):
    """A model and its share of the rows (a plain string means weight 1)."""

    name: str = Field(min_length=1, description="Built-in model name, OpenVINO IR dir or GGUF path.")
    weight: float = Field(1.0, gt=0.0, description="Relative share of rows for this model.")


class DedupOptions(_Strict):
    """Online deduplication and cross-label conflict detection (``dedup: false`` turns both off)."""

    enabled: bool = Field(True, description="Check each parsed text against the texts kept so far.")
    near: bool = Field(True, description="Also catch near duplicates (MinHash LSH), not only exact ones.")
    threshold: float = Field(0.8, gt=0.0, le=1.0, description="Word-shingle Jaccard similarity that counts as near.")
    shingle_size: int = Field(3, ge=1, le=16, description="Words per shingle.")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations (accuracy vs memory).")
    keep_duplicates: bool = Field(False, description="Write duplicates anyway, flagged in a `duplicate` column.")
    conflicts: Literal["separate", "keep"] = Field(
        "separate",
        description="Texts (near-)equal under different labels: separate = both sides go to <output>.conflicts "
        "instead of the dataset; keep = they stay in the dataset and are listed there too.",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_bool(cls, value: Any) -> Any:
        return {"enabled": value} if isinstance(value, bool) else value


class BalanceOptions(_Strict):
    """How rows are spread over labels (and categories)."""

    mode: Literal["random", "exact"] = Field(
        "random",
        description="random = each row draws its label (the recipe's way); exact = the plan deals exact quotas per "
        "label (or label x category).",
    )
    by: Literal["label", "label_category"] = Field("label", description="Quota cells: per label or label x category.")
    shares: dict[str, float] | None = Field(
        None, description="Label -> its share of the rows (relative weights, every label named): the shares your real "
        "data has, since a classifier learns how common each label is from its training rows. Default: equal.",
    )  # fmt: skip
    replacements: int = Field(
        2, ge=0, le=20,
        description="The run's budget of replacement rows, as a multiple of sample_size: at most replacements x "
        "sample_size extra rows. A lost row (unparseable after its attempts, a duplicate, a conflict, dropped by a "
        "quality step or the judge) is replaced by a row with its label, category and type and a seed of its own, and "
        "a lost replacement again, while the budget lasts: cells that lose more rows draw more; one planned row at "
        "most 12 times in a row, or 2 x replacements where that is more. 0: no replacements.",
    )  # fmt: skip

    @model_validator(mode="before")
    @classmethod
    def _from_str(cls, value: Any) -> Any:
        if isinstance(value, dict) and "extra_budget" in value:
            raise ValueError("extra_budget is now replacements: how many times each planned row may be replaced "
                             "(a whole number; 2 by default)")  # fmt: skip
        return {"mode": value} if isinstance(value, str) else value


class RealExamples(_Strict):
    """Real labelled rows shown as examples: each group of rows sees its own draw, so groups see different ones
    while rows of a group share their prompt prefix (and the engine's prefix cache). Never written to the output;
    shown with their @handles as @user (a real person's handle is not repeated in generated rows)."""

    path: Path = Field(description="CSV, JSONL or Parquet with a text and a label column (relative to the spec).")
    text_col: str = Field("text", description="The text column.")
    label_col: str = Field("label", description="The label column.")
    per_label: int = Field(1, ge=1, le=8, description="Real examples per label in each prompt.")
    group_rows: int = Field(32, ge=1, description="Rows (by plan id) that share one draw of examples.")
    same_label: bool = Field(
        False, description="Show only real rows of the label asked for (per_label of them) instead of per_label of "
        "every label: the model imitates its label's real rows, not the mix (docs/quality.md).",
    )  # fmt: skip
    anchor: bool = Field(
        False, description="Quote one real row of the label asked for in each request, drawn per request, and ask "
        "for new texts in its tone and style on other subjects, instead of showing examples in the shared prompt: "
        "the rest of the prompt stays shared (prefix cache), and the model writes its label the way real rows do "
        "(emotion, plain spec: F1 0.88x -> 1.09x of real rows; docs/quality.md#real-anchors). per_label, group_rows "
        "and same_label do not apply.",
    )  # fmt: skip

    @model_validator(mode="before")
    @classmethod
    def _from_path(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, (str, Path)) else value

    @model_validator(mode="after")
    def _anchor_alone(self) -> RealExamples:
        if self.anchor and self.same_label:
            raise ValueError("anchor: true quotes a real row of the label asked for in each request already; "
                             "leave same_label out")  # fmt: skip
        return self


class _RealRows(_Strict):
    """A file of real labelled rows: true (the examples_from file), a path, or these fields."""

    path: Path | None = Field(None, description="CSV, JSONL or Parquet with a text and a label column (relative to "
                              "the spec); none: the examples_from file.")  # fmt: skip
    text_col: str | None = Field(None, description="The text column (default: examples_from's, else text).")
    label_col: str | None = Field(None, description="The label column (default: examples_from's, else label).")

    @model_validator(mode="before")
    @classmethod
    def _from_scalar(cls, value: Any) -> Any:
        if value is True:
            return {}
        return {"path": value} if isinstance(value, (str, Path)) else value


class MixReal(_RealRows):
    """Real labelled rows written into the dataset beside the generated ones, with a `source` column (real /
    generated): ``mix_real: true`` (the examples_from file), a path, or these fields. They are reserved in the
    dedup index, so no generated row copies one."""


class JudgeReal(_RealRows):
    """Real labelled rows the judge reads as its examples: true (the examples_from file), a path, or these fields."""


class JudgeOptions(_Strict):
    """Every parsed row's label is checked online: a model picks one of the labels for the text (its output
    constrained to them); a row it gives another label is rejected and replaced."""

    enabled: bool = Field(True, description="Judge every parsed row (`judge: false` turns it off).")
    model: str | None = Field(
        None, description="None: the generating engine judges its own rows (in the same batches). A model name or "
        "path is not supported yet in the online judge.",
    )  # fmt: skip
    action: Literal["drop", "flag"] = Field(
        "drop", description="drop = rejected rows go to <output>.rejected and are replaced (see balance.replacements); "
        "flag = every row is kept, with `judged_label`, `judge_confidence` and `agrees` columns.",
    )  # fmt: skip
    min_confidence: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="Also reject a row the judge gives its own label with less than this probability (the judge "
        "model's probability of its answer). 0: its answer alone decides. Stricter keeps rows whose label is "
        "plainer, at more replacements per row (docs/quality.md).",
    )  # fmt: skip
    real: JudgeReal | None = Field(
        None, description="Real labelled rows the judge reads as its examples, instead of the spec's descriptions "
        "and examples: true (the examples_from file), a path, or {path, text_col, label_col}. The model reads a "
        "task's labels from a few dozen real rows far better than from one-line descriptions (docs/tune.md).",
    )  # fmt: skip
    prior: dict[str, float] | None = Field(
        None, description="Label -> the judge's mean probability of that label over generated rows like these (its "
        "lean). Given, the judge scores every label of a row and picks the likeliest relative to this (batch "
        "calibration): a few-shot judge that leans to one label stops starving the others, and min_confidence reads "
        "the calibrated probability. `sdgen tune` measures it on its pilot rows (docs/quality.md).",
    )  # fmt: skip

    @model_validator(mode="before")
    @classmethod
    def _from_scalar(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return {"enabled": value}
        return {"model": value} if isinstance(value, str) else value

    @field_validator("real", mode="before")
    @classmethod
    def _real_off(cls, value: Any) -> Any:
        return None if value is False else value


class LabelCheckOptions(_RealRows):
    """A classifier trained on real labelled rows reads every generated row before it is kept; a row it reads as
    another label is dropped and replaced: ``label_check: true`` (the examples_from file), a path, or these fields.
    The real rows are never written to the output (mix_real does that)."""

    min_ratio: float = Field(0.5, gt=0.0, le=1.0, description="Keep a row when the classifier gives its label at "
                             "least this share of the probability of the label it finds likeliest. 1: only rows it "
                             "reads as their own label; lower drops only rows it reads clearly as another.")  # fmt: skip


class RealismCheckOptions(_RealRows):
    """A classifier trained to tell real labelled rows from rows this spec generated before reads every new row; a
    row that reads more generated than most of its label's earlier rows is dropped and replaced. ``sdgen tune``
    writes it with its pilot rows as ``generated``. The real rows are never written to the output."""

    generated: Path = Field(description="CSV, JSONL or Parquet of rows this spec generated (text and label columns; "
                            "relative to the spec): a tune's pilot rows or an earlier run's output.")  # fmt: skip
    keep: float = Field(0.6, gt=0.0, le=1.0, description="Keep a row when it reads no more generated than this share "
                        "of its label's earlier rows did (1: drop only rows stranger than any of them).")  # fmt: skip

    @model_validator(mode="before")
    @classmethod
    def _from_scalar(cls, value: Any) -> Any:
        if value is True or isinstance(value, (str, Path)):
            raise ValueError("realism_check needs the rows this spec generated before: {generated: FILE} (and path: "
                             "REAL, or the examples_from file)")  # fmt: skip
        return value


# Measured on the 1.5B (politeness, 300 rows, 2-core AVX2): k=4 gave 1.6x the rows/s of k=1 at the same F1 and agreement.
DEFAULT_ROWS_PER_REQUEST = 4


class Spec(_Strict):
    """A generation task: what to generate, how much, with which models, and where it goes."""

    name: str = Field("dataset", min_length=1, description="Dataset name; the default output is <name>.csv.")
    task: str = Field(min_length=1, description="One line on the use case; it goes into the prompt.")
    labels: dict[str, str] = Field(description="Label -> description, or -> {description, not, avoid} (what the "
                                   "label is not; words its texts never contain); a plain list is accepted. "
                                   "Descriptions go into every prompt.")
    label_contrasts: dict[str, str] = Field(default_factory=dict, description="Label -> what it is not; set through "
                                            "labels.NAME.not.")
    label_avoid: dict[str, list[str]] = Field(
        default_factory=dict, description="Label -> words or phrases its texts never contain (case-insensitive, whole "
        "words); a generated row that holds one is dropped and replaced. Set through labels.NAME.avoid.",
    )  # fmt: skip
    categories: dict[str, list[str]] = Field(description="Category -> list of types.")
    examples: list[Example] = Field(default_factory=list, description="Few-shot examples (see examples[]).")
    examples_from: RealExamples | None = Field(None, description="Real labelled rows as rotating examples: a path "
                                               "or the long form (see examples_from).")
    mix_real: MixReal | None = Field(None, description="Write real labelled rows into the dataset too, marked in "
                                     "a `source` column: true (the examples_from file), a path, or the long form "
                                     "(see mix_real).")  # fmt: skip
    label_check: LabelCheckOptions | None = Field(None, description="Drop generated rows that a classifier of "
                                                  "real labelled rows reads as another label: true (the examples_from "
                                                  "file), a path, or the long form (see label_check).")  # fmt: skip
    realism_check: RealismCheckOptions | None = Field(None, description="Drop generated rows that a classifier of "
                                                      "real against earlier generated rows reads as generated (see "
                                                      "realism_check).")  # fmt: skip
    contrast: bool = Field(True, description="Say in the prompt what each label is not: labels.NAME.not in the label "
                           "list, the other labels' names in the request for a label without a description, and that "
                           "a text must fit its label and none of the others.")
    prompt_style: str = Field("fewshot", description="fewshot | reasoning | path to a Jinja template.")
    rows_per_request: int | None = Field(
        None, ge=1, le=32,
        description="Texts asked for in one request (a numbered list), for rows that share label, category and type: "
        "the request and its prefill are shared by that many rows. Default: 4 with the fewshot style (chat models; "
        "measured: 1.6x the rows/s at the same quality), 1 otherwise; more than 1 needs the fewshot style. The first "
        "64 plan positions are asked one text per request and the next 64 two (first rows early; see docs/resume.md).",
    )  # fmt: skip
    system_prompt: str | None = Field(None, description="Replaces sdgen's system text (a model without a system "
                                      "role gets it in its first user turn).")
    sample_size: int = Field(gt=0, description="Rows to generate.")
    batch_size: int = Field(32, gt=0, description="Rows per flush to the output file.")
    seed: int = Field(0, ge=0, description="Run seed; the whole plan derives from it.")
    models: list[ModelChoice] = Field(
        default_factory=lambda: [ModelChoice(name=DEFAULT_MODEL)], min_length=1,
        description="Built-in names, GGUF files or OpenVINO IR dirs, or {name, weight} to mix models (see models[]).",
    )
    generation: GenerationParams = Field(default_factory=GenerationParams, description="Sampling (see generation).")
    engine: EngineOptions = Field(default_factory=EngineOptions, description="Engine settings (see engine).")
    dedup: DedupOptions = Field(default_factory=DedupOptions, description="Dedup and conflicts, or false (see dedup).")
    balance: BalanceOptions = Field(default_factory=BalanceOptions, description="random, exact, or the long form.")
    judge: JudgeOptions = Field(default_factory=lambda: JudgeOptions(enabled=False), description="Check every "
                                "row's label online: true, false, or the long form (see judge).")
    ray: RayOptions | None = Field(None, description="Run the engines on a Ray cluster: true, an address, or the "
                                   "long form (see ray, and docs/ray.md).")
    output: Path | None = Field(None, description=f"Output path ({suffixes()}); default <name>.csv.")
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True, description="Where relative paths resolve.")

    @model_validator(mode="before")
    @classmethod
    def _label_forms(cls, data: Any) -> Any:
        """``labels: {NAME: {description, not, avoid}}`` -> descriptions in ``labels``, the "not" texts in
        ``label_contrasts``, the avoided phrases in ``label_avoid``."""
        if not isinstance(data, dict):
            return data
        if "verify" in data:
            raise ValueError("verify: the end-of-run verification is now the online judge: use `judge: true` "
                             "(the generating model judges its rows; docs/quality.md)")  # fmt: skip
        labels = data.get("labels")
        if isinstance(labels, dict) and any(isinstance(v, dict) for v in labels.values()):
            contrasts = dict(data.get("label_contrasts") or {})
            avoid = dict(data.get("label_avoid") or {})
            plain = {}
            for name, value in labels.items():
                if isinstance(value, dict):
                    unknown = set(value) - {"description", "not", "avoid"}
                    if unknown:
                        raise ValueError(f"labels.{name}: unknown field {sorted(unknown)[0]!r} (use description, "
                                         "not and avoid)")  # fmt: skip
                    plain[name] = value.get("description", "")
                    if value.get("not"):
                        contrasts[name] = value["not"]
                    if value.get("avoid"):
                        phrases = value["avoid"]
                        phrases = [phrases] if isinstance(phrases, str) else phrases
                        if not isinstance(phrases, list) or not all(isinstance(p, str) for p in phrases):
                            raise ValueError(f"labels.{name}.avoid: give a phrase or a list of phrases (got {phrases!r})")
                        avoid[name] = phrases
                else:
                    plain[name] = value
            data = {**data, "labels": plain, "label_contrasts": contrasts, "label_avoid": avoid}
        return data

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_from_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            if len(set(map(str, value))) != len(value):
                dupes = sorted({str(v) for v in value if list(map(str, value)).count(str(v)) > 1})
                raise ValueError(f"duplicate labels: {', '.join(dupes)}")
            return {str(v): "" for v in value}
        return value

    @field_validator("labels")
    @classmethod
    def _labels_valid(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("must name at least one label")
        for label in value:
            if not label.strip():
                raise ValueError("a label is empty")
        stripped = [label.strip().casefold() for label in value]
        if len(set(stripped)) != len(stripped):
            raise ValueError("labels differ only in case or spaces")
        return {label: (desc or "").strip() for label, desc in value.items()}

    @field_validator("label_avoid")
    @classmethod
    def _avoid_valid(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for label, phrases in value.items():
            if any(not p.strip() for p in phrases):
                raise ValueError(f"labels.{label}.avoid: has an empty phrase")
        return {label: [" ".join(p.split()) for p in phrases] for label, phrases in value.items()}

    @field_validator("categories")
    @classmethod
    def _categories_valid(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        if not value:
            raise ValueError("must name at least one category")
        for category, types in value.items():
            if not category.strip():
                raise ValueError("a category name is empty")
            if not types:
                raise ValueError(f"category {category!r} must list at least one type")
            if any(not t.strip() for t in types):
                raise ValueError(f"category {category!r} has an empty type")
            if len(set(types)) != len(types):
                raise ValueError(f"category {category!r} lists a type twice")
        return value

    @field_validator("mix_real", "label_check", "realism_check", mode="before")
    @classmethod
    def _real_rows_off(cls, value: Any) -> Any:
        return None if value is False else value

    @field_validator("ray", mode="before")
    @classmethod
    def _ray_off(cls, value: Any) -> Any:
        return None if value is False else value

    @field_validator("models", mode="before")
    @classmethod
    def _models_from_strings(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Spec:
        for field, names in (("label_contrasts", self.label_contrasts), ("label_avoid", self.label_avoid)):
            for name in names:
                if name not in self.labels:
                    raise ValueError(f"{field}: {name!r} is not one of the labels")
        avoided = self.avoided
        for i, ex in enumerate(self.examples):
            where = f"examples.{i}"
            if ex.label not in self.labels:
                raise ValueError(f"{where}: label {ex.label!r} is not one of the labels ({', '.join(self.labels)})")
            if ex.category not in self.categories:
                raise ValueError(f"{where}: category {ex.category!r} is not one of the categories")
            if ex.type not in self.categories[ex.category]:
                raise ValueError(f"{where}: type {ex.type!r} is not a type of category {ex.category!r}")
            phrase = avoided.found(ex.output, ex.label)
            if phrase is not None:
                raise ValueError(f"{where}: its text holds {phrase!r}, which labels.{ex.label}.avoid rules out "
                                 "(a row like it would be dropped)")  # fmt: skip
        if self.mix_real is not None and self.mix_real.path is None and self.examples_from is None:
            raise ValueError("mix_real: true takes its rows from examples_from, which the spec lacks; give mix_real "
                             "a path (mix_real: real.csv)")  # fmt: skip
        if self.label_check is not None and self.label_check.path is None and self.examples_from is None:
            raise ValueError("label_check: true takes its rows from examples_from, which the spec lacks; give "
                             "label_check a path (label_check: real.csv)")  # fmt: skip
        if self.realism_check is not None and self.realism_check.path is None and self.examples_from is None:
            raise ValueError("realism_check takes its real rows from examples_from, which the spec lacks; give "
                             "realism_check a path (realism_check: {path: real.csv, generated: ...})")  # fmt: skip
        if self.judge.real is not None and self.judge.real.path is None and self.examples_from is None:
            raise ValueError("judge.real: true takes its rows from examples_from, which the spec lacks; give "
                             "judge.real a path (judge: {real: real.csv})")  # fmt: skip
        prior = self.judge.prior
        if prior is not None and (set(prior) != set(self.labels) or min(prior.values()) <= 0):
            raise ValueError(f"judge.prior: give every label ({', '.join(self.labels)}) a probability above 0, and "
                             f"no other key; got {', '.join(f'{k}: {v}' for k, v in prior.items()) or 'nothing'}")  # fmt: skip
        if self.prompt_style not in BUILTIN_STYLES:
            path = self.template_path
            if path is None or not path.is_file():
                raise ValueError(
                    f"prompt_style: {self.prompt_style!r} is neither 'fewshot', 'reasoning' "
                    f"nor an existing Jinja template file"
                )
        if (self.rows_per_request or 1) > 1 and (self.prompt_style != "fewshot"):
            raise ValueError(f"rows_per_request: {self.rows_per_request} needs prompt_style fewshot (got "
                             f"{self.prompt_style!r}); use 1 with other styles")  # fmt: skip
        shares = self.balance.shares
        if shares is not None:
            if set(shares) != set(self.labels):
                missing, unknown = sorted(set(self.labels) - set(shares)), sorted(set(shares) - set(self.labels))
                raise ValueError("balance.shares must name every label and only labels: "
                                 + "; ".join(f"{what} {', '.join(names)}" for what, names in
                                             (("missing", missing), ("not a label:", unknown)) if names))  # fmt: skip
            if any(not v > 0 for v in shares.values()):
                raise ValueError(f"balance.shares must all be above 0, got {shares}")
        if self.balance.mode == "exact" and self.sample_size < self.cell_count:
            raise ValueError(
                f"balance: exact needs sample_size >= {self.cell_count} (one row per {self.balance.by.replace('_', ' x ')} "
                f"cell), got {self.sample_size}"
            )
        if self.output_path.suffix.lower() not in FORMATS:
            raise ValueError(f"output: {str(self.output_path)!r} has an unsupported extension; use one of {suffixes()}")
        return self

    @property
    def avoided(self) -> AvoidedPhrases:
        """The phrases each label's texts must not contain, ready to match."""
        return AvoidedPhrases(self.label_avoid)

    @property
    def real_examples_path(self) -> Path | None:
        if self.examples_from is None:
            return None
        path = self.examples_from.path.expanduser()
        return path if path.is_absolute() else self.base_dir / path

    @property
    def mixed_real(self) -> tuple[Path, str, str] | None:
        """(path, text column, label column) of the real rows ``mix_real`` writes into the dataset, or None."""
        return self._real_source(self.mix_real)

    @property
    def label_check_source(self) -> tuple[Path, str, str] | None:
        """(path, text column, label column) of the real rows ``label_check`` learns from, or None."""
        return self._real_source(self.label_check)

    @property
    def realism_check_source(self) -> tuple[Path, str, str] | None:
        """(path, text column, label column) of the real rows ``realism_check`` tells generated rows from, or None."""
        return self._real_source(self.realism_check)

    @property
    def realism_check_generated(self) -> Path:
        """The file of earlier generated rows ``realism_check`` learns from (relative to the spec)."""
        path = self.realism_check.generated.expanduser()
        return path if path.is_absolute() else self.base_dir / path

    @property
    def judge_real_source(self) -> tuple[Path, str, str] | None:
        """(path, text column, label column) of the real rows the judge is shown as examples, or None."""
        return self._real_source(self.judge.real) if self.judge.enabled else None

    def _real_source(self, option: _RealRows | None) -> tuple[Path, str, str] | None:
        """A real-rows option's file and columns; without a path, the examples_from file and its columns."""
        source = self.examples_from
        if option is None:
            return None
        if option.path is None:
            return self.real_examples_path, option.text_col or source.text_col, option.label_col or source.label_col
        path = option.path.expanduser()
        return (path if path.is_absolute() else self.base_dir / path), option.text_col or "text", option.label_col or "label"

    @property
    def template_path(self) -> Path | None:
        if self.prompt_style in BUILTIN_STYLES:
            return None
        path = Path(self.prompt_style).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    @property
    def output_path(self) -> Path:
        path = self.output if self.output is not None else Path(f"{self.name}.csv")
        path = path.expanduser()
        return path if path.is_absolute() else self.base_dir / path

    @property
    def cell_count(self) -> int:
        return len(self.labels) * (len(self.categories) if self.balance.by == "label_category" else 1)

    @property
    def texts_per_request(self) -> int:
        """``rows_per_request``, or its default for the prompt style."""
        if self.rows_per_request is not None:
            return self.rows_per_request
        return DEFAULT_ROWS_PER_REQUEST if self.prompt_style == "fewshot" else 1

    @property
    def wants_reasoning(self) -> bool:
        return self.prompt_style == "reasoning"

    @property
    def judge_flags(self) -> bool:
        """Rows carry the judge's verdict (`judged_label`, `judge_confidence`, `agrees`) instead of being dropped when it disagrees."""
        return self.judge.enabled and self.judge.action == "flag"


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that rejects duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise SpecError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_spec_file(path: Path) -> dict[str, Any]:
    """Parse a YAML or TOML spec file into a plain dict, with errors that name the file."""
    if not path.is_file():
        raise SpecError(f"{path}: spec file not found")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        else:
            data = yaml.load(text, Loader=_UniqueKeyLoader)
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SpecError(f"{path}: malformed YAML: {where}{getattr(exc, 'problem', exc)}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: malformed TOML: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a spec must be a mapping of fields, got {type(data).__name__}")
    return data


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line per problem, each naming the field path: ``source: labels.0: ...``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{loc}: {msg}" if loc else msg)
    return f"{source}: " + "; ".join(parts)


def build_spec(data: dict[str, Any], *, source: str = "spec", base_dir: Path | None = None) -> Spec:
    """Validate a dict into a Spec; relative paths resolve against ``base_dir``."""
    data = dict(data)
    if base_dir is not None:
        data["base_dir"] = base_dir
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc, source)) from None


def load_spec(path: str | Path, **overrides: Any) -> Spec:
    """Read and validate a spec file; ``overrides`` replace fields (``rows``, ``model``, ``threads`` are shortcuts)."""
    path = Path(path)
    data = merge_overrides(read_spec_file(path), overrides)
    return build_spec(data, source=str(path), base_dir=path.absolute().parent)  # a symlinked spec resolves where it is linked


def merge_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Apply overrides to raw spec data, mapping CLI shortcuts onto fields; None means "not given"."""
    data = dict(data)
    changes = {k: v for k, v in overrides.items() if v is not None}
    if "rows" in changes:
        changes["sample_size"] = changes.pop("rows")
    if "model" in changes:
        changes["models"] = [changes.pop("model")]
    if "keep_duplicates" in changes:
        dedup = data.get("dedup")
        dedup = dedup if isinstance(dedup, dict) else ({"enabled": dedup} if isinstance(dedup, bool) else {})
        data["dedup"] = {**dedup, "keep_duplicates": changes.pop("keep_duplicates")}
    if "mix_real" in changes and isinstance(changes["mix_real"], (str, Path)):  # a path given by the caller
        changes["mix_real"] = str(Path(changes["mix_real"]).expanduser().resolve())
    if "threads" in changes:
        engine = data.get("engine")
        data["engine"] = {**(engine if isinstance(engine, dict) else {}), "threads": changes.pop("threads")}
    if "ray" in changes:  # "" = on Ray with the spec's settings; else the cluster address
        address, current = changes.pop("ray"), data.get("ray")
        current = current if isinstance(current, dict) else {"address": current} if isinstance(current, str) else {}
        data["ray"] = {**current, **({"address": address} if address else {})}
    if "output" in changes:  # given by the caller, so relative to their working dir, not the spec's
        changes["output"] = str(Path(changes["output"]).expanduser().resolve())
    data.update(changes)
    return data


def apply_overrides(spec: Spec, **overrides: Any) -> Spec:
    """Return a new validated Spec with fields replaced."""
    if all(v is None for v in overrides.values()):
        return spec
    data = merge_overrides(spec.model_dump(exclude={"base_dir"}, mode="json"), overrides)
    return build_spec(data, source="overrides", base_dir=spec.base_dir)
