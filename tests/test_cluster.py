"""sdgen on Ray: placement, model shipping, and real runs on a two-node local cluster (loopback only)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import base_spec

from sdgen.hosting.cluster import (
    NodeInfo,
    ShippedModel,
    localize,
    plan_placements,
    unpack,
)
from sdgen.errors import EngineError, ModelError
from sdgen.models import ResolvedModel
from sdgen.plan import make_plan
from sdgen.spec import RayOptions, load_spec
from sdgen.testing import local_ray_cluster, run_watched

import ray  # noqa: E402 - the [ray] extra is part of every test install (`make install`)

pytestmark = [pytest.mark.ray, pytest.mark.slow]  # two Ray nodes on loopback: `make test-slow`


def node(name: str, cpus: int, numa: int = 1) -> NodeInfo:
    per = max(cpus // numa, 1)
    return NodeInfo(name, f"10.0.0.{name[-1]}", cpus, tuple(tuple(range(i * per, (i + 1) * per)) for i in range(numa)))


def test_one_worker_per_numa_node_with_its_share_of_the_cpus():
    placements = plan_placements([node("a1", 8, numa=2), node("b2", 4)], RayOptions())
    assert [(p.node_id, p.threads, p.pin) for p in placements] == [
        ("a1", 4, (0, 1, 2, 3)), ("b2", 4, None), ("a1", 4, (4, 5, 6, 7)),
    ]  # fmt: skip


def test_threads_per_worker_packs_workers_and_a_cap_spreads_them_over_nodes():
    nodes = [node("a1", 4), node("b2", 4), node("c3", 0)]  # c3: a head kept for the driver
    packed = plan_placements(nodes, RayOptions(threads_per_worker=1))
    assert len(packed) == 8 and {p.threads for p in packed} == {1}
    capped = plan_placements(nodes, RayOptions(threads_per_worker=2, workers=2))
    assert [p.node_id for p in capped] == ["a1", "b2"]


def test_placement_errors_name_the_problem():
    with pytest.raises(EngineError, match=r"ray.workers: 5 workers do not fit the cluster's CPUs \(room for 2"):
        plan_placements([node("a1", 2), node("b2", 2)], RayOptions(workers=5))
    with pytest.raises(EngineError, match="no node with CPUs"):
        plan_placements([node("a1", 0)], RayOptions())


def test_shipped_model_is_unpacked_once_and_whole(tmp_path):
    shipped = ShippedModel("d1", "model-ir", {"openvino_model.xml": b"<xml/>", "sub/tok.bin": b"\x00\x01"})
    first = unpack(shipped, tmp_path)
    assert first == tmp_path / "d1" / "model-ir"
    assert (first / "sub" / "tok.bin").read_bytes() == b"\x00\x01"
    (first / "openvino_model.xml").write_bytes(b"kept")
    assert unpack(shipped, tmp_path) == first and (first / "openvino_model.xml").read_bytes() == b"kept"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no half-written copies left


def test_a_missing_path_too_big_to_ship_is_a_model_error(tmp_path, monkeypatch):
    monkeypatch.setattr("sdgen.hosting.cluster.CACHE_DIR", tmp_path / "cache")
    model = ResolvedModel("m.gguf", tmp_path / "gone" / "m.gguf", "gguf")
    with pytest.raises(ModelError, match=r"does not exist on Ray node 10.0.0.9 \(too big to ship\)"):
        localize(model, None, "10.0.0.9")
    shipped = ShippedModel("d2", "m.gguf", {"": b"GGUF"})
    assert localize(model, shipped, "n").path.read_bytes() == b"GGUF"


def test_spec_and_cli_forms_of_ray(tmp_path, write_spec):
    spec = load_spec(write_spec(base_spec(ray=True)))
    assert spec.ray == RayOptions()
    assert load_spec(write_spec(base_spec(ray="10.1.1.1:6379"))).ray.address == "10.1.1.1:6379"
    assert load_spec(write_spec(base_spec(ray=False))).ray is None
    on = load_spec(write_spec(base_spec(ray={"workers": 3})), ray="h:1")
    assert (on.ray.address, on.ray.workers) == ("h:1", 3)
    assert load_spec(write_spec(base_spec()), ray="").ray == RayOptions()


def test_an_unreachable_cluster_is_a_one_line_error_at_once(tmp_path, write_spec, tiny_models):
    spec = write_spec(base_spec(models=[str(tiny_models["chat"])], sample_size=4, output=str(tmp_path / "o.csv")))
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = subprocess.run([sys.executable, "-m", "sdgen.cli", "generate", str(spec), "--ray", f"127.0.0.1:{port}"],
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert run.returncode == 1 and len(lines) == 1, run.stderr
    assert lines[0] == (f"error: could not connect to the Ray cluster at 127.0.0.1:{port}: Connection refused "
                        "(is `ray start --head` running there?)")  # fmt: skip


# --- a real two-node cluster on loopback ------------------------------------------------------------

HEAD_IP, NODE_IP = "127.0.0.2", "127.0.0.3"  # two "hosts", both on loopback


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """`ray start` twice: a head at 127.0.0.2 and a second node at 127.0.0.3, one CPU each."""
    with local_ray_cluster([(HEAD_IP, 1), (NODE_IP, 1)], tmp_path_factory.mktemp("ray-logs")) as address:
        ray.init(address=address, logging_level="WARNING")
        try:
            yield address
        finally:
            ray.shutdown()


@pytest.fixture
def tiny_spec(tmp_path, write_spec, tiny_models):
    data = base_spec(models=[str(tiny_models["chat"])], sample_size=40, seed=3, prompt_style="fewshot",
                     output=str(tmp_path / "out.jsonl"))  # fmt: skip
    data["generation"] = {"max_new_tokens": 24}
    data["engine"] = {"max_num_seqs": 8, "max_num_batched_tokens": 256}
    return write_spec(data)


def _progress_files(output: Path) -> list[Path]:
    return [output, output.with_name(f"{output.stem}.journal.jsonl")]


def _ray_state() -> str:
    """What the cluster holds when a run stalls: nodes with their free CPUs, and every actor's state."""
    from ray.util.state import list_actors

    nodes = [(n["NodeManagerAddress"], n["Alive"], n["Resources"].get("CPU")) for n in ray.nodes()]
    actors = [(a.class_name, a.state, a.node_id and a.node_id[:8]) for a in list_actors(limit=100)]
    return f"--- ray ---\nnodes (ip, alive, CPU): {nodes}\navailable: {ray.available_resources()}\nactors: {actors}"


