"""What tune writes: the tuned spec (an ordinary YAML spec, each change commented) and its log (``.tune.md``)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from sdgen.spec import BUILTIN_STYLES
from sdgen.tuning.proposals import REAL_JUDGE, Change
from sdgen.tuning.score import MODEL_OVER_PANEL, RANDOM_DROPS

if TYPE_CHECKING:
    from sdgen.realdata import SeedSet
    from sdgen.tuning.result import Round, TuneResult
    from sdgen.tuning.score import PilotScore


def _relocate(data: dict, spec_path: Path, output: Path) -> dict:
    """Paths relative to the given spec (as a user wrote them) or absolute (as proposals write them), made relative
    to the tuned spec's folder, so the tuned spec works wherever it was written."""
    data = dict(data)
    here, there = spec_path.absolute().parent, output.absolute().parent

    def moved(value: str) -> str:
        path = Path(value).expanduser()
        return os.path.relpath(path if path.is_absolute() else here / path, there)

    if data.get("prompt_style") not in (None, *BUILTIN_STYLES) and not Path(data["prompt_style"]).is_absolute():
        data["prompt_style"] = os.path.relpath(here / data["prompt_style"], there)
    def relocated(source):
        if isinstance(source, dict):
            return {**source, **{key: moved(str(source[key])) for key in ("path", "generated") if source.get(key)}}
        return moved(source) if isinstance(source, str) else source

    for key in ("examples_from", "label_check", "realism_check", "mix_real"):  # the options that name a file
        if key in data:
            data[key] = relocated(data[key])
    if isinstance(data.get("judge"), dict) and "real" in data["judge"]:
        data["judge"] = {**data["judge"], "real": relocated(data["judge"]["real"])}
    return data


def _measured(r: Round) -> str:
    before = [s.value - g for s, g in zip(r.scores, r.gains)]
    again = f"; {r.again_line}" if r.again else ""
    again += f"; kept whatever the score: {r.trusted}" if r.trusted else ""
    if r.random_drops:
        again += f"; best random drop of as many rows {' / '.join(f'{d:.3f}' for d in r.random_drops)}"
    return (f"held-out score {' / '.join(f'{b:.3f} -> {s.value:.3f}' for b, s in zip(before, r.scores))}{again} "
            f"(agreement {' / '.join(f'{s.agreement:.0%}' for s in r.scores)}, "
            f"realism {' / '.join(f'{s.realism:.2f}' for s in r.scores)}, "
            f"F1 {' / '.join(f'{s.f1:.3f}' for s in r.scores)})")  # fmt: skip


def write_tuned_spec(output: Path, data: dict, changes: list[tuple[Round, Change]], spec_path: Path) -> Path:
    """The spec as YAML with a comment above each key a kept change touched: its round and what it measured, above
    the first such key; a later key the same change touched names the one it was described at (the judge and the
    realism check both grow ``balance``: their long comments twice over buried the spec)."""
    text = yaml.safe_dump(_relocate(data, spec_path, output), sort_keys=False, allow_unicode=True, width=110)
    lines = text.splitlines()
    notes: dict[str, list[tuple[Round, Change]]] = {}
    for r, change in changes:
        for key in dict.fromkeys(t.split(".")[0] for t in change.touched):
            notes.setdefault(key, []).append((r, change))
    described: dict[int, str] = {}  # round number -> the key its full comment sits above

    def comments(key: str) -> list[str]:
        said = []
        for r, change in notes.pop(key):
            if r.number in described:
                said.append(f"# tune round {r.number} ({r.name}): with `{described[r.number]}` above")
            else:
                described[r.number] = key
                said.append(f"# tune round {r.number} ({r.name}): {change.summary}; {_measured(r)}")
        return said

    out: list[str] = [f"# Tuned by `sdgen tune` from {spec_path.name}: {len(changes)} change(s) kept; see "
                      f"{output.stem}.tune.md for every round.", ""]  # fmt: skip
    for line in lines:
        match = re.match(r"^([A-Za-z_]+):", line)
        if match and match.group(1) in notes:
            out.extend(comments(match.group(1)))
        out.append(line)
    for key in list(notes):  # a touched key the dump left out (a default): say so at the end
        out.extend(comments(key))
    output.write_text("\n".join(out) + "\n", encoding="utf-8")
    return output


