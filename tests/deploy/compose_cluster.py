"""A three-node proglog cluster from deploy/compose.yaml, driven from the host.

Each ComposeCluster is its own Compose project (its own network, /24 subnet,
volumes and 127.0.0.1 host ports), so runs never collide with each other or
with a `make compose-up` cluster. The host talks to the nodes only through
the ports Compose publishes on 127.0.0.1 (HTTP/JSON), and to Docker through
its CLI. down() removes everything the project created, and is safe to call
after any failure.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import random
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from history import History

NODES = ("n1", "n2", "n3")

# One HTTP request to a node. Long enough for a produce forwarded to the
# leader on a loaded 2-core machine (normally a few ms); short enough that a
# producer moves on from a node that has just been killed.
HTTP_TIMEOUT_S = 3.0

# How often conditions are polled.
POLL_INTERVAL_S = 0.1


class DockerError(RuntimeError):
    pass


def run(args: list[str], *, env: dict[str, str] | None = None, check: bool = True, timeout: float = 120) -> str:
    """Runs a docker/compose command; its stdout, or DockerError with stderr."""
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise DockerError(f"{' '.join(args)} exited {done.returncode}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def compose_command() -> list[str] | None:
    """`docker compose` (v2 plugin) if present, else `docker-compose`, else None."""
    for candidate in (["docker", "compose"], ["docker-compose"]):
        try:
            if subprocess.run([*candidate, "version"], capture_output=True, timeout=30).returncode == 0:
                return candidate
        except (OSError, subprocess.TimeoutExpired):
            continue
    return None


def wait_for(what: str, condition, timeout_s: float):
    """Polls condition() until it returns a truthy value, which is returned;
    AssertionError naming `what` (and the last exception, if any) at the
    deadline. An exception from condition() counts as "not yet"."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        try:
            result = condition()
            if result:
                return result
        except Exception as error:  # noqa: BLE001 - any failure means "not yet"
            last_error = error
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}{detail}")
        time.sleep(POLL_INTERVAL_S)


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _used_networks() -> list[ipaddress.IPv4Network]:
    """Subnets of every Docker network and every route on this machine."""
    used: list[ipaddress.IPv4Network] = []
    ids = run(["docker", "network", "ls", "-q"]).split()
    if ids:
        for network in json.loads(run(["docker", "network", "inspect", *ids])):
            for config in (network.get("IPAM") or {}).get("Config") or []:
                try:
                    used.append(ipaddress.IPv4Network(config.get("Subnet", ""), strict=False))
                except ValueError:
                    pass
    try:
        routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        routes = ""
    for line in routes.splitlines():
        try:
            used.append(ipaddress.IPv4Network(line.split()[0], strict=False))
        except (ValueError, IndexError):
            pass
    return used


def _pick_subnet_prefix() -> str:
    """A free /24 in 172.28.0.0/14 as "a.b.c" (compose.yaml appends .0/24)."""
    used = _used_networks()
    candidates = [f"172.{b}.{c}" for b in range(28, 32) for c in range(256)]
    random.shuffle(candidates)
    for prefix in candidates:
        net = ipaddress.IPv4Network(f"{prefix}.0/24")
        if not any(net.overlaps(other) for other in used if other.prefixlen > 0):
            return prefix
    raise DockerError("no free /24 in 172.28.0.0/14 for the test network")


class ProduceFailed(Exception):
    pass