def _check_rows_match_plan(spec_path: Path, output: Path) -> pd.DataFrame:
    """Every planned row settled exactly once: written (with the plan's label, category, type and seed) or
    journalled as dropped (duplicate, unparseable), never both, never twice."""
    df = pd.read_json(output, lines=True)
    assert df["row"].is_unique
    plan = {r.row: r for r in make_plan(load_spec(spec_path))}
    for rec in df.itertuples():
        if rec.row in plan and rec.seed == plan[rec.row].seed:  # first attempts; retries carry their own seed
            p = plan[rec.row]
            assert (rec.label, rec.category, rec.type) == (p.label, p.category, p.type)
    journal = [json.loads(line) for line in output.with_name(f"{output.stem}.journal.jsonl").read_text().splitlines()]
    dropped = [e["row"] for e in journal if e["event"] != "replacement"]
    conflicts = output.with_name(f"{output.stem}.conflicts.jsonl")
    dropped += pd.read_json(conflicts, lines=True)["row"].tolist() if conflicts.exists() else []
    assert len(dropped) == len(set(dropped)) and not set(df["row"]) & set(dropped)
    assert set(df["row"]) | set(dropped) >= set(plan)
    return df


def test_a_spec_runs_across_both_nodes_and_writes_one_exact_dataset(cluster, tiny_spec, tiny_models):
    from sdgen.hosting import start_engine
    from sdgen.models import resolve_model
    from sdgen.spec import EngineOptions

    with start_engine("openvino", resolve_model(str(tiny_models["chat"])), EngineOptions(max_num_seqs=4),
                      ray=RayOptions(address=cluster)) as pool:  # fmt: skip
        assert sorted(w.placement.ip for w in pool.workers) == [HEAD_IP, NODE_IP]
        assert all(w.placement.threads == 1 for w in pool.workers)
        assert "<|im_start|>" in pool.chat_template

    out = Path(yaml.safe_load(tiny_spec.read_text())["output"])
    run = run_watched([sys.executable, "-m", "sdgen.cli", "generate", str(tiny_spec), "--ray", cluster, "--quiet"],
                      _progress_files(out), on_stall=_ray_state)  # fmt: skip
    assert run.returncode == 0, run.stderr
    output = Path(run.stdout.strip())
    assert len(_check_rows_match_plan(tiny_spec, output)) > 0
    (stats,) = json.loads(output.with_name("out.stats.json").read_text())["per_model"].values()
    assert sorted(w.split()[0] for w in stats["workers"]) == [HEAD_IP, NODE_IP]  # both nodes took rows
    assert all(n > 0 for n in stats["workers"].values()) and sum(stats["workers"].values()) == stats["attempts"]
    manifest = json.loads(output.with_name("out.manifest.json").read_text())
    assert manifest["status"] == "finished" and "ray" not in json.dumps(manifest["spec"])