def _cells(s: PilotScore) -> str:
    gain = f" ({s.hybrid_f1 / s.real_f1:.2f}x)" if s.real_f1 else ""
    return (f"{s.agreement:.1%} | {s.realism:.3f} | {s.f1:.3f} | {s.hybrid_f1:.3f}{gain} | {s.value:.3f} | "
            f"{s.rows_per_s:.2f}")


# what a user can do where the seed cannot teach the labels (docs/quality.md, "What the hand-tuned politeness spec's
# lead is made of": the descriptions alone carried 25 of its 31 points; neither the seed nor the model supplied them)
DESCRIBE_HINT = ("what you know marks each label is worth writing into its description (politeness: descriptions "
                 "naming its strategies lifted agreement from 47% to 72%)")


def judge_warning(result: TuneResult) -> str:
    """One line for a seed too small to judge changes by, or ""."""
    if not result.weak_judge:
        return ""
    folds = (f"the held-out folds barely read the labels (their classifiers label the other fold's real rows right "
             f"{' / '.join(f'{a:.0%}' for a in result.judge_accuracy)}, chance {result.chance:.0%})")  # fmt: skip
    if result.label_reader == "model":
        return (f"{folds}, so the spec's model, which reads them "
                f"{' / '.join(f'{a:.0%}' for a in result.model_accuracy)}, read the pilots' label fit instead; "
                + DESCRIBE_HINT)
    return (f"{folds}: a round's keep-or-drop is close to a coin flip; more real rows per label may sharpen it, "
            "unless the labels are not told apart by their words; " + DESCRIBE_HINT)  # fmt: skip


def _judge_line(result: TuneResult) -> str:
    panel = " and ".join(f"{a:.1%}" for a in result.judge_accuracy)
    model = " and ".join(f"{a:.1%}" for a in result.model_accuracy)
    if model:
        model = f"the spec's model, shown one fold's real rows as examples (what `not:` lines are read by), {model}"
        least, right, overall = result.model_sure
        model += (f"; {right:.0%} of those it read at {least:g} or more, {overall:.0%} of all, so the real judge "
                  f"drops rows it reads less surely" if least else
                  "; those it read more surely were not read right more often, so the real judge keeps rows it "
                  "reads unsurely")  # fmt: skip
    elif result.model_judges:
        model = "the spec's model's reading of real rows was not measured: no change tried rested on it"
    else:
        model = "the spec's model does not judge: its backend gives no log-probabilities"
    line = (f"How well a fold can judge: the panel fitted on one fold labels the other fold's real rows right {panel} "
            f"of the time (fold 1 on fold 0, then fold 0 on fold 1; guessing one label: {result.chance:.1%}); "
            f"{model}.")  # fmt: skip
    warning = judge_warning(result)
    return line + (f" **Weak judge:** {warning}." if warning else "")


SELF_READ = ("The tuned pilots' agreement is the spec's model's reading of them, and the real judge that screened "
             "them is the same model (shown the other fold's rows): it overstates what a classifier of real rows "
             "will agree. On politeness the model read 83% of the tuned pilots' rows as their label; `sdgen eval` "
             "of 300 rows of the tuned spec against 10,842 real rows agreed 61% (docs/tune.md).")


# an evenly drawn seed hides how common each label is, which decides much of a classifier's F1 (docs/quality.md)
EVEN_SEED = ("The seed holds as many rows of every label, so it cannot tell how common each label is in your data. "
             "Where they are far from even, give `balance: {shares: ...}`: `sdgen eval DATASET --real REAL` scores "
             "generated rows at your real file's shares and gives that line where they help (movie reviews' tuned "
             "rows: 0.77x -> 0.92x the F1 of as many real rows; docs/quality.md#evaluation-against-real-data).")


def _even_seed(seed_set: SeedSet, data: dict) -> bool:
    """The seed's labels are equally common and the spec names no shares: say what the seed cannot tell."""
    balance = data.get("balance")
    return len(set(seed_set.per_label().values())) == 1 and not (isinstance(balance, dict) and balance.get("shares"))


def _self_read(result: TuneResult) -> bool:
    """The model read the pilots' label fit and a kept change screens rows by its reading (the real judge)."""
    return result.label_reader == "model" and any(c.name == REAL_JUDGE for _, c in result.changes)


