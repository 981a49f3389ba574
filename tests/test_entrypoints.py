"""The public API called the ways users call it: a script file without a main guard, a script piped on
stdin, and ``python -c``; each with the engine in its worker process (the default).

multiprocessing's spawn re-runs the caller's ``__main__`` in the child, so such a script used to call
``sdg()`` again inside the engine worker and die. sdgen's worker is a program of its own.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from conftest import ROOT

SDG = """
import sdgen
sdgen.sdg(sample_size=10, labels=["polite", "impolite"], categories_types={{"travel": ["air"]}},
          batch_size=4, output_path={out!r}, model={model!r}, max_new_tokens=16)
print("done", flush=True)
"""

GENERATE = """
import sdgen
summary = sdgen.generate({spec!r}, rows=10, output={out!r}, generation={{"max_new_tokens": 16}})
print("done", summary.written, flush=True)
"""


def spec_file(tmp_path, model) -> str:
    import yaml

    from conftest import base_spec

    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(base_spec(models=[str(model)], prompt_style="fewshot", engine={"threads": 2})))
    return str(path)


def run_as(how: str, code: str, tmp_path) -> subprocess.CompletedProcess:
    code = textwrap.dedent(code)
    if how == "script":
        script = tmp_path / "make_data.py"
        script.write_text(code)
        cmd, stdin = [sys.executable, str(script)], None
    elif how == "stdin":
        cmd, stdin = [sys.executable, "-"], code
    else:
        cmd, stdin = [sys.executable, "-c", code], None
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, cwd=tmp_path)


@pytest.mark.parametrize("how", ["script", "stdin", "-c"])
@pytest.mark.parametrize("api", ["sdg", "generate"])
def test_the_api_runs_from_a_script_stdin_and_dash_c(tmp_path, tiny_models, how, api):
    out = tmp_path / "out.csv"
    if api == "sdg":
        code = SDG.format(out=str(out), model=str(tiny_models["chat"]))
    else:
        code = GENERATE.format(spec=spec_file(tmp_path, tiny_models["chat"]), out=str(out))
    proc = run_as(how, code, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("done") == 1  # the caller's code ran once: never again inside the engine worker
    if api == "generate":
        assert proc.stdout.split() == ["done", "10"]  # every planned row written (lost ones replaced)
    df = pd.read_csv(out, keep_default_na=False)
    assert len(df) >= 1 and df["row"].is_unique and (df["row"] % 10).is_unique  # a lost row is replaced by row + 10
    manifest = (tmp_path / "out.manifest.json").read_text()
    assert '"status": "finished"' in manifest


def test_a_script_that_generates_twice_starts_one_worker_per_run(tmp_path, tiny_models):
    """Each run starts (and stops) its own engine worker; the second run does not see the first one's."""
    code = SDG.format(out=str(tmp_path / "a.csv"), model=str(tiny_models["chat"]))
    code += SDG.format(out=str(tmp_path / "b.csv"), model=str(tiny_models["chat"]))
    proc = run_as("script", code, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("done") == 2
    assert (tmp_path / "a.csv").is_file() and (tmp_path / "b.csv").is_file()


def test_importing_sdgen_loads_no_pipeline_module():
    """A worker program or a Ray node imports `sdgen.*` modules; the facade must not drag the pipeline in."""
    code = "import sys, sdgen; print(sorted(m for m in sys.modules if m.startswith('sdgen')))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['sdgen']"
