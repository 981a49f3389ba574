"""The engine on a Ray cluster: one worker per NUMA node of every Ray node, one pool in the driver.

Ray places the workers: an actor per worker holds the CPUs it computes with and starts the same
worker program a local run starts (`sdgen.hosting.worker`), which connects back to the driver over
one authenticated TCP connection and speaks `sdgen.hosting.protocol`. So a cluster run is a
`WorkerPool` like a local one: the driver keeps the plan, the request feed (retries, quota
replacements), deduplication, the writer and the manifest, and a worker that dies loses only its
in-flight requests, which go back to the front of the queue for the others.

Every node needs the same sdgen and Ray installed. Built-in models are provisioned on each node
from PyPI, as on one machine; a local model path is used where it exists on the node, and a model
smaller than ``ray.ship_limit_mb`` is shipped through Ray's object store to nodes that lack it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata as md
import os
import shutil
import socket
import sys
from dataclasses import dataclass, replace
from multiprocessing.connection import Client
from pathlib import Path
from typing import Any

from sdgen.errors import EngineError, ModelError
from sdgen.hosting.local import start_worker
from sdgen.hosting.pool import WorkerHandle, WorkerPool
from sdgen.hosting.protocol import WorkerJob
from sdgen.hosting.rendezvous import Rendezvous, no_delay
from sdgen.models.registry import CACHE_DIR, ResolvedModel
from sdgen.models.resolve import resolve_model
from sdgen.spec import EngineOptions, RayOptions


def sdgen_version() -> str:
    return md.version("sdgen")


def _ray():
    try:
        import ray
    except ImportError:
        raise EngineError("running on Ray needs Ray installed: pip install 'sdgen[ray]' (on every node)") from None
    return ray


def connect(options: RayOptions) -> None:
    """Join the cluster at ``options.address`` (None: the one this machine runs, else a new local one)."""
    ray = _ray()
    if ray.is_initialized():
        return
    import logging

    if options.address and ":" in options.address and "://" not in options.address:
        _check_reachable(options.address)  # Ray itself retries an absent head for minutes
    try:
        ray.init(address=options.address, logging_level=logging.WARNING, log_to_driver=True,
                 include_dashboard=False, configure_logging=True)  # fmt: skip
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = options.address or "this machine"
        raise EngineError(f"could not connect to the Ray cluster at {where}: {str(exc).splitlines()[0]}") from None


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        raise EngineError(
            f"could not connect to the Ray cluster at {address}: {why} (is `ray start --head` running there?)"
        ) from None


# --- placement -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeInfo:
    """What the driver knows of one Ray node: its CPUs as Ray counts them and its NUMA nodes' CPU ids."""

    node_id: str
    ip: str
    cpus: int
    numa: tuple[tuple[int, ...], ...]  # CPU ids per NUMA node; one entry when the node has one (or no info)


@dataclass(frozen=True)
class Placement:
    """Where one engine worker runs: a Ray node, the threads it computes with, the CPUs it is pinned to."""

    node_id: str
    ip: str
    threads: int
    pin: tuple[int, ...] | None = None  # a NUMA node's CPUs (only on nodes with several NUMA nodes)


