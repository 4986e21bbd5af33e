"""Train missing runs on a Ray cluster: ``--executor ray [--ray-address ADDR]``.

Each task (one aligned block of a recipe's missing seeds) becomes one Ray task
that needs one GPU, or one CPU on a cluster without GPUs. It is a streaming
generator: every run is sent back to the driver as the trainer yields it, and
the driver writes it to the store. Workers therefore need no access to the
store (no shared file system), and a worker that dies costs only the runs it
had not yet sent.

Ray's own retries are off (``max_retries=0``): when a task dies or raises, the
driver re-submits the seeds of its block that are still missing, at most
``MAX_RETRIES`` times, then records the block as failed. Before submitting, the
driver takes the block's store lock (the one the local executor takes) and
re-reads the store, so concurrent sessions on one store do not train a run
twice, and a run already stored is never re-trained. Ctrl-C cancels the tasks
in flight after storing the runs that already arrived.

The driver's ``harness`` package is shipped to the workers (``py_modules``), so
the cluster trains with the driver's code and salts; so are the packages of the
plug-in trainers and data sets (``harness.extensions``) and their entry points,
which workers therefore need not have installed. The workers' environment must
provide torch and the rest of lrlaws' dependencies.
"""
from __future__ import annotations

import contextlib
import importlib.util
import dataclasses
import json
import os
import secrets
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from harness import extensions as plugins
from harness.execute.tasks import MAX_RETRIES, Claim, Outcome, Task, claim, split_blocks
from harness.recipe import Recipe
from harness.store.index import Store, StoreError
from harness.trainers import DataUnavailable, TrainContext, get_trainer
from harness.trainers.base import RunResult
from harness.trainers.output import YieldCheck

#: tasks kept in flight per schedulable slot (GPU or CPU) so no slot idles between tasks
IN_FLIGHT_PER_SLOT = 2
#: seconds the driver waits for a result before re-checking blocks another session holds
POLL_SECONDS = 0.5


#: seconds ``check_address`` waits for a cluster address to accept a connection
CONNECT_TIMEOUT = 5.0
LOOPBACK = "127.0.0.1"


def check_address(address: str, timeout: float = CONNECT_TIMEOUT) -> str | None:
    """None if ``address`` (HOST:PORT, ray://HOST:PORT or auto) looks reachable, else the one-line fix."""
    if address == "auto":
        return None
    host_port = address.removeprefix("ray://")
    host, sep, port = host_port.rpartition(":")
    host = host.strip("[]")
    fix = "pass --ray-address HOST:PORT of a running Ray head (see `ray start --head`), or leave it out for a local instance"
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return f"--ray-address {address!r} is not HOST:PORT: {fix}"
    try:
        answer = _http2_hello(host, int(port), timeout)
    except socket.timeout:
        return f"--ray-address {address}: no answer within {timeout:g} s; {fix}"
    except OSError as e:
        return f"--ray-address {address}: cannot connect ({e.strerror or e}); {fix}"
    if len(answer) < 9 or answer[3] != _SETTINGS:
        # Ray itself would wait for ever on a port that accepts connections but is not Ray
        return f"--ray-address {address}: the port answers, but not as Ray (no gRPC); {fix}"
    return None


#: what an HTTP/2 client sends first (RFC 9113 §3.4): the preface, then an empty SETTINGS frame
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_SETTINGS = 4


def _http2_hello(host: str, port: int, timeout: float) -> bytes:
    """The first frame header (9 bytes) a server sends back to an HTTP/2 preface: gRPC servers, Ray's GCS and
    its client server among them, answer with SETTINGS. Every wait is bounded by ``timeout`` in all."""
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(_PREFACE)
        head = b""
        while len(head) < 9:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = s.recv(9 - len(head))
            if not chunk:
                break
            head += chunk
        return head


def loopback_only(address: str, timeout: float = 1.0) -> bool:
    """Whether ``address`` is a head on this host's loopback that its network address does not reach.

    Ray rewrites a loopback address to the node's network address before it connects, and then waits
    for ever on a head bound to loopback only; such a head is reached with Ray's single-host mode."""
    host, _, port = address.rpartition(":")
    if address.startswith("ray://") or host.strip("[]") not in ("127.0.0.1", "localhost", "::1") or not port.isdigit():
        return False
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET: no packet is sent; it only picks the outgoing interface
            node_ip = s.getsockname()[0]
        with socket.create_connection((node_ip, int(port)), timeout=timeout):
            return False
    except OSError:
        return True


def ray_missing() -> str | None:
    """None if Ray can be imported, else the one-line fix."""
    if importlib.util.find_spec("ray") is None:
        return "--executor ray needs Ray, which is not installed: pip install 'lrlaws[ray]'"
    return None


