"""Start a whole Flower federation on this machine (127.0.0.1 only) and run an FL job on it.

:class:`LocalFederation` starts one SuperLink and N SuperNodes (``partition-id=i
num-partitions=N``) on free loopback ports, with a temporary ``FLWR_HOME`` holding the
federation's ``config.toml`` (``FLWR_TELEMETRY_ENABLED=0``, ``FLWR_DISABLE_UPDATE_CHECK=1``),
writes the app (a pyproject.toml whose components are ``fl.flower.server_app:app`` and
``fl.flower.client_app:app`` and whose ``[tool.flwr.app.config]`` is the run config),
submits it with ``flwr run APP FEDERATION`` and waits for the ServerApp's result file.
Every process it starts is its own process group (``start_new_session``); :meth:`close`
(also on errors, timeouts and interpreter exit) sends SIGTERM to each of those groups by
PID, then SIGKILL to whatever is left. The launched processes import *this* checkout of
``fl``/``privcrypt`` (its root goes first on ``PYTHONPATH``).

``run_flower(cfg, dataset, n_clients)`` is the one-call form for ``privcrypt fl run
--engine flower``.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fl.config import FLConfig
from fl.flower.config import to_run_config

__all__ = ["LocalFederation", "run_flower", "free_port", "write_app", "group_alive", "provision_ckks",
           "provision_identities"]

_ROOT = Path(__file__).resolve().parents[2]  # the checkout that holds fl/ and privcrypt/


def _find_bin() -> Path:
    """The folder holding flwr's console scripts: next to this interpreter (a venv), else
    wherever ``flower-superlink`` is on PATH."""
    here = Path(sys.executable).parent
    if (here / "flower-superlink").exists():
        return here
    found = shutil.which("flower-superlink")
    return Path(found).parent if found else here


_BIN = _find_bin()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_alive(pgid: int) -> list[int]:
    """PIDs of the live (not zombie) processes in process group ``pgid`` (Linux: from
    /proc; elsewhere ``[pgid]`` if the group can still be signalled)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    out = []
    for d in proc.iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        if fields[0] != "Z" and int(fields[2]) == pgid:
            out.append(int(d.name))
    return out


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v) if not isinstance(v, float) else repr(float(v))
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    raise ValueError(f"run config values must be bool, int, float or str, got {type(v).__name__}")


