"""Nothing listens beyond loopback, every write stays where it belongs, untrusted files are never unpickled freely."""
from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.report.baseline import main as baseline_main
from harness.data import cifar10
from harness.data.catalog import DataUnavailable


# ------------------------------------------------------------------ Ray: loopback --

def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _addr(hex_addr: str) -> str:
    ip, port = hex_addr.split(":")
    raw = bytes.fromhex(ip)
    if len(raw) == 4:
        return f"{socket.inet_ntop(socket.AF_INET, raw[::-1])}:{int(port, 16)}"
    # /proc/net/tcp6 stores the address as four little-endian 32-bit words
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return f"[{socket.inet_ntop(socket.AF_INET6, words)}]:{int(port, 16)}"


def listening_addresses(pids: list[int]) -> list[str]:
    """TCP addresses the processes ``pids`` listen on, read from /proc (Linux)."""
    inodes = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    out = []
    for proto in ("tcp", "tcp6"):
        with open(f"/proc/net/{proto}") as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[3] == "0A" and parts[9] in inodes:  # 0A: LISTEN
                    out.append(_addr(parts[1]))
    return out


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    return host.startswith("127.") or host in ("::1", "::ffff:127.0.0.1") or host.startswith("::ffff:127.")


def test_the_listener_check_sees_a_socket_open_to_the_network():
    """Negative control: a socket on all interfaces is reported, and is not loopback."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        found = [a for a in listening_addresses([os.getpid()]) if a.endswith(f":{port}")]
    assert found == [f"0.0.0.0:{port}"] and not is_loopback(found[0])


RAY_SESSION = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, {tests!r})
    from test_security import _descendants, listening_addresses
    from harness import Ensemble, Recipe
    from harness.execute.tasks import make_tasks
    from harness.execute.plan import make_plan
    from harness.execute.ray import train_ray
    from harness.store.index import Store
    from harness.trainers import TrainContext
    r = Recipe(trainer="mlp", dataset="teacher", model="mlp", lr=0.3, batch_size=16, steps=10, probes=("logits",),
               options={{"n_train": 64, "n_test": 16}})
    store = Store({root!r})
    seen, auth = [], {{}}
    def on_run(key, seed, status):
        if not seen:  # while the instance is up: every process it started is our descendant
            pids = _descendants(os.getpid())
            seen.extend(listening_addresses(pids))
            for pid in pids:
                try:
                    env = dict(v.split("=", 1) for v in open(f"/proc/{{pid}}/environ").read().split("\\0") if "=" in v)
                    cmd = open(f"/proc/{{pid}}/cmdline").read().replace("\\0", " ")
                except OSError:
                    continue
                # the GCS and raylet binaries (a ray:: worker's title overwrites what /proc shows as its environment)
                if int(pid) != os.getpid() and ("gcs_server" in cmd or "raylet/raylet" in cmd):
                    auth[pid] = [env.get("RAY_AUTH_MODE"), len(env.get("RAY_AUTH_TOKEN", "")), cmd[:80]]
    out = train_ray(store, make_tasks(make_plan([Ensemble(r, 2)], store, "cpu"), "cpu"), TrainContext(), on_run)
    print(json.dumps({{"trained": out.trained, "failed": len(out.failed), "listening": seen, "auth": auth,
                      "env_after": os.environ.get("RAY_AUTH_MODE")}}))
    """
)