def plan_placements(nodes: list[NodeInfo], options: RayOptions) -> list[Placement]:
    """One worker per NUMA node of every node with CPUs (threads = its share of the node's Ray CPUs), or
    as many ``threads_per_worker`` workers as fit; ``options.workers`` caps the total, spread over nodes."""
    per_node: list[list[Placement]] = []
    for node in nodes:
        if node.cpus <= 0:
            continue  # e.g. a head started with --num-cpus 0 to keep it for the driver
        numa = node.numa or ((),)
        threads = options.threads_per_worker or max(1, node.cpus // len(numa))
        count = max(node.cpus // threads, 0) if options.threads_per_worker else min(len(numa), node.cpus)
        pins = [tuple(numa[i % len(numa)]) if len(numa) > 1 else None for i in range(count)]
        per_node.append([Placement(node.node_id, node.ip, threads, pin) for pin in pins])
    ordered: list[Placement] = []  # round-robin over nodes, so that a cap on workers spreads them
    for rank in range(max((len(ps) for ps in per_node), default=0)):
        ordered += [ps[rank] for ps in per_node if rank < len(ps)]
    if options.workers is not None:
        if options.workers > len(ordered):
            raise EngineError(
                f"ray.workers: {options.workers} workers do not fit the cluster's CPUs (room for {len(ordered)}"
                + (f" at {options.threads_per_worker} threads each" if options.threads_per_worker else "") + ")"
            )
        ordered = ordered[: options.workers]
    if not ordered:
        raise EngineError("the Ray cluster has no node with CPUs for an engine worker")
    return ordered


def _numa_cpus() -> tuple[tuple[int, ...], ...]:
    """CPU ids per NUMA node of this machine (sysfs), limited to the CPUs this process may use."""
    allowed = os.sched_getaffinity(0)
    nodes = []
    for cpulist in sorted(Path("/sys/devices/system/node").glob("node[0-9]*/cpulist")):
        cpus = tuple(c for c in _parse_cpulist(cpulist.read_text()) if c in allowed)
        if cpus:
            nodes.append(cpus)
    return tuple(nodes) or (tuple(sorted(allowed)),)


def _parse_cpulist(text: str) -> list[int]:
    cpus: list[int] = []
    for part in text.strip().split(","):
        if part:
            lo, _, hi = part.partition("-")
            cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def cluster_nodes() -> list[NodeInfo]:
    """The alive nodes, each probed for its NUMA layout by a zero-CPU task pinned to it."""
    ray = _ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0, max_retries=0)(_probe_node)
    alive = [n for n in ray.nodes() if n.get("Alive")]
    refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
            for n in alive]  # fmt: skip
    infos = []
    for node, ref in zip(alive, refs):
        facts = ray.get(ref, timeout=120)
        if facts["sdgen"] != sdgen_version():
            raise EngineError(
                f"Ray node {node['NodeManagerAddress']} has sdgen {facts['sdgen']}, this driver {sdgen_version()}: "
                "install the same sdgen on every node"
            )
        infos.append(NodeInfo(node["NodeID"], node["NodeManagerAddress"], int(node["Resources"].get("CPU", 0)),
                              facts["numa"]))  # fmt: skip
    return infos


def _probe_node() -> dict[str, Any]:
    return {"numa": _numa_cpus(), "sdgen": sdgen_version(), "python": sys.version.split()[0]}


# --- models on other nodes -----------------------------------------------------------------------


@dataclass(frozen=True)
class ShippedModel:
    """A small local model's files in Ray's object store, for nodes where its path does not exist."""

    digest: str
    name: str  # the file or dir name to recreate
    files: Any  # ObjectRef of {relative path: bytes}


def ship(model: ResolvedModel, limit_mb: int) -> ShippedModel | None:
    """Put a local model's files in the object store when they total at most ``limit_mb`` (else None)."""
    if model.builtin is not None:
        return None  # every node provisions built-ins from PyPI itself
    root = model.path
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    if sum(f.stat().st_size for f in files) > limit_mb * 2**20:
        return None
    digest = hashlib.blake2b(digest_size=16)
    payload = {}
    for f in files:
        rel = f.relative_to(root).as_posix() if root.is_dir() else ""
        payload[rel] = f.read_bytes()
        digest.update(rel.encode() + b"\0" + payload[rel])
    return ShippedModel(digest.hexdigest(), root.name, _ray().put(payload))


def localize(model: ResolvedModel, shipped: ShippedModel | None, node: str) -> ResolvedModel:
    """The model as this node can load it: provisioned, found at the same path, or unpacked from the object store."""
    if model.builtin is not None:
        return resolve_model(model.name)
    if model.path.exists():
        return model
    if shipped is None:
        raise ModelError(
            f"model {model.name!r}: {model.path} does not exist on Ray node {node} (too big to ship); copy it "
            "to the same path on every node, or use a built-in model"
        )
    return replace(model, path=unpack(shipped, CACHE_DIR / "shipped"))


def unpack(shipped: ShippedModel, cache: Path) -> Path:
    """Write shipped files once under ``cache/<digest>/`` (atomically: a half-written copy is never used)."""
    target = cache / shipped.digest / shipped.name
    if target.exists():
        return target
    files = _ray().get(shipped.files) if not isinstance(shipped.files, dict) else shipped.files
    tmp = cache / f".{shipped.digest}.{os.getpid()}"
    for rel, data in files.items():
        path = tmp / shipped.name / rel if rel else tmp / shipped.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    try:
        os.rename(tmp, cache / shipped.digest)
    except OSError:  # another worker on this node unpacked it first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# --- workers -------------------------------------------------------------------------------------


class EngineActor:
    """The Ray actor: holds a placement's CPUs and runs the worker program there until it exits."""

    def run(self, job: WorkerJob, shipped: ShippedModel | None) -> int:
        import ray

        try:
            model = localize(job.model, shipped, ray.util.get_node_ip_address())
        except ModelError as exc:  # tell the driver in the worker's own words
            conn = no_delay(Client(job.address, authkey=job.authkey))
            conn.send(("hello", job.token, os.getpid()))
            conn.send(("error", exc))
            conn.close()
            return 1
        return start_worker(replace(job, model=model, parent_pid=os.getpid())).wait()