def test_a_killed_worker_loses_only_its_in_flight_rows(cluster, tiny_spec, tiny_models, capfd):
    """A worker SIGKILLs itself after 8 results: its rows are redone elsewhere; every planned row settles once."""
    import sdgen
    from fake_engines import ARMED, DiesOnce
    from sdgen.engines import register_engine

    register_engine("dies-once", f"fake_engines:{DiesOnce.__name__}")
    armed = tiny_models["chat"].parent / ARMED
    armed.touch()
    summary = sdgen.generate(tiny_spec, backend="dies-once", report=False, ray=cluster)
    assert not armed.exists(), "no engine worker reached 8 results"
    err = capfd.readouterr().err
    assert "died" in err and "re-queued its" in err, err
    assert len(_check_rows_match_plan(tiny_spec, summary.output)) == summary.written


def test_a_killed_driver_resumes_on_the_cluster(cluster, tiny_spec, tmp_path):
    """SIGKILL the driver of a Ray run mid-way, resume it on Ray: every planned row settles exactly once."""
    data = yaml.safe_load(tiny_spec.read_text())
    data["sample_size"] = 600
    tiny_spec.write_text(yaml.safe_dump(data))
    cmd = [sys.executable, "-m", "sdgen.cli", "generate", str(tiny_spec), "--ray", cluster, "--quiet"]
    output = Path(data["output"])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while not (output.exists() and output.read_bytes().count(b"\n") >= 100):  # kill it once 100 rows are on disk
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    written = output.read_bytes().count(b"\n")
    assert 100 <= written < 600
    # `--ray` alone: the cluster RAY_ADDRESS names (or the spec's, or this machine's)
    env = {**os.environ, "RAY_ADDRESS": cluster}
    done = run_watched([*cmd[:-3], "--ray", "--quiet", "--resume"], _progress_files(output), env=env,
                       on_stall=_ray_state)  # fmt: skip
    assert done.returncode == 0, done.stderr
    df = _check_rows_match_plan(tiny_spec, output)
    assert len(df) > written


@pytest.mark.integration
def test_the_builtin_model_is_provisioned_and_runs_on_every_node(cluster, tmp_path, write_spec):
    spec = write_spec(base_spec(sample_size=8, prompt_style="fewshot", output=str(tmp_path / "b.jsonl"),
                                models=["smollm2-135m-instruct"]))  # fmt: skip
    run = run_watched([sys.executable, "-m", "sdgen.cli", "generate", str(spec), "--ray", cluster, "--quiet"],
                      _progress_files(tmp_path / "b.jsonl"), on_stall=_ray_state)  # fmt: skip
    assert run.returncode == 0, run.stderr
    df = _check_rows_match_plan(spec, tmp_path / "b.jsonl")
    assert len(df) >= 6 and df["text"].str.len().min() > 10 and not df["text"].str.contains("Ġ|<\\|im_").any()
    (stats,) = json.loads((tmp_path / "b.stats.json").read_text())["per_model"].values()
    assert len(stats["workers"]) == 2


def test_a_small_model_missing_on_a_node_travels_through_the_object_store(cluster, tiny_models):
    """A node without the model's path gets the shipped copy (read back on the other node, byte for byte)."""
    import shutil
    from dataclasses import replace

    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from sdgen.hosting.cluster import ship
    from sdgen.models import resolve_model

    model = resolve_model(str(tiny_models["chat"]))
    shipped = ship(model, limit_mb=64)
    assert shipped is not None and ship(model, limit_mb=0) is None
    elsewhere = replace(model, path=Path("/nonexistent") / model.path.name)  # as a node without the file sees it

    def fetch(m, s):
        from sdgen.hosting.cluster import localize

        path = localize(m, s, "n").path
        return str(path), path.read_bytes()

    node = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and n["NodeManagerAddress"] == NODE_IP)
    task = ray.remote(num_cpus=0)(fetch).options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
    path, data = ray.get(task.remote(elsewhere, shipped), timeout=120)
    try:
        assert data == model.path.read_bytes() and Path(path).name == model.path.name
    finally:
        shutil.rmtree(Path(path).parent, ignore_errors=True)
