"""sdgen's own exception types.

The library raises these; only the CLI turns them into one-line user errors.
Anything else that escapes is a bug and keeps its traceback.
"""


class SdgenError(Exception):
    """Base class for errors caused by user input or the environment, not by sdgen bugs."""


class SpecError(SdgenError):
    """The task spec is malformed or invalid."""


class ModelError(SdgenError):
    """A model cannot be found, provisioned or loaded."""


class OutputError(SdgenError):
    """The output cannot be written (exists, unwritable, unsupported format)."""


class EngineError(SdgenError):
    """An engine backend is unavailable or failed for a reason the user can fix."""


class Interrupted(SdgenError):
    """The run was interrupted (Ctrl-C); every completed row was written. ``summary`` says how far it got."""

    def __init__(self, summary: object) -> None:
        super().__init__()
        self.summary = summary

    def __str__(self) -> str:  # read when printed, after the run has flushed and counted its rows
        return f"interrupted: {self.summary.written} rows written to {self.summary.output}"