def write_log(result: TuneResult, spec_path: Path, real: Path, seed_set: SeedSet, tuned: dict) -> Path:
    """``<stem>.tune.md``: one row per round, then the pilots before and after (``tuned``: the tuned spec's data)."""
    per_label = ", ".join(f"{label} {n}" for label, n in seed_set.per_label().items())
    lines = [
        f"# sdgen tune: {spec_path.name}", "",
        f"Seed `{real.name}` ({len(seed_set.rows)} rows: {per_label}), split into two folds. Each round pilots its "
        "change twice: derived from fold 0 and scored on fold 1, and the other way round. A pilot's score is the "
        "mean of its agreement (the share of each label's rows that three classifiers trained on the held-out fold, "
        "on word pairs, characters and single words, give that label, averaged over labels and classifiers) and its "
        "realism (2 x (1 - AUC) of a classifier telling the held-out fold's real rows from the pilot's, "
        "cross-validated: 1 when it cannot tell them apart). TSTR macro-F1 (train on the pilot, test on the held-out "
        "fold) and hybrid macro-F1 (the deriving fold's real rows plus the pilot) are "
        "shown, not compared: on a fold's few "
        "rows they are mostly noise. A change is kept when both of its pilots beat the best spec's pilots in the same "
        "direction; where one gained and the other did not, that direction is piloted again on another seed (the "
        "change and the best spec) and counts the mean of its two gains. A screen (a change that drops rows) is "
        "scored on the rows it keeps of the best spec's pilots, and its gain is over the better of those pilots and "
        f"{RANDOM_DROPS} random drops of as many rows of each label. The real judge, the model's own reading, is "
        "kept without the panel's vote where the model reads the held-out real rows clearly better than the panel "
        f"(by {MODEL_OVER_PANEL * 100:.0f} points in both directions).", "",
        _judge_line(result), "",
        f"{result.pilot_rows} pilot rows in {result.seconds / 60:.1f} minutes"
        + (f" of a {result.budget_minutes:g}-minute budget" if result.budget_minutes is not None else "")
        + " (model load included; "
        f"{result.rederive_seconds:.0f} s of it deriving the kept changes again from the whole seed, "
        f"{result.held_back_seconds:.0f} s held back for that)."
        + (f" Left untried: {result.stopped}." if result.stopped else "")
        + (f" Nothing to change for: {', '.join(result.skipped)}." if result.skipped else "")
        + "".join(f" Held back: {why}." for why in result.withheld), "",
        "| round | change | kept | gain (fold 1 / fold 0) | score (fold 1 / fold 0) | agreement | realism | TSTR F1 | "
        "hybrid F1 | rows/s | s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in result.rounds:
        gains = r.gains_line if r.gains else "-"
        kept = "baseline" if r.number == 0 else (f"yes: {r.trusted}" if r.trusted else "yes" if r.kept else "no")
        agreement, realism, f1, hybrid, rows_s = (sum(getattr(s, f) for s in r.scores) / len(r.scores)
                                                  for f in ("agreement", "realism", "f1", "hybrid_f1", "rows_per_s"))
        spread = " / ".join(f"{s.value:.3f}" for s in r.scores)
        lines.append(f"| {r.number} | {r.name}: {r.summary} | {kept} | {gains} | {spread} | {agreement:.1%} | "
                     f"{realism:.3f} | {f1:.3f} | {hybrid:.3f} | {rows_s:.2f} | {r.seconds:.0f} |")  # fmt: skip
    lines += ["", "Before and after, per pilot (scored on fold 1, then fold 0):", "",
              "| spec | agreement | realism | TSTR F1 | hybrid F1 (x the fold alone) | score | rows/s |",
              "|---|---|---|---|---|---|---|"]
    for what, scores in (("as given", result.before), ("tuned", result.after)):
        lines += [f"| {what} | {_cells(s)} |" for s in scores]
    if _self_read(result):
        lines += ["", SELF_READ]
    lines += ["", "Kept changes, derived again from the whole seed for the tuned spec:", ""]
    lines += [f"- round {r.number}: {c.summary}" for r, c in result.changes] or ["- none: the spec stays as given"]
    if _even_seed(seed_set, tuned):
        lines += ["", EVEN_SEED]
    result.log_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return result.log_path
