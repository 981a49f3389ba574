"""Shared fixtures: tiny models built by the tests themselves, and specs written to temp dirs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from sdgen.testing import NO_SYSTEM_TEMPLATE, build_tiny_gguf, stacks_fixture

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_SPEC = ROOT / "examples" / "customer_service.yaml"


stacks_before_the_backstop = stacks_fixture()  # a test that hangs fails with the stacks of every sdgen process


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Tiny random-init GGUFs: a chat model, one whose template has no system role, and a base model."""
    root = tmp_path_factory.mktemp("tiny-models")
    return {
        "chat": build_tiny_gguf(root / "tiny-chat.gguf", chat_template="smollm2"),
        "no-system": build_tiny_gguf(root / "tiny-no-system.gguf", chat_template=NO_SYSTEM_TEMPLATE),
        "base": build_tiny_gguf(root / "tiny-base.gguf", chat_template=None),
    }


def base_spec(**changes) -> dict:
    """The example spec as a dict, with changes applied."""
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data.update(changes)
    return data


@pytest.fixture
def write_spec(tmp_path):
    """Write a spec dict as YAML into the test's temp dir and return its path."""

    def write(data: dict, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def tiny_hf(tmp_path_factory) -> Path:
    """A tiny random-init llama saved as a Hugging Face model dir (safetensors + tokenizer)."""
    from sdgen.testing import build_tiny_hf

    return build_tiny_hf(tmp_path_factory.mktemp("tiny-hf") / "model")


def check_min_p_keeps_only_the_likeliest_token(engine, sampling) -> None:
    """min_p 0.999 leaves only the likeliest token: every seed gives the greedy text, which plain sampling does not."""
    from sdgen.engines import Request

    def texts(params, seeds) -> set[str]:
        return {r.text for r in engine.generate([Request(i, prompt, params, seed=i) for i in seeds])}

    prompt = engine.render_chat([{"role": "user", "content": "Tell me something."}])
    greedy = texts(sampling.model_copy(update={"temperature": 0.0}), [0])
    assert texts(sampling.model_copy(update={"min_p": 0.999}), range(8)) == greedy
    assert len(texts(sampling, range(8))) > 1


def shop_spec(tmp_path: Path, **changes) -> dict:
    """A two-label spec (complaint, praise) for the copying engine (fake_engines.CopyingEngine)."""
    model = tmp_path / "fake.gguf"  # resolved by path; a fake engine never reads it
    model.write_bytes(b"GGUF")
    return {"task": "Messages to a shop.", "labels": ["complaint", "praise"], "categories": {"channel": ["mail"]},
            "sample_size": 12, "models": [str(model)], "output": "out.csv", **changes}  # fmt: skip


def _run_cli(capsys, monkeypatch, args) -> tuple[int, str]:
    """Run the sdgen CLI in this process: (its exit code, its stderr)."""
    from sdgen import cli

    monkeypatch.setattr(sys, "argv", ["sdgen", *map(str, args)])
    monkeypatch.setattr(cli, "dump_stacks_on_sigusr1", lambda: None)  # needs a real stderr file; capsys has none
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    return exit_info.value.code, capsys.readouterr().err


def cli_ok(capsys, monkeypatch, *args) -> str:
    """Run the sdgen CLI in this process; it must exit 0. Returns its stderr."""
    code, stderr = _run_cli(capsys, monkeypatch, args)
    assert code == 0, stderr
    return stderr


def cli_error(capsys, monkeypatch, *args) -> str:
    """Run the sdgen CLI in this process; it must fail with exit 1, no traceback and one stderr line, which it returns."""
    code, stderr = _run_cli(capsys, monkeypatch, args)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 1 and "Traceback" not in stderr and len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]
