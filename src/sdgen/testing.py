"""Tiny random-init models for tests, built locally in seconds (no hub, no torch).

A 2-layer, 64-wide llama with the built-in SmolLM2 tokenizer, written as a Q8_0 GGUF that
OpenVINO GenAI loads through the same path as real models. Its text is random words, which
is what engine and pipeline tests need: real tokenization, real batching, real sampling.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sdgen.models.provision import provision

# A template without a system role, as Gemma's: it refuses a system turn.
NO_SYSTEM_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


def build_tiny_gguf(
    path: Path, *, chat_template: str | None = "smollm2", layers: int = 2, width: int = 64, seed: int = 0,
    quant: str = "Q8_0",
) -> Path:
    """Write a tiny llama GGUF; ``chat_template`` is "smollm2" (the real one), a template string, or None (base).

    ``quant``: the matrices' type; GenAI loads Q8_0, Q4_0 and Q4_1 (Q5_0 is for tests of `requantize`).
    """
    import gguf
    import numpy as np

    source = gguf.GGUFReader(str(provision("smollm2-135m-instruct", quiet=True)))

    def field(key: str):
        return source.fields[key].contents()

    heads, kv_heads, ffn = 4, 2, 2 * width
    vocab = len(field("tokenizer.ggml.tokens"))
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("sdgen-tiny-test")
    writer.add_block_count(layers)
    writer.add_context_length(2048)
    writer.add_embedding_length(width)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(width // heads)
    writer.add_vocab_size(vocab)
    qtype = gguf.GGMLQuantizationType[quant]
    writer.add_file_type(gguf.LlamaFileType[f"MOSTLY_{quant}"])  # GenAI's GGUF reader takes quantized matrices
    writer.add_tokenizer_model(field("tokenizer.ggml.model"))
    writer.add_tokenizer_pre(field("tokenizer.ggml.pre"))
    writer.add_token_list(field("tokenizer.ggml.tokens"))
    writer.add_token_types(field("tokenizer.ggml.token_type"))
    writer.add_token_merges(field("tokenizer.ggml.merges"))
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_pad_token_id(2)
    writer.add_add_bos_token(False)
    writer.add_add_space_prefix(False)
    if chat_template == "smollm2":
        writer.add_chat_template(field("tokenizer.chat_template"))
    elif chat_template:
        writer.add_chat_template(chat_template)

    rng = np.random.default_rng(seed)

    def matrix(name: str, rows: int, cols: int) -> None:
        weights = (rng.standard_normal((rows, cols)) * 0.02).astype(np.float32)
        writer.add_tensor(name, gguf.quants.quantize(weights, qtype), raw_dtype=qtype)

    matrix("token_embd.weight", vocab, width)
    writer.add_tensor("output_norm.weight", np.ones(width, np.float32))
    kv_width = width * kv_heads // heads
    for i in range(layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(width, np.float32))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(width, np.float32))
        matrix(f"blk.{i}.attn_q.weight", width, width)
        matrix(f"blk.{i}.attn_k.weight", kv_width, width)
        matrix(f"blk.{i}.attn_v.weight", kv_width, width)
        matrix(f"blk.{i}.attn_output.weight", width, width)
        matrix(f"blk.{i}.ffn_gate.weight", ffn, width)
        matrix(f"blk.{i}.ffn_up.weight", ffn, width)
        matrix(f"blk.{i}.ffn_down.weight", width, ffn)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def build_tiny_hf(path: Path, *, layers: int = 2, width: int = 64, seed: int = 0) -> Path:
    """Save a tiny random-init llama as an HF model dir with the built-in tokenizer (needs the [convert] extra)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from sdgen.models.gguf_tokenizer import hf_tokenizer_from_gguf

    tokenizer = hf_tokenizer_from_gguf(provision("smollm2-135m-instruct", quiet=True))
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@contextmanager
def local_ray_cluster(nodes: list[tuple[str, int]], log_dir: Path) -> Iterator[str]:
    """Start a Ray cluster on loopback, one `ray start --block` per (ip, cpus) node, the first as head;
    yields its address and stops every process it started. For tests and measurements on one machine:
    distinct 127.0.0.x addresses make distinct nodes (Ray maps 127.0.0.1 itself to the host's address)."""
    head_ip = nodes[0][0]
    with socket.socket() as s:
        s.bind((head_ip, 0))
        port = s.getsockname()[1]
    address = f"{head_ip}:{port}"
    procs = []
    try:
        for i, (ip, cpus) in enumerate(nodes):
            role = ["--head", f"--port={port}", "--include-dashboard=false"] if i == 0 else [f"--address={address}"]
            procs.append(_ray_start([*role, f"--node-ip-address={ip}", f"--num-cpus={cpus}"], log_dir / f"node{i}.log"))
            if i == 0:
                _wait_for_port(head_ip, port, log_dir / "node0.log")
        _wait_for_nodes(address, len(nodes), log_dir)
        yield address
    finally:
        for proc in reversed(procs):
            _stop_group(proc)