def rechunk(tasks: Iterable[Task], device: str) -> list[Task]:
    """Re-split tasks into the blocks the *cluster's* device trains together (the driver may have no GPU)."""
    seeds_of: dict[tuple[str, str], set[int]] = {}
    for t in tasks:
        seeds_of.setdefault((t.key, t.recipe_json), set()).update(t.seeds)
    out = []
    for (key, rjs), seeds in seeds_of.items():
        recipe = Recipe.from_dict(json.loads(rjs))
        out += split_blocks(key, rjs, seeds, max(1, get_trainer(recipe).chunk_size(recipe, device)))
    return out


def train_block(recipe_json: str, seeds: tuple[int, ...], device: str, ctx: TrainContext,
                entry_points: dict[str, dict[str, str]] | None = None) -> Iterator[tuple[RunResult, str]]:
    """The body of one Ray task, run on a worker: yields each run with where it was trained."""
    plugins.install(entry_points or {})
    recipe = Recipe.from_dict(json.loads(recipe_json))
    ctx = dataclasses.replace(ctx, device=device)
    where = f"ray:{socket.gethostname()}:{_device_name(device)}"
    for result in get_trainer(recipe).train(recipe, seeds, ctx):
        yield result, where


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return device


@dataclass
class _Flight:
    task: Task
    claim: Claim  # the block's lock, held while the task is in flight
    todo: set[int]  # seeds of the block not yet stored
    check: YieldCheck  # the trainer's runs against the seeds asked


def _runtime_env() -> dict[str, Any]:
    import harness

    return {"py_modules": [str(Path(harness.__file__).parent), *plugins.ray_py_modules()],
            "excludes": ["__pycache__", "*.pyc"]}


def train_ray(store: Store, tasks: Iterable[Task], ctx: TrainContext, on_run: Callable[[str, int, str], None],
              address: str | None = None, max_retries: int = MAX_RETRIES) -> Outcome:
    """Train ``tasks`` on the Ray cluster at ``address`` (None: a local Ray instance) and store every run."""
    if not address or loopback_only(address):
        # Ray picks the node's network address unless clusters are off (its single-host mode);
        # read when ray is first imported, so set before the import.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    out = Outcome()
    tasks = list(tasks)
    if not tasks:
        return out
    owns_connection = not ray.is_initialized()
    with contextlib.ExitStack() as stack:
        if owns_connection:
            why = check_address(address) if address else None
            if why is None:
                stack.enter_context(_token_auth(address))
                why = _init(ray, address)
            if why is not None:
                out.failed += [(t.key, t.seeds, why) for t in tasks]
                return out
            stack.callback(ray.shutdown)
        return _drive(ray, store, tasks, ctx, on_run, max_retries, out)


def _init(ray: Any, address: str | None) -> str | None:
    try:
        # "local": a new instance of our own, never a cluster some other process started on this machine
        ray.init(address=address or "local", runtime_env=_runtime_env(), log_to_driver=False, **_local_kwargs(address))
    except (ConnectionError, RuntimeError, ValueError) as e:
        return f"cannot start or reach Ray at {address or 'a local instance'}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    return None


#: Ray's token authentication (2.52+): the mode, and the token of this session's local instance
AUTH_MODE, AUTH_TOKEN = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN"


@contextlib.contextmanager
def _token_auth(address: str | None) -> Iterator[None]:
    """A local instance runs with token authentication on, under a fresh random token of this session,
    whatever the Ray release's default: without it any local user's client could run code as ours.

    Ray's own processes inherit the environment, so they check the token too. A mode the user set
    (``RAY_AUTH_MODE``) or a token of theirs is respected; for a cluster (``address``) Ray's settings
    are left as they are. The environment is restored afterwards."""
    if address:
        yield
        return
    saved = {k: os.environ.get(k) for k in (AUTH_MODE, AUTH_TOKEN)}
    os.environ.setdefault(AUTH_MODE, "token")
    has_token = any(os.environ.get(k) for k in (AUTH_TOKEN, "RAY_AUTH_TOKEN_PATH")) or \
        (Path.home() / ".ray" / "auth_token").is_file()
    if os.environ[AUTH_MODE] == "token" and not has_token:
        os.environ[AUTH_TOKEN] = _TOKEN  # one per process: Ray caches the token it loaded first
    _reload_ray_config()
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _reload_ray_config()


_TOKEN = secrets.token_hex(32)


def _reload_ray_config() -> None:
    """Ray reads RAY_AUTH_MODE into a cached config when it is imported; a driver that imported ray
    before must see the mode its local instance runs with (Ray's own token setup does the same)."""
    import sys

    if "ray" in sys.modules:
        with contextlib.suppress(Exception):
            from ray._raylet import Config

            Config.initialize("")