class ComposeCluster:
    def __init__(self, root: Path, image: str, project: str, compose: list[str]):
        self.root = root
        self.image = image
        self.project = project
        self.compose = compose
        self.compose_file = root / "deploy" / "compose.yaml"
        self.rpc_ports: dict[str, int] = {}
        self.metrics_ports: dict[str, int] = {}
        self.subnet_prefix = ""
        self._env: dict[str, str] = {}

    # --- lifecycle ---------------------------------------------------------

    def up(self) -> None:
        """Creates and starts the three nodes (retrying with another subnet
        or ports if a concurrent run took them first)."""
        attempts = 4
        for attempt in range(attempts):
            self.subnet_prefix = _pick_subnet_prefix()
            ports = _free_ports(2 * len(NODES))
            self.rpc_ports = dict(zip(NODES, ports[: len(NODES)]))
            self.metrics_ports = dict(zip(NODES, ports[len(NODES) :]))
            env = dict(os.environ)
            env["PROGLOG_IMAGE"] = self.image
            env["PROGLOG_SUBNET_PREFIX"] = self.subnet_prefix
            for node in NODES:
                env[f"PROGLOG_{node.upper()}_RPC_PORT"] = str(self.rpc_ports[node])
                env[f"PROGLOG_{node.upper()}_METRICS_PORT"] = str(self.metrics_ports[node])
            self._env = env
            try:
                self._compose("up", "-d")
                return
            except DockerError:
                self.down()
                if attempt == attempts - 1:
                    raise

    def down(self) -> None:
        """Removes the project's containers, network and volumes; then,
        whatever Compose managed, anything else still labelled with it."""
        if self._env:
            self._compose("down", "-v", "--remove-orphans", "-t", "1", check=False)
        label = f"label=com.docker.compose.project={self.project}"
        containers = run(["docker", "ps", "-aq", "--filter", label], check=False).split()
        if containers:
            run(["docker", "rm", "-f", "-v", *containers], check=False)
        networks = run(["docker", "network", "ls", "-q", "--filter", label], check=False).split()
        if networks:
            run(["docker", "network", "rm", *networks], check=False)
        volumes = run(["docker", "volume", "ls", "-q", "--filter", label], check=False).split()
        if volumes:
            run(["docker", "volume", "rm", "-f", *volumes], check=False)

    def leftovers(self) -> list[str]:
        """Whatever of this project still exists (empty after down())."""
        label = f"label=com.docker.compose.project={self.project}"
        found = []
        for kind in (["ps", "-aq"], ["network", "ls", "-q"], ["volume", "ls", "-q"]):
            found += run(["docker", *kind, "--filter", label], check=False).split()
        return found

    def _compose(self, *args: str, check: bool = True) -> str:
        return run([*self.compose, "-p", self.project, "-f", str(self.compose_file), *args], env=self._env, check=check)

    # --- containers --------------------------------------------------------

    def container(self, node: str) -> str:
        ids = run(
            [
                "docker", "ps", "-aq",
                "--filter", f"label=com.docker.compose.project={self.project}",
                "--filter", f"label=com.docker.compose.service={node}",
            ]
        ).split()
        if len(ids) != 1:
            raise DockerError(f"expected one container for {node}, found {ids}")
        return ids[0]

    def network(self) -> str:
        names = run(
            ["docker", "network", "ls", "--format", "{{.Name}}", "--filter", f"label=com.docker.compose.project={self.project}"]
        ).split()
        if len(names) != 1:
            raise DockerError(f"expected one network, found {names}")
        return names[0]

    def ip(self, node: str) -> str:
        return f"{self.subnet_prefix}.{10 + NODES.index(node) + 1}"

    def kill(self, node: str) -> None:
        """SIGKILL, returning once the process is gone (`docker wait`), so
        nothing acknowledged afterwards can have come from it."""
        container = self.container(node)
        run(["docker", "kill", container])
        run(["docker", "wait", container])

    def stop(self, node: str, grace_s: int) -> float:
        """docker stop with a grace period; the seconds it took."""
        started = time.monotonic()
        run(["docker", "stop", "-t", str(grace_s), self.container(node)], timeout=grace_s + 60)
        return time.monotonic() - started

    def start(self, node: str) -> None:
        run(["docker", "start", self.container(node)])

    def exit_code(self, node: str) -> int:
        return int(run(["docker", "inspect", "-f", "{{.State.ExitCode}}", self.container(node)]).strip())

    def disconnect(self, node: str) -> None:
        run(["docker", "network", "disconnect", self.network(), self.container(node)])

    def connect(self, node: str) -> None:
        """Reconnects with the node's fixed IP (gossip advertises it) and its
        service name (peers dial the advertised RPC name)."""
        run(["docker", "network", "connect", "--ip", self.ip(node), "--alias", node, self.network(), self.container(node)])

    def logs(self, node: str) -> str:
        done = subprocess.run(["docker", "logs", self.container(node)], capture_output=True, text=True, timeout=60)
        return done.stdout + done.stderr

    def all_logs(self, tail: int = 40) -> str:
        parts = []
        for node in NODES:
            try:
                lines = self.logs(node).splitlines()[-tail:]
            except Exception as error:  # noqa: BLE001 - diagnostics only
                lines = [f"(no logs: {error})"]
            parts.append(f"--- {node} (last {tail} lines)\n" + "\n".join(lines))
        return "\n".join(parts)

    # --- HTTP --------------------------------------------------------------

    def _request(self, port: int, method: str, path: str, body: dict | None = None, timeout: float = HTTP_TIMEOUT_S):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
        if data is not None:
            request.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")

    def api(self, node: str, method: str, path: str, body: dict | None = None):
        return self._request(self.rpc_ports[node], method, path, body)

    def ready(self, node: str) -> bool:
        """/readyz on the metrics port: a leader is known and this node has
        applied what it knows to be committed."""
        status, _ = self._request(self.metrics_ports[node], "GET", "/readyz")
        return status == 200

    def produce(self, node: str, value: str) -> int:
        encoded = base64.b64encode(value.encode()).decode()
        status, body = self.api(node, "POST", "/v1/records", {"record": {"value": encoded}})
        if status != 200:
            raise ProduceFailed(f"{node}: HTTP {status} {body}")
        return int(body["offset"])

    def leader(self, node: str) -> str | None:
        """The leader as `node` sees it (alive members only), or None."""
        status, body = self.api(node, "GET", "/v1/servers")
        if status != 200:
            return None
        leaders = [s["id"] for s in body["servers"] if s.get("isLeader") and s.get("state") == "alive"]
        return leaders[0] if len(leaders) == 1 else None

    def next_offset(self, node: str) -> int:
        status, body = self.api(node, "GET", "/v1/info")
        if status != 200:
            raise ProduceFailed(f"{node}: /v1/info HTTP {status} {body}")
        return int(body["nextOffset"])

    def read_all(self, node: str) -> list[tuple[int, str]]:
        """Every record `node` serves, from offset 0 to its next offset."""
        end = self.next_offset(node)
        records: list[tuple[int, str]] = []
        while len(records) < end:
            status, body = self.api(node, "GET", f"/v1/records?from={len(records)}&limit=10000")
            if status != 200:
                raise ProduceFailed(f"{node}: read from {len(records)}: HTTP {status} {body}")
            batch = body["records"]
            if not batch:
                break
            for record in batch:
                records.append((int(record.get("offset", 0)), base64.b64decode(record.get("value", "")).decode()))
        return records

    # --- conditions --------------------------------------------------------

    def wait_ready(self, nodes=NODES, timeout_s: float = 60) -> None:
        wait_for(f"{', '.join(nodes)} ready", lambda: all(self.ready(n) for n in nodes), timeout_s)

    def wait_leader(self, nodes, timeout_s: float) -> str:
        """Until every node in `nodes` names the same leader, itself among
        `nodes`; that leader."""

        def agreed():
            seen = {self.leader(n) for n in nodes}
            if len(seen) == 1:
                (leader,) = seen
                if leader in nodes:
                    return leader
            return None

        return wait_for(f"one leader among {', '.join(nodes)}", agreed, timeout_s)

    def wait_same_log(self, history: History, timeout_s: float) -> dict[str, list[tuple[int, str]]]:
        """Until every node serves as many records as the highest acked offset
        needs and all three serve the same count; then everything each one
        serves (read from every replica)."""
        needed = max(history.acked.values(), default=-1) + 1

        def caught_up():
            counts = {n: self.next_offset(n) for n in NODES}
            return len(set(counts.values())) == 1 and min(counts.values()) >= needed

        wait_for(f"every replica to hold {needed}+ records and agree", caught_up, timeout_s)
        return {node: self.read_all(node) for node in NODES}