def _ray_start(args: list[str], log: Path) -> subprocess.Popen:
    cmd = [str(Path(sys.executable).with_name("ray")), "start", "--block", "--disable-usage-stats",
           "--object-store-memory=100000000", *args]  # fmt: skip
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _wait_for_port(host: str, port: int, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Ray head did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.5)


def _wait_for_nodes(address: str, count: int, log_dir: Path, timeout: float = 90) -> None:
    """Wait until the cluster has ``count`` alive nodes (asked by a short-lived `ray` client process)."""
    probe = ("import ray, sys, time\nray.init(address=sys.argv[1], logging_level='ERROR')\n"
             "t = time.monotonic() + float(sys.argv[3])\n"
             "while len([n for n in ray.nodes() if n['Alive']]) < int(sys.argv[2]):\n"
             "    assert time.monotonic() < t\n    time.sleep(0.5)\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", probe, address, str(count), str(timeout)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        logs = "".join(p.read_text()[-1500:] for p in sorted(log_dir.glob("node*.log")))
        raise RuntimeError(f"Ray cluster at {address} did not reach {count} nodes: {done.stderr[-1500:]}{logs}")


def _stop_group(proc: subprocess.Popen) -> None:
    """End a `ray start --block` and everything it started (its session's process group)."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def run_watched(cmd: list[str], watch: list[Path], *, stall: float = 180.0, env: dict[str, str] | None = None,
                on_stall: Callable[[], str] | None = None) -> subprocess.CompletedProcess:  # fmt: skip
    """Run an sdgen command to its end, failing only when it stops making progress.

    Progress is any growth of the files in ``watch`` (the dataset, its journal) or of the command's
    stderr. After ``stall`` seconds without any, every sdgen process (the driver and its engine
    workers) is asked for its threads' stacks (SIGUSR1, see `sdgen.debug`), the driver is killed, and
    the error carries its stderr, the stacks and ``on_stall()``'s text (the state of a cluster, say).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        last, seen = time.monotonic(), None
        while proc.poll() is None:
            now = (tuple(p.stat().st_size if p.exists() else -1 for p in watch), os.fstat(err.fileno()).st_size)
            if now != seen:
                last, seen = time.monotonic(), now
            elif time.monotonic() - last > stall:
                _stall_failure(proc, err, stall, on_stall)
            time.sleep(0.2)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, proc.returncode, out.read().decode(), err.read().decode())


def _stall_failure(proc: subprocess.Popen, err, stall: float, on_stall: Callable[[], str] | None) -> None:
    extra = on_stall() if on_stall is not None else ""
    for pid in [proc.pid, *_sdgen_worker_pids()]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGUSR1)
    time.sleep(2)  # the stacks are written by the processes themselves
    proc.kill()
    proc.wait()
    err.seek(0)
    text = err.read().decode(errors="replace")
    raise AssertionError(f"no progress for {stall:.0f} s: {proc.args}\n--- stderr (stacks last) ---\n{text[-20000:]}\n{extra}")


def ask_for_stacks() -> list[int]:
    """Every sdgen process below this one (a CLI it started, its engine workers) prints its threads' stacks to its
    stderr (SIGUSR1, `sdgen.debug`); returns their pids. Only processes running sdgen are signalled (SIGUSR1 would
    end any other), and only this process's own: another run on the machine is left alone."""
    pids = [pid for pid in _descendants(os.getpid()) if _runs_sdgen(pid)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGUSR1)
    return pids


def _runs_sdgen(pid: int) -> bool:
    try:
        return b"sdgen" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


STACKS_LEAD = 20.0  # seconds before a test's backstop deadline at which its sdgen processes print their stacks


def stacks_fixture():
    """An autouse pytest fixture (assign it to a name in a conftest.py): shortly before pytest-timeout's deadline
    fails a test, every sdgen process the test started prints its stacks, so a hang fails with all of them (pytest-
    timeout prints the test process's own)."""
    import threading

    import pytest

    @pytest.fixture(autouse=True)
    def _stacks_before_the_backstop(request):
        marker = request.node.get_closest_marker("timeout")
        limit = float(marker.args[0] if marker and marker.args else request.config.getini("timeout") or 0)
        if limit <= 0:
            yield
            return
        timer = threading.Timer(limit - min(STACKS_LEAD, limit / 4), ask_for_stacks)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    return _stacks_before_the_backstop


def _sdgen_worker_pids() -> list[int]:
    """Engine worker programs on this machine (local or under Ray); their stderr reaches the driver's."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"sdgen.hosting.worker" in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids
