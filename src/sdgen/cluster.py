"""The engine on a Ray cluster: one worker actor per NUMA node of every Ray node, one pool in the driver.

Ray places the workers (an actor per worker, holding the CPUs it computes with) and restarts
nothing by itself; the work itself flows over one authenticated connection per worker back to
the driver, speaking `sdgen.engines.worker`'s pull protocol. So a cluster run is a
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
import os
import secrets
import shutil
import socket
import sys
import threading
import time
from dataclasses import dataclass, replace
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

import sdgen
from sdgen.engines.worker import WorkerHandle, WorkerPool, serve
from sdgen.errors import EngineError, ModelError
from sdgen.models import CACHE_DIR, ResolvedModel, resolve_model
from sdgen.spec import EngineOptions, RayOptions

START_TIMEOUT_S = 600.0  # a new node may provision a built-in model from PyPI before it connects


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
        if facts["sdgen"] != sdgen.__version__:
            raise EngineError(
                f"Ray node {node['NodeManagerAddress']} has sdgen {facts['sdgen']}, this driver {sdgen.__version__}: "
                "install the same sdgen on every node"
            )
        infos.append(NodeInfo(node["NodeID"], node["NodeManagerAddress"], int(node["Resources"].get("CPU", 0)),
                              facts["numa"]))  # fmt: skip
    return infos


def _probe_node() -> dict[str, Any]:
    return {"numa": _numa_cpus(), "sdgen": sdgen.__version__, "python": sys.version.split()[0]}


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


def _no_delay(conn: Connection) -> Connection:
    """Turn off Nagle's algorithm on a TCP connection: a worker sends results back to back, and a small
    write held for the driver's delayed ACK stalled each engine step (measured: workers idle ~45%)."""
    with socket.fromfd(conn.fileno(), socket.AF_INET, socket.SOCK_STREAM) as sock:  # a dup of the same socket
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


class Rendezvous:
    """The driver's listener: each worker connects, authenticates, and names itself by its token."""

    def __init__(self, host: str) -> None:
        self.authkey = secrets.token_bytes(32)
        self._listener = Listener((host, 0), authkey=self.authkey)
        self.address = self._listener.address
        self._arrived: dict[str, tuple[Connection, int]] = {}
        self._cond = threading.Condition()
        self._closed = False
        threading.Thread(target=self._accept, name="sdgen-rendezvous", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn = _no_delay(self._listener.accept())
                _, token, pid = conn.recv()
            except Exception:  # noqa: BLE001 - a failed handshake (wrong key, closed) must not stop the others
                if self._closed:
                    return
                continue
            with self._cond:
                self._arrived[token] = (conn, pid)
                self._cond.notify_all()

    def wait_for(self, token: str, alive: Any, deadline: float) -> tuple[Connection, int]:
        """The connection of the worker holding ``token``; ``alive()`` raises if it died before connecting."""
        with self._cond:
            while token not in self._arrived:
                alive()
                if time.monotonic() > deadline:
                    raise EngineError(f"a Ray engine worker did not connect within {START_TIMEOUT_S:.0f} s")
                self._cond.wait(0.25)
            return self._arrived.pop(token)

    def close(self) -> None:
        self._closed = True
        try:  # wake the accept() call with a connection of our own, then close
            Client(self.address, authkey=self.authkey).close()
        except OSError:
            pass
        self._listener.close()


class EngineWorker:
    """The Ray actor: connects back to the driver and serves one engine until the driver closes it."""

    def run(self, address: Any, authkey: bytes, token: str, backend: str, model: ResolvedModel,
            shipped: ShippedModel | None, options: EngineOptions, pin: tuple[int, ...] | None) -> None:  # fmt: skip
        import ray

        if pin:
            os.sched_setaffinity(0, pin)  # one NUMA node's cores and memory
        conn = _no_delay(Client(address, authkey=authkey))
        conn.send(("hello", token, os.getpid()))
        node = ray.util.get_node_ip_address()
        try:
            local = localize(model, shipped, node)
        except ModelError as exc:
            conn.send(("error", exc))
            return
        serve(conn, backend, local, options)


@functools.cache
def _actor_class():
    return _ray().remote(EngineWorker)


class RayWorker(WorkerHandle):
    """The driver's end of one Ray worker; ``stopped`` frees its placement for a successor."""

    def __init__(self, rendezvous: Rendezvous, placement: Placement, backend: str, model: ResolvedModel,
                 shipped: ShippedModel | None, options: EngineOptions) -> None:  # fmt: skip
        ray = _ray()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.placement = placement
        self.actor = _actor_class().options(
            num_cpus=placement.threads, max_restarts=0, max_concurrency=1,
            scheduling_strategy=NodeAffinitySchedulingStrategy(placement.node_id, soft=False),
        ).remote()  # fmt: skip
        token = secrets.token_hex(8)
        worker_options = options.model_copy(update={"threads": placement.threads, "process": False, "cpu_pinning": False})
        self.done = self.actor.run.remote(rendezvous.address, rendezvous.authkey, token, backend, model, shipped,
                                          worker_options, placement.pin)  # fmt: skip
        try:
            self.conn, self.pid = rendezvous.wait_for(token, self._check_alive, time.monotonic() + START_TIMEOUT_S)
        except BaseException:
            ray.kill(self.actor)
            raise
        self.stopped = False

    def _check_alive(self) -> None:
        ray = _ray()
        ready, _ = ray.wait([self.done], timeout=0)
        if ready:
            raise EngineError(f"the engine worker on Ray node {self.placement.ip} failed to start: {self._fate()}")

    def _fate(self) -> str:
        ray = _ray()
        try:
            ray.get(self.done, timeout=0)
            return "it returned"
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
        ray.kill(self.actor)
        self.conn.close()

    def describe_exit(self) -> str:
        ray = _ray()
        ray.wait([self.done], timeout=5)
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


class RayPool(WorkerPool):
    """A `WorkerPool` of Ray workers; closing it also closes the driver's listener."""

    def __init__(self, launcher: _Launcher, rendezvous: Rendezvous, **kwargs: Any) -> None:
        self._rendezvous = rendezvous
        try:
            super().__init__(launcher, **kwargs)
        except BaseException:
            rendezvous.close()
            raise

    def close(self) -> None:
        super().close()
        self._rendezvous.close()


def ray_pool(backend: str, model: ResolvedModel, options: EngineOptions, ray_options: RayOptions) -> RayPool:
    """One engine worker per placement on the Ray cluster, fed from this process."""
    connect(ray_options)
    ray = _ray()
    placements = plan_placements(cluster_nodes(), ray_options)
    shipped = ship(model, ray_options.ship_limit_mb)
    rendezvous = Rendezvous(ray.util.get_node_ip_address())
    launcher = _Launcher(placements, lambda p: RayWorker(rendezvous, p, backend, model, shipped, options))
    return RayPool(launcher, rendezvous, workers=len(placements), recycle_every=options.recycle_every,
                   restarts=ray_options.restarts, inflight_cap=options.max_num_seqs, backend=backend)  # fmt: skip
