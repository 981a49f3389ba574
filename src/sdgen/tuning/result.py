"""What a tune run measured: its rounds, and the changes it kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sdgen.tuning.proposals import Change
from sdgen.tuning.score import PilotScore, barely_reads

DIRECTIONS = ((0, 1), (1, 0))  # (fold the change is derived from, fold it is scored on)


@dataclass
class Round:
    number: int
    name: str  # "baseline" or the proposal's name
    summary: str
    scores: list[PilotScore]  # one per direction
    gains: list[float] = field(default_factory=list)  # per direction, over the best spec's pilots
    kept: bool = False
    seconds: float = 0.0
    # direction -> the gain of a second pilot pair (another seed), run where the two directions' gains split
    again: dict[int, float] = field(default_factory=dict)
    trusted: str = ""  # why the change was kept whatever its gains (its reader reads real rows well: `_trusted`)
    random_drops: list[float] = field(default_factory=list)  # a screen's: per direction, the best random drop's score

    @property
    def decided_gains(self) -> list[float]:
        """The gains the keep-or-drop rests on: a direction piloted again counts the mean of its two gains."""
        return [round((g + self.again[d]) / 2, 4) if d in self.again else g for d, g in enumerate(self.gains)]

    @property
    def again_line(self) -> str:
        """"fold 0 again +0.040 (mean +0.0150)" for each direction piloted a second time; "" for none. The mean has
        four places: it decides, and a mean of +0.0001 keeps a change where +0.000 would read as a tie."""
        return "; ".join(f"fold {DIRECTIONS[d][1]} again {g:+.3f} (mean {self.decided_gains[d]:+.4f})"
                         for d, g in self.again.items())  # fmt: skip

    @property
    def gains_line(self) -> str:
        """"+0.050 / -0.010; fold 0 again +0.040 (mean +0.0150)": each direction's gain, then any second pilots."""
        return "; ".join(filter(None, [" / ".join(f"{g:+.3f}" for g in self.gains), self.again_line]))


@dataclass
class TuneResult:
    spec_path: Path  # the tuned spec
    log_path: Path  # <stem>.tune.md
    rounds: list[Round]
    changes: list[tuple[Round, Change]]  # each kept change, derived again from the whole seed
    pilot_rows: int
    seconds: float
    stopped: str = ""  # why the loop ended before the last proposal ("" when every proposal was tried)
    skipped: list[str] = field(default_factory=list)  # proposals that found nothing to change
    judge_accuracy: list[float] = field(default_factory=list)  # per direction: its judge on the other fold's real rows
    chance: float = 0.0  # the accuracy of guessing one label (1 / labels)
    # per direction: the spec's model, shown one fold's real rows, on the other's (the reader of `not:` lines)
    model_accuracy: list[float] = field(default_factory=list)
    rederive_seconds: float = 0.0  # deriving the kept changes again from the whole seed
    held_back_seconds: float = 0.0  # what the budget held back for that (`loop.REDERIVE_COST`)
    withheld: list[str] = field(default_factory=list)  # proposals that found a change and held it back: why
    model_judges: bool = True  # the backend gives log-probabilities: the spec's model reads rows for tune
    budget_minutes: float | None = None  # the minutes budget the loop ran under
    # from the model's reading of real rows: the real judge's least confidence, how often it reads real rows right
    # at that confidence or more, and how often all of them (`judge.least_confidence`)
    model_sure: tuple[float, float, float] = (0.0, 0.0, 0.0)
    label_reader: str = "panel"  # who read the pilots' label fit: "panel", or "model" where the panel is weak

    @property
    def weak_judge(self) -> bool:
        """Some direction's judge reads real rows barely better than chance: its decisions are mostly noise."""
        return barely_reads(self.judge_accuracy, self.chance)

    @property
    def before(self) -> list[PilotScore]:
        return self.rounds[0].scores

    @property
    def after(self) -> list[PilotScore]:
        kept = [r for r in self.rounds if r.kept]
        return (kept[-1] if kept else self.rounds[0]).scores