def write_app(app_dir, run_config: dict) -> Path:
    """Write the Flower app (pyproject.toml only; the code is the installed ``fl``
    package) with ``run_config`` as its ``[tool.flwr.app.config]``."""
    app_dir = Path(app_dir)
    app_dir.mkdir(parents=True, exist_ok=True)
    lines = ['[build-system]', 'requires = ["hatchling"]', 'build-backend = "hatchling.build"', '',
             '[project]', 'name = "privcrypt-fl"', 'version = "1.0.0"',
             'description = "privcrypt FL rounds with secure aggregation on Flower"',
             'license = "Apache-2.0"', 'dependencies = []', '',
             '[tool.flwr.app]', 'publisher = "privcrypt"', '',
             '[tool.flwr.app.components]', 'serverapp = "fl.flower.server_app:app"',
             'clientapp = "fl.flower.client_app:app"', '', '[tool.flwr.app.config]']
    for k, v in run_config.items():
        key = ".".join(json.dumps(p) for p in k.split("."))
        lines.append(f"{key} = {_toml_value(v)}")
    (app_dir / "pyproject.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return app_dir


class LocalFederation:
    """A SuperLink and ``n_nodes`` SuperNodes on loopback (see module docstring). Use as a
    context manager. ``workdir``: where FLWR_HOME, the app and the logs go (default: a
    temporary folder removed on close unless ``keep``)."""

    def __init__(self, n_nodes: int, *, workdir=None, keep: bool = False, startup_timeout: float = 60.0):
        if int(n_nodes) < 1:
            raise ValueError("n_nodes must be >= 1")
        self.n = int(n_nodes)
        self._own_dir = workdir is None
        self.dir = Path(tempfile.mkdtemp(prefix="pc-flower-")) if workdir is None else Path(workdir)
        self.keep = keep or not self._own_dir
        self.home = self.dir / "flwr_home"
        self.startup_timeout = float(startup_timeout)
        self.procs: dict[str, subprocess.Popen] = {}
        #: extra ``--node-config`` entries for every SuperNode (e.g. ``ckks-context``)
        self.node_config_extra: dict[str, str] = {}
        #: extra ``--node-config`` entries for SuperNode ``i`` only (e.g. ``identity-key``)
        self.node_config_per_node: dict[int, dict[str, str]] = {}
        self.port = None
        self.env = dict(os.environ)
        self.env.update(FLWR_HOME=str(self.home), FLWR_TELEMETRY_ENABLED="0", FLWR_DISABLE_UPDATE_CHECK="1",
                        PATH=f"{_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                        PYTHONPATH=os.pathsep.join([str(_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
                        PYTHONUNBUFFERED="1",
                        # SuperExec's task poll (default 1 s); the SuperNode's own 3 s idle
                        # poll of the SuperLink is fixed in flwr 1.42
                        FLWR_SUPEREXEC_TASK_POLL_INTERVAL="0.1")
        atexit.register(self.close)

    # -- processes --------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "wb")
        try:
            p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.dir,
                                 start_new_session=True)
        finally:
            log.close()
        self.procs[name] = p
        return p

    def _wait_port(self, port: int) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.procs["superlink"].poll() is not None:
                raise RuntimeError(f"the SuperLink exited; see {self.dir / 'superlink.log'}")
            with socket.socket() as s:
                s.settimeout(0.5)
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"the SuperLink did not listen on 127.0.0.1:{port} within {self.startup_timeout:g} s")

    def start(self) -> "LocalFederation":
        """Start the SuperLink, wait until it listens, then start the SuperNodes. Raises
        ``FileNotFoundError`` when flwr's console scripts are not installed."""
        if not (_BIN / "flower-superlink").exists():
            raise FileNotFoundError("flower-superlink not found next to this Python or on PATH: "
                                    "pip install 'privcrypt[flower]'")
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        (self.home / "config.toml").write_text(
            f'[superlink]\ndefault = "local-fl"\n\n[superlink.local-fl]\naddress = "127.0.0.1:{self.port}"\n'
            'insecure = true\n', encoding="utf-8")
        self._spawn("superlink", [str(_BIN / "flower-superlink"), "--insecure", "--host", "127.0.0.1",
                                  "--port", str(self.port), "--disable-runtime-dependency-installation"])
        self._wait_port(self.port)
        for i in range(self.n):
            self._spawn(f"supernode-{i}", [str(_BIN / "flower-supernode"), "--insecure", "--superlink",
                                           f"127.0.0.1:{self.port}", "--host", "127.0.0.1", "--port",
                                           str(free_port()), "--node-config",
                                           " ".join([f"partition-id={i} num-partitions={self.n}",
                                                     *(f"{k}={json.dumps(v)}" for k, v in
                                                       {**self.node_config_extra,
                                                        **self.node_config_per_node.get(i, {})}.items())])])
        return self

    def pid(self, name: str) -> int:
        """PID (= process group id) of ``"superlink"`` or ``"supernode-I"``."""
        return self.procs[name].pid

    def stop(self, name: str, *, grace: float = 10.0) -> None:
        """Stop one process we started (SIGTERM to its group by PID, SIGKILL after
        ``grace`` s)."""
        p = self.procs.get(name)
        if p is None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(p.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                p.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # children (SuperExec, app processes) share the group; reap stragglers
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def close(self) -> None:
        """Stop every process this object started (SuperNodes first), remove the temporary
        folder unless kept. Safe to call twice."""
        for name in sorted(self.procs, key=lambda n: n == "superlink"):
            self.stop(name, grace=5.0)
        self.procs.clear()
        if not self.keep and self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "LocalFederation":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- running an app ---------------------------------------------------------------
    def submit(self, run_config: dict) -> Path:
        """Write the app with ``run_config`` (its ``result_file`` set inside the work
        folder unless given) and submit it with ``flwr run``; returns the result file."""
        rc = dict(run_config)
        if not rc.get("result_file"):
            rc["result_file"] = str(self.dir / "result.json")
        result = Path(rc["result_file"])
        result.unlink(missing_ok=True)
        app = write_app(self.dir / "app", rc)
        out = subprocess.run([str(_BIN / "flwr"), "run", str(app), "local-fl"], env=self.env, cwd=self.dir,
                             capture_output=True, timeout=self.startup_timeout + 60)
        (self.dir / "flwr-run.log").write_bytes(out.stdout + out.stderr)
        if out.returncode != 0:
            raise RuntimeError(f"flwr run failed ({out.returncode}): {out.stdout.decode()[-2000:]}"
                               f"{out.stderr.decode()[-2000:]}")
        return result

    def run_status(self) -> list[dict]:
        """``flwr ls --format json``'s runs (``status`` e.g. ``"running"``,
        ``"finished:completed"``, ``"finished:failed"`` with ``status-details``)."""
        out = subprocess.run([str(_BIN / "flwr"), "ls", "local-fl", "--format", "json"], env=self.env,
                             cwd=self.dir, capture_output=True, timeout=120)
        try:
            return list(json.loads(out.stdout.decode("utf-8", "replace")).get("runs", []))
        except (ValueError, AttributeError):
            return []

    def wait_result(self, result: Path, timeout: float, *, poll: float = 0.2, status_every: float = 15.0) -> dict:
        """Wait for the ServerApp to write ``status`` ok or error to ``result``. Every
        ``status_every`` s also asks ``flwr ls``: a run that finished without writing the
        file (the ServerApp failed before it could) raises ``RuntimeError`` at once."""
        deadline = time.monotonic() + timeout
        next_status = time.monotonic() + status_every
        while time.monotonic() < deadline:
            if time.monotonic() >= next_status and not result.exists():
                next_status = time.monotonic() + status_every
                for run in self.run_status():
                    st = str(run.get("status", ""))
                    if st.startswith("finished") and st != "finished:completed":
                        raise RuntimeError(f"the Flower run {st}: {run.get('status-details', '')}")
            if result.exists():
                try:
                    data = json.loads(result.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    data = {}
                if data.get("status") in ("ok", "error"):
                    return data
            if self.procs["superlink"].poll() is not None:
                raise RuntimeError(f"the SuperLink exited; see {self.dir / 'superlink.log'}")
            time.sleep(poll)
        raise TimeoutError(f"no result in {result} within {timeout:g} s; logs in {self.dir}")


def run_flower(cfg: FLConfig, dataset: str = "digits", n_clients: int = 3, *, partition: str = "",
               alpha: float = 0.5, model: str = "", stage_timeout: float = 120.0, timeout: float = 3600.0,
               workdir=None, **deploy) -> dict:
    """Run ``cfg`` on ``dataset`` split over ``n_clients`` SuperNodes of a loopback
    federation (:class:`LocalFederation`) and return the result dict (``status``,
    ``final``, ``rounds``, ``config``, ``flower``: per-stage timings). Raises
    ``RuntimeError`` if the ServerApp failed (its error message included) and
    ``TimeoutError`` after ``timeout`` s; every process is stopped either way."""
    rc = to_run_config(cfg, dataset=dataset, partition=partition, alpha=alpha, model=model,
                       num_clients=n_clients, stage_timeout=stage_timeout, **deploy)
    fed = LocalFederation(n_clients, workdir=workdir)
    try:
        if cfg.backend == "ckks":
            bp = cfg.backend_params
            cpath, spath = provision_ckks(fed.dir, bp.get("params", "n4096-q60"),
                                          max_clients=bp.get("max_clients", 256))
            fed.node_config_extra["ckks-context"] = str(cpath)
            rc["ckks_server_context"] = str(spath)
        if cfg.backend == "masking" and cfg.backend_params.get("authenticated"):
            keys, epath = provision_identities(fed.dir, n_clients)
            for i, kp in enumerate(keys):
                fed.node_config_per_node[i] = {"identity-key": str(kp), "enrolment": str(epath)}
            rc["enrolment_file"] = str(epath)
        fed.start()
        t0 = time.perf_counter()
        res = fed.wait_result(fed.submit(rc), timeout)
        res.setdefault("flower", {})["wall_s"] = time.perf_counter() - t0
    finally:
        fed.close()
    if res.get("status") != "ok":
        raise RuntimeError(f"the Flower ServerApp failed: {res.get('error')}")
    return res


def provision_ckks(out_dir, params: str = "n4096-q60", *, max_clients: int = 256, rng=None) -> tuple[Path, Path]:
    """CKKS provisioning for a loopback federation (``privcrypt.secagg.ckks.CkksKeyDealer``):
    writes ``ckks-client.ctx`` (SECRET key context, mode 0600; every client gets it, as
    in the ckks threat model) and ``ckks-server.ctx`` (public, no key) into ``out_dir``.
    On several machines, copy the client file to each SuperNode over a secure channel."""
    from privcrypt.secagg.ckks import CkksKeyDealer

    dealer = CkksKeyDealer(params, max_clients=int(max_clients), rng=rng)
    out = Path(out_dir)
    cpath, spath = out / "ckks-client.ctx", out / "ckks-server.ctx"
    fd = os.open(cpath, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(dealer.client_context())
    spath.write_bytes(dealer.server_context())
    return cpath, spath


def provision_identities(out_dir, n_clients: int, *, rng=None) -> tuple[list[Path], Path]:
    """Ed25519 identities for a loopback federation's authenticated masking: writes
    ``identity-I.key`` (client I's 32-byte private seed, SECRET, mode 0600) and
    ``enrolment.json`` (every client's public key, :func:`privcrypt.identity.save_enrolment`)
    into ``out_dir``. On several machines, generate each node's key on that node and collect
    only the public keys into the enrolment, which every node and the SuperLink read."""
    from privcrypt.identity import IdentityKey, save_enrolment
    from privcrypt.rng import child_rng, resolve_rng

    base = resolve_rng(rng)
    out, paths, enrol = Path(out_dir), [], {}
    for i in range(int(n_clients)):
        key = IdentityKey.generate(rng=child_rng(base, f"identity-{i}"))
        path = out / f"identity-{i}.key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.private_bytes())
        paths.append(path)
        enrol[i] = key.public
    epath = out / "enrolment.json"
    save_enrolment(epath, enrol)
    return paths, epath
