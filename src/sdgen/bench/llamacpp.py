"""llama.cpp as a benchmark peer: `llama-server` built from a PyPI source distribution, run on the same GGUF.

The build is cached under ``~/.cache/sdgen/llamacpp/<version>/``: `llama-cpp-python`'s sdist carries the
llama.cpp source (``vendor/llama.cpp``), which cmake builds for this CPU (``GGML_NATIVE``). The server runs
with parallel slots, continuous batching and prompt caching, and is fed the same rendered prompts, seeds
and sampling as every other cell, by as many concurrent clients as it has slots.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sdgen.errors import EngineError
from sdgen.hardware import cpu_flags
from sdgen.models.registry import CACHE_DIR

SDIST = "llama-cpp-python==0.3.36"  # its vendor/llama.cpp is the source we build
# ggml's AMX matmul segfaults in this version on an AMX Xeon (2-vCPU VM, every model: `ggml_backend_amx_mul_mat`,
# llama.cpp issue 20824, open): on such CPUs it is built without AMX, keeping AVX-512/VNNI (`-march=native` sets the
# rest, and explicit -mno- flags win over it in GCC)
_NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"


def _build_variant() -> tuple[str, list[str]]:
    """The cache dir's suffix and the extra cmake flags for this CPU."""
    if "amx_tile" in cpu_flags():
        return "-no-amx", [f"-DCMAKE_C_FLAGS={_NO_AMX}", f"-DCMAKE_CXX_FLAGS={_NO_AMX}"]
    return "", []


def server_binary(log=print) -> Path:
    """The cached `llama-server`, built once (about 10 minutes on 2 cores)."""
    suffix, extra = _build_variant()
    root = CACHE_DIR / "llamacpp" / (SDIST.split("==")[1] + suffix)
    binary = root / "llama-server"
    if binary.is_file():
        return binary
    if shutil.which("cmake") is None:
        raise EngineError("building llama.cpp needs cmake (Debian: apt install cmake)")
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sdgen-llamacpp-", dir=root) as tmp:
        tmp = Path(tmp)
        log(f"downloading the {SDIST} source distribution")
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q", "-d", str(tmp), SDIST])
        (sdist,) = tmp.glob("*.tar.gz")
        with tarfile.open(sdist) as tar:
            tar.extractall(tmp, filter="data")
        (source,) = tmp.glob("*/vendor/llama.cpp")
        build = tmp / "build"
        flags = ["-DGGML_NATIVE=ON", "-DLLAMA_CURL=OFF", "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_BUILD_TESTS=OFF",
                 "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=ON", "-DCMAKE_BUILD_TYPE=Release", *extra]  # fmt: skip
        log("configuring llama.cpp (cmake)")
        _run(["cmake", "-S", str(source), "-B", str(build), *flags])
        log("building llama-server")
        _run(["cmake", "--build", str(build), "--target", "llama-server", "-j", str(len(os.sched_getaffinity(0)))])
        (built,) = build.rglob("bin/llama-server")
        shutil.copy2(built, binary.with_suffix(".partial"))
        binary.with_suffix(".partial").replace(binary)
    return binary


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise EngineError(f"{' '.join(cmd[:3])} failed: {' | '.join(tail)}")


class LlamaServer:
    """A running `llama-server` on a loopback port; ``complete()`` is one request."""

    def __init__(self, gguf: Path, *, threads: int, slots: int, context: int) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        cmd = [str(server_binary()), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(self.port),
               "-t", str(threads), "-tb", str(threads), "-np", str(slots), "-c", str(context * slots),
               "--cont-batching", "--no-webui"]  # fmt: skip
        self.log = tempfile.NamedTemporaryFile("w+", prefix="llama-server-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        while not self._healthy():
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise EngineError(f"llama-server exited: {self.log.read()[-500:]}")
            time.sleep(0.2)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                return json.loads(r.read()).get("status") == "ok"
        except OSError:
            return False

    def complete(self, prompt: str, *, seed: int, params, stops: list[str]) -> tuple[str, int, int]:
        """(text, generated tokens, prompt tokens evaluated) for one raw prompt (already chat-templated)."""
        body = {"prompt": prompt, "n_predict": params.max_new_tokens, "temperature": params.temperature,
                "top_p": params.top_p, "top_k": params.top_k, "min_p": params.min_p, "repeat_penalty": params.repetition_penalty,
                "seed": seed, "stop": stops, "cache_prompt": True}  # fmt: skip
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/completion", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=3600) as r:
            out = json.loads(r.read())
        return out["content"], int(out.get("tokens_predicted", 0)), int(out.get("tokens_evaluated", 0))

    def complete_all(self, jobs: list[tuple[str, int]], params, stops: list[str], clients: int) -> list[tuple[str, int, int]]:
        with ThreadPoolExecutor(clients) as pool:
            return list(pool.map(lambda job: self.complete(job[0], seed=job[1], params=params, stops=stops), jobs))

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        os.unlink(self.log.name)