class Producer:
    """Writes unique values in a loop from a thread, through whichever of
    `targets()` answers, never retrying a value (see history.py)."""

    def __init__(self, cluster: ComposeCluster, prefix: str, targets):
        self.cluster = cluster
        self.prefix = prefix
        self.targets = targets
        self.history = History()
        # (sent, acknowledged) monotonic times of every acked write.
        self.ack_times: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"producer-{prefix}", daemon=True)
        self._lock = threading.Lock()

    def __enter__(self) -> "Producer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=HTTP_TIMEOUT_S * 3)

    def acks(self) -> int:
        with self._lock:
            return len(self.history.acked)

    def acks_since(self, moment: float) -> int:
        with self._lock:
            return sum(1 for sent, _ in self.ack_times if sent >= moment)

    def first_ack_sent_after(self, moment: float) -> float | None:
        """When the first write *sent* after `moment` was acknowledged."""
        with self._lock:
            later = [acked for sent, acked in self.ack_times if sent >= moment]
        return min(later) if later else None

    def _run(self) -> None:
        sequence = 0
        while not self._stop.is_set():
            targets = list(self.targets())
            node = targets[sequence % len(targets)]
            value = f"{self.prefix}-{sequence}"
            sequence += 1
            sent = time.monotonic()
            try:
                offset = self.cluster.produce(node, value)
            except Exception:  # noqa: BLE001 - any failure: outcome unknown
                with self._lock:
                    self.history.unknown.add(value)
                # A refused or dead node: back off briefly, not in a hot loop.
                self._stop.wait(0.05)
                continue
            with self._lock:
                self.history.acked[value] = offset
                self.ack_times.append((sent, time.monotonic()))
