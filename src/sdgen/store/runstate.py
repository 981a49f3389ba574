"""What a run leaves on disk so that ``--resume`` can finish it exactly.

- ``<stem>.manifest.json`` (written atomically when the run starts and when it ends): the spec as
  validated, the identity of every model, the backend and the status. A resume with anything
  that changes the rows is refused, naming what changed.
- ``<stem>.journal.jsonl`` (appended and fsynced after the data files, per flush): the rows whose
  fate leaves no trace in a data file (duplicates and example copies dropped, unparseable after all
  attempts). Replacement rows need no entry: each is a function of the row it replaces.
- The data files themselves: a row is done once it is in the dataset or the conflicts file.

A crash can tear the last record of a CSV/JSONL file; ``repair_tail`` cuts it off (that row is
simply generated again).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from sdgen.errors import OutputError
from sdgen.formats import commit, format_of, write_error
from sdgen.models.registry import ResolvedModel
from sdgen.store.files import sidecar
from sdgen.spec import Spec

MANIFEST_VERSION = 1
# Fields that do not change which rows a run makes or what they contain.
_NOT_IDENTITY = {("batch_size",), ("engine", "threads"), ("engine", "recycle_every"), ("engine", "process"), ("engine", "cpu_pinning"),
                ("engine", "max_num_seqs"), ("ray",)}


def model_identity(model: ResolvedModel) -> dict[str, Any]:
    """Enough to tell whether a model changed: built-in name and version, or the file's size and mtime."""
    if model.builtin is not None:
        return {"builtin": model.name, "version": model.builtin.version}
    path = model.path
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    stamp = hashlib.blake2b(digest_size=8)
    for f in files:
        st = f.stat()
        stamp.update(f"{f.relative_to(path) if path.is_dir() else f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return {"path": str(path.resolve()), "stamp": stamp.hexdigest()}


def spec_identity(spec: Spec) -> dict[str, Any]:
    data = spec.model_dump(mode="json", exclude={"base_dir"})
    data["output"] = str(spec.output_path)
    for path in _NOT_IDENTITY:
        node = data
        for key in path[:-1]:
            node = node.get(key, {})
        node.pop(path[-1], None)
    return data


def manifest_path(output: Path) -> Path:
    return sidecar(output, "manifest", ".json")


def journal_path(output: Path) -> Path:
    return sidecar(output, "journal", ".jsonl")


def write_manifest(output: Path, spec: Spec, models: dict[str, ResolvedModel], backend: str, status: str) -> None:
    data = {
        "version": MANIFEST_VERSION,
        "status": status,
        "backend": backend,
        "models": {name: model_identity(m) for name, m in models.items()},
        "spec": spec_identity(spec),
    }
    atomic_write_text(manifest_path(output), json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    commit(tmp, path, synced=True)


def _diff(old: Any, new: Any, where: str = "", model: type | None = Spec) -> list[str]:
    """What changed between two identities, as ``path: old -> new`` lines.

    A spec field that the old manifest lacks (a later sdgen added it) is no change while it has its default:
    a run started before an upgrade resumes after it.
    """
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            field = _field(model, key)
            if key not in old and field is not None and _default(field) == new[key]:
                continue
            sub = field.annotation if field is not None and isinstance(field.annotation, type) else None
            out += _diff(old.get(key), new.get(key), f"{where}.{key}" if where else str(key), sub)
        return out
    return [] if old == new else [f"{where or 'value'}: {_short(old)} -> {_short(new)}"]


def _field(model: type | None, key: str):
    fields = getattr(model, "model_fields", None)
    return fields.get(key) if fields else None


def _default(field) -> Any:
    from pydantic_core import PydanticUndefined, to_jsonable_python

    value = field.default_factory() if field.default_factory is not None else field.default
    return PydanticUndefined if value is PydanticUndefined else to_jsonable_python(value)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def check_resumable(output: Path, spec: Spec, models: dict[str, ResolvedModel], backend: str) -> dict[str, Any]:
    """The manifest of the run to resume, or an error saying why it cannot be resumed."""
    path = manifest_path(output)
    if not path.is_file():
        if output.exists():
            raise OutputError(f"{output} has no manifest ({path.name}): it was not started by this sdgen; "
                              "pass --overwrite to replace it")  # fmt: skip
        raise OutputError(f"nothing to resume: {output} does not exist; run without --resume")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OutputError(f"{path}: unreadable manifest ({exc}); pass --overwrite to start over") from None
    if manifest.get("version") != MANIFEST_VERSION:
        raise OutputError(f"{path}: manifest version {manifest.get('version')} is not {MANIFEST_VERSION}")
    changes = _diff(manifest["spec"], spec_identity(spec))
    changes += _diff(manifest["models"], {name: model_identity(m) for name, m in models.items()}, "models", None)
    if manifest["backend"] != backend:
        changes.append(f"backend: {manifest['backend']} -> {backend}")
    if changes:
        raise OutputError(f"cannot resume {output.name}: " + "; ".join(changes) + " (pass --overwrite to start over)")
    return manifest


# -- journal -------------------------------------------------------------------------------------


class Journal:
    """Append-only record of row outcomes that no data file holds; synced after the data files."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("a", encoding="utf-8")
        self._pending: list[str] = []
        self._failed: Exception | None = None

    def note(self, event: str, row: int, model: str, **detail: Any) -> None:
        entry = {"event": event, "row": row, "model": model, **detail}
        self._pending.append(json.dumps(entry, ensure_ascii=False) + "\n")

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> None:
        if self._failed is not None:
            raise self._failed
        if self._pending:
            try:
                self._file.write("".join(self._pending))
                self._file.flush()
                os.fsync(self._file.fileno())
            except OSError as exc:
                self._failed = write_error(self.path, exc)
                raise self._failed from None
            self._pending = []

    def close(self) -> None:
        if not self._file.closed:
            try:
                self.flush()
            finally:
                self._file.close()


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Journal entries; a torn last line (a crash mid-write) is dropped and cut off the file."""
    if not path.is_file():
        return []
    repair_tail(path)
    entries = []
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            try:
                entries.append(json.loads(line))
            except ValueError:
                raise OutputError(f"{path}: line {i} is corrupt; pass --overwrite to start over") from None
    return entries


def repair_tail(path: Path) -> int:
    """Cut a torn last record off a dataset or journal file (a crash mid-append); return the bytes removed."""
    return format_of(path).repair_tail(path)  # a missing file has nothing to repair (each format checks)