def _local_kwargs(address: str | None) -> dict[str, Any]:
    """A local instance listens on loopback only: nothing of it is reachable from the network."""
    if address:
        return {}
    return {"include_dashboard": False, "_node_ip_address": LOOPBACK}


def _drive(ray: Any, store: Store, tasks: list[Task], ctx: TrainContext, on_run: Callable[[str, int, str], None],
           max_retries: int, out: Outcome) -> Outcome:
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    device = "cuda:0" if gpus else "cpu"  # Ray pins each GPU task to its GPU via CUDA_VISIBLE_DEVICES
    remote = ray.remote(train_block).options(
        num_returns="streaming", max_retries=0, **({"num_gpus": 1} if gpus else {"num_cpus": 1}))
    d = _Driver(ray, store, ctx, on_run, max_retries, out, remote, device, deque(rechunk(tasks, device)),
                plugins.exported())
    slots = gpus or max(1, int(resources.get("CPU", 1)))
    try:
        while d.queue or d.flights:
            for _ in range(len(d.queue)):
                if len(d.flights) >= IN_FLIGHT_PER_SLOT * slots:
                    break
                task = d.queue.popleft()
                if not d.submit(task):
                    d.queue.append(task)
            if not d.flights:
                time.sleep(POLL_SECONDS)  # every block left is being trained by another session
                continue
            ready, _ = ray.wait(list(d.flights), num_returns=1, timeout=POLL_SECONDS)
            for gen in ready:
                d.advance(gen)
    except KeyboardInterrupt:
        out.interrupted = True
        with contextlib.suppress(KeyboardInterrupt):
            _store_arrived(ray, d.flights, d.advance)
    finally:
        for gen, f in list(d.flights.items()):
            with contextlib.suppress(Exception):
                ray.cancel(gen, force=True)
            f.claim.release()
        d.flights.clear()
    return out


@dataclass
class _Driver:
    """The tasks in flight on the cluster (ObjectRefGenerator -> what it trains) and those queued."""

    ray: Any
    store: Store
    ctx: TrainContext
    on_run: Callable[[str, int, str], None]
    max_retries: int
    out: Outcome
    remote: Any
    device: str
    queue: deque
    entry_points: dict
    flights: dict = field(default_factory=dict)

    def submit(self, task: Task) -> bool:
        """Start a task unless another session holds its block. True when the queue can drop it."""
        held = claim(self.store, task, blocking=False)
        if held is None:
            return False
        if not held.todo:
            held.release()
            return True
        recipe = task.recipe()
        gen = self.remote.remote(task.recipe_json, tuple(held.todo), self.device, self.ctx, self.entry_points)
        self.flights[gen] = _Flight(task, held, set(held.todo), YieldCheck(recipe.trainer, tuple(held.todo)))
        return True

    def finish(self, gen: Any, error: str | None) -> None:
        f = self.flights.pop(gen)
        f.claim.release()
        if error is None and not f.todo:
            return
        why = error or f"the trainer returned no run for seeds {sorted(f.todo)}"
        # a retry is the same block (and lock); submit() trains only what is still missing
        self.out.retry(f.task, self.queue, why, self.max_retries, seeds=tuple(sorted(f.todo)))

    def advance(self, gen: Any) -> None:
        """Store the next run of a task whose next result is ready, or close the task."""
        f = self.flights[gen]
        try:
            ref = next(gen)
        except StopIteration:
            try:
                f.check.done()
            except StoreError as e:
                f.task.attempts = self.max_retries  # the trainer broke its contract: a retry would too
                self.finish(gen, str(e))
                return
            self.finish(gen, None)
            return
        try:
            result, where = self.ray.get(ref)
        except Exception as e:  # the task raised, or its worker or node died
            if isinstance(e, DataUnavailable):  # damaged or absent data: a retry meets it again
                f.task.attempts = self.max_retries
                self.finish(gen, (str(getattr(e, "cause", None) or e).strip().splitlines() or ["data unavailable"])[0])
                return
            self.finish(gen, f"{type(e).__name__}: {e}"[:2000])
            return
        try:
            self.store.put(f.task.key, f.check.run(result), where)
        except StoreError as e:
            if e.deterministic:  # disk full, read-only: the next attempt would fail the same way
                f.task.attempts = self.max_retries
            with contextlib.suppress(Exception):
                self.ray.cancel(gen, force=True)
            self.finish(gen, str(e))
            return
        f.todo.discard(result.seed)
        self.out.trained += 1
        self.on_run(f.task.key, result.seed, result.status)


def _store_arrived(ray: Any, flights: dict[Any, _Flight], advance: Callable[[Any], None]) -> None:
    """On Ctrl-C: keep the runs that already reached the driver, wait for nothing else."""
    while flights:
        ready, _ = ray.wait(list(flights), num_returns=len(flights), timeout=0)
        if not ready:
            return
        for gen in ready:
            if gen in flights:
                advance(gen)