@functools.cache
def _actor_class():
    return _ray().remote(EngineActor)


class RayWorker(WorkerHandle):
    """The driver's end of one Ray worker; ``stopped`` frees its placement for a successor."""

    def __init__(self, rendezvous: Rendezvous, placement: Placement, factory: str, model: ResolvedModel,
                 shipped: ShippedModel | None, options: EngineOptions) -> None:  # fmt: skip
        ray = _ray()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.placement = placement
        self.actor = _actor_class().options(
            num_cpus=placement.threads, max_restarts=0, max_concurrency=1,
            scheduling_strategy=NodeAffinitySchedulingStrategy(placement.node_id, soft=False),
        ).remote()  # fmt: skip
        token = rendezvous.new_token()
        # OpenVINO's own pinning is off: two 1-thread engines on one machine were both pinned to core 0
        options = options.model_copy(update={"threads": placement.threads, "cpu_pinning": False})
        job = WorkerJob(rendezvous.address, rendezvous.authkey, token, factory, model, options,
                        sys_path=list(sys.path), pin=placement.pin)  # fmt: skip
        self.done = self.actor.run.remote(job, shipped)
        try:
            self.conn, self.pid = rendezvous.wait_for(token, self._check_alive)
        except BaseException:
            ray.kill(self.actor)
            raise
        self.stopped = False

    def _check_alive(self) -> None:
        ready, _ = _ray().wait([self.done], timeout=0)
        if ready:
            raise EngineError(f"the engine worker on Ray node {self.placement.ip} failed to start: {self._fate()}")

    def _fate(self) -> str:
        ray = _ray()
        try:
            code = ray.get(self.done, timeout=0)
            return f"the worker program exited (code {code})"
        except Exception as exc:  # noqa: BLE001 - Ray's error types for a dead actor vary by version
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            return lines[-1].split(". ")[0] if lines else type(exc).__name__  # Ray's own first sentence

    def stop(self, kill: bool = False) -> None:
        if self.stopped:
            return
        self.stopped = True
        ray = _ray()
        try:
            if not kill:
                self.conn.send(("close",))
                ray.wait([self.done], timeout=30)
        except OSError:
            pass
        ray.kill(self.actor)  # its worker program dies with it
        self.conn.close()

    def describe_exit(self) -> str:
        _ray().wait([self.done], timeout=5)
        return f"the engine worker on Ray node {self.placement.ip} (pid {self.pid}) died: {self._fate()}"

    @property
    def label(self) -> str:
        return f"{self.placement.ip} pid {self.pid}"


class _Launcher:
    """Starts workers on free placements: at first every placement, later the place of a stopped one."""

    def __init__(self, placements: list[Placement], start: Any) -> None:
        self._free = list(placements)
        self._start = start
        self.live: list[RayWorker] = []

    def __call__(self) -> RayWorker:
        for worker in [w for w in self.live if w.stopped]:
            self.live.remove(worker)
            self._free.append(worker.placement)
        alive = {n["NodeID"] for n in _ray().nodes() if n.get("Alive")}
        placement = next((p for p in self._free if p.node_id in alive), None)
        if placement is None:
            raise EngineError("no Ray node has room for another engine worker")
        self._free.remove(placement)
        try:
            worker = self._start(placement)
        except BaseException:
            self._free.append(placement)
            raise
        self.live.append(worker)
        return worker


def ray_pool(factory: str, model: ResolvedModel, options: EngineOptions, ray_options: RayOptions,
             backend: str) -> WorkerPool:  # fmt: skip
    """One engine worker per placement on the Ray cluster, fed from this process."""
    connect(ray_options)
    ray = _ray()
    placements = plan_placements(cluster_nodes(), ray_options)
    shipped = ship(model, ray_options.ship_limit_mb)
    rendezvous = Rendezvous(ray.util.get_node_ip_address())
    launcher = _Launcher(placements, lambda p: RayWorker(rendezvous, p, factory, model, shipped, options))
    try:
        return WorkerPool(launcher, workers=len(placements), recycle_every=options.recycle_every,
                          restarts=ray_options.restarts, inflight_cap=options.seqs_in_flight, backend=backend,
                          on_close=rendezvous.close)  # fmt: skip
    except BaseException:
        rendezvous.close()
        raise