def test_a_local_ray_instance_listens_on_loopback_only_and_checks_a_token(tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed: pip install -e '.[dev,ray]'")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}  # our code must set what it needs
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    script = RAY_SESSION.format(tests=os.path.dirname(__file__), root=str(tmp_path / "st"))
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["trained"] == 2 and out["failed"] == 0
    assert len(out["listening"]) >= 2  # GCS and raylet at least: the check saw the instance
    assert [a for a in out["listening"] if not is_loopback(a)] == []
    # token authentication on in every process of the instance, whatever the release's default
    # the token is the session's own (in the environment), or one Ray keeps in ~/.ray/auth_token
    token_file = (Path.home() / ".ray" / "auth_token").is_file()
    assert len(out["auth"]) >= 2 and all(mode == "token" and (n >= 32 or token_file)
                                         for mode, n, _ in out["auth"].values()), out["auth"]
    assert out["env_after"] is None  # the driver's environment is restored


def test_the_ray_extra_requires_a_version_with_token_authentication():
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert 'ray = ["ray>=2.52"]' in text  # 2.52.0 introduced RAY_AUTH_MODE=token


# ------------------------------------------------------------ baseline: confined --

def _report(tier: str) -> dict:
    return {"version": 1, "run_id": "r1", "tier": tier, "started": 1.0, "entries": []}


@pytest.mark.parametrize("tier", ["../../../victim", "/tmp/abs", "smoke/../../x", "", None, 3])
def test_baseline_refuses_a_tier_that_is_not_a_known_tier(tmp_path, capsys, tier):
    run = tmp_path / "results" / "run1"
    run.mkdir(parents=True)
    (run / "report.json").write_text(json.dumps(_report(tier)))
    victim = tmp_path / "victim"
    (victim / "plots").mkdir(parents=True)
    (victim / "plots" / "keep.png").write_text("x")
    before = sorted(p for p in tmp_path.rglob("*"))
    assert baseline_main([str(run), "--root", str(tmp_path / "repo")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "not one of smoke, gpu, paper" in err if isinstance(tier, str) else "is not of type 'string'" in err
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing written, nothing deleted


def test_baseline_does_not_follow_a_planted_link_out_of_results_baseline(tmp_path, capsys):
    run = tmp_path / "results" / "run1"
    (run / "plots").mkdir(parents=True)
    (run / "report.json").write_text(json.dumps(_report("gpu")))
    outside = tmp_path / "outside"
    (outside / "plots").mkdir(parents=True)
    (outside / "plots" / "keep.png").write_text("x")
    base = tmp_path / "repo" / "results" / "baseline"
    base.mkdir(parents=True)
    (base / "gpu").symlink_to(outside)
    assert baseline_main([str(run), "--root", str(tmp_path / "repo")]) == 2
    assert "outside" in capsys.readouterr().err
    assert (outside / "plots" / "keep.png").exists() and not (outside / "report.json").exists()


def test_baseline_of_a_known_tier_still_works(tmp_path):
    run = tmp_path / "results" / "run1"
    run.mkdir(parents=True)
    (run / "report.json").write_text(json.dumps(_report("gpu")))
    assert baseline_main([str(run), "--root", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "results" / "baseline" / "gpu" / "report.json").read_text())["tier"] == "gpu"


# ------------------------------------------------------- CIFAR-10: no free unpickling --

# The 24-byte pickle of the report: a GLOBAL naming numpy.f2py.__main__ with an allowed name.
F2PY = b"cnumpy.f2py.__main__\ndtype\n."


def test_cifar_unpickler_never_imports_a_module_outside_the_allow_list(tmp_path):
    assert len(F2PY) <= 32
    path = tmp_path / "data_batch_1"
    path.write_bytes(F2PY)
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from harness.data.cifar10 import _read_batch
        from harness.data.catalog import DataUnavailable
        try:
            _read_batch(Path({str(path)!r}))
        except DataUnavailable as e:
            print("refused:", e)
        print("imported" if "numpy.f2py.__main__" in sys.modules or "numpy.f2py" in sys.modules else "clean")
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    lines = res.stdout.strip().splitlines()
    assert lines[-1] == "clean", res.stdout + res.stderr
    assert lines[0].startswith("refused:") and "numpy.f2py.__main__.dtype" in lines[0]


@pytest.mark.parametrize("module,name", [("numpy", "load"), ("numpy.lib.npyio", "ndarray"), ("os", "system"),
                                         ("builtins", "eval"), ("numpy.testing", "dtype")])
def test_cifar_unpickler_allows_exact_pairs_only(tmp_path, module, name):
    path = tmp_path / "data_batch_1"
    path.write_bytes(f"c{module}\n{name}\n.".encode())
    with pytest.raises(DataUnavailable, match=f"refers to {module}.{name}"):
        cifar10._read_batch(path)


def test_a_real_cifar_batch_still_loads(tmp_path):
    import numpy as np

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [1, 2]}, protocol=2))
    x, y = cifar10._read_batch(path)
    assert tuple(x.shape) == (2, 3, 32, 32) and y.tolist() == [1, 2]


RAY_CLIENT = textwrap.dedent(
    """
    import json, os, subprocess, sys, tempfile
    import ray  # imported before the executor sets the mode: it must still take effect
    from harness import Ensemble, Recipe
    from harness.execute.tasks import make_tasks
    from harness.execute.plan import make_plan
    from harness.execute.ray import train_ray
    from harness.store.index import Store
    from harness.trainers import TrainContext
    r = Recipe(trainer="mlp", dataset="teacher", model="mlp", lr=0.3, batch_size=16, steps=10, probes=("logits",),
               options={{"n_train": 64, "n_test": 16}})
    store = Store({root!r})
    CLIENT = ("import ray, sys\\ntry:\\n    ray.init(address=sys.argv[1], log_to_driver=False)\\n"
              "    print('CONNECTED', ray.get(ray.remote(lambda: 1).remote()))\\n"
              "except Exception as e:\\n    print('REFUSED', type(e).__name__)\\n")
    seen = {{}}
    def on_run(key, seed, status):
        if seen:
            return
        gcs = "127.0.0.1:" + ray._private.worker.global_worker.node.gcs_address.rsplit(":", 1)[1]
        env = {{k: v for k, v in os.environ.items() if not k.startswith("RAY_")}}
        env["HOME"] = tempfile.mkdtemp()  # no token file of ours either
        try:
            res = subprocess.run([sys.executable, "-c", CLIENT, gcs], capture_output=True, text=True, timeout=90, env=env)
            seen["client"] = (res.stdout.strip().splitlines() or ["?"])[-1]
        except subprocess.TimeoutExpired:
            seen["client"] = "TIMEOUT"
    out = train_ray(store, make_tasks(make_plan([Ensemble(r, 2)], store, "cpu"), "cpu"), TrainContext(), on_run)
    print(json.dumps({{"trained": out.trained, **seen}}))
    """
)


@pytest.mark.parametrize("mode", [None, "disabled"], ids=["default", "control-auth-disabled"])
def test_a_client_without_the_token_cannot_use_the_local_ray_instance(tmp_path, mode):
    """Another local user's client must not run code in our instance. Control: with authentication turned
    off on purpose (RAY_AUTH_MODE=disabled, which lrlaws respects), the same client gets in."""
    pytest.importorskip("ray", reason="the ray extra is not installed: pip install -e '.[dev,ray]'")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    if mode:
        env["RAY_AUTH_MODE"] = mode
    script = RAY_CLIENT.format(root=str(tmp_path / "st"))
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=400)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["trained"] == 2
    assert out["client"].startswith("CONNECTED" if mode else "REFUSED"), out
