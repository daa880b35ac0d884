"""Fixtures that run a real `proglog agent` process for the client tests.

The binary comes from PROGLOG_BIN (run.sh sets it); the stubs generated from
proto/proglog/v1/log.proto live in ./gen (run.sh makes them).
"""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "gen"))

from proglog.v1 import log_pb2, log_pb2_grpc  # noqa: E402  (generated)

# Seconds a node gets to print its address, to report SERVING, and to exit.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
# Deadline of every unary call the tests make.
RPC_TIMEOUT = 10.0
LISTENING = "listening for gRPC and HTTP"


def proglog_bin() -> Path:
    value = os.environ.get("PROGLOG_BIN")
    if value:
        path = Path(value)
    else:
        path = HERE.parent.parent / "target" / "debug" / "proglog"
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.exit(
            f"no proglog binary at {path}: run tests/python/run.sh, or set PROGLOG_BIN",
            returncode=2,
        )
    return path


def child_env() -> dict:
    """The environment for the agent, without PROGLOG_* variables.

    The agent reads every PROGLOG_* variable as configuration and refuses
    unknown keys, so PROGLOG_BIN itself would stop it from starting.
    """
    return {k: v for k, v in os.environ.items() if not k.startswith("PROGLOG_")}


class Node:
    """One `proglog agent` process with its channel and stubs."""

    def __init__(self, binary: Path, data_dir: Path, workdir: Path, extra_args=()):
        self.binary = binary
        self.data_dir = data_dir
        self.workdir = workdir
        self.extra_args = list(extra_args)
        self.proc = None
        self.addr = None
        self.channel = None
        self.stub = None
        self.health = None
        self.log_lines = []
        self.starts = 0

    # -- lifecycle -------------------------------------------------------

    def start(self):
        """Starts the node and waits until it listens and reports SERVING."""
        self.spawn()
        return self.wait_started()

    def spawn(self):
        """Starts the process without waiting (nodes of a new replicated
        cluster listen only once all of them are up)."""
        assert self.proc is None, "node already running"
        self.starts += 1
        self.log_lines.append(f"--- start #{self.starts}")
        cmd = [
            str(self.binary),
            "agent",
            "--data-dir",
            str(self.data_dir),
            "--rpc-addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
            *self.extra_args,
        ]
        stdout = open(self.workdir / f"stdout.{self.starts}.log", "wb")
        try:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.PIPE,
                cwd=self.workdir,
                env=child_env(),
            )
        finally:
            stdout.close()
        self._addresses = queue.Queue()
        threading.Thread(
            target=self._read_stderr, args=(self.proc, self._addresses), daemon=True
        ).start()
        return self

    def wait_started(self):
        """Waits for the listening address, then for SERVING."""
        deadline = time.monotonic() + START_TIMEOUT
        try:
            addr = self._addresses.get(timeout=START_TIMEOUT)
        except queue.Empty:
            self._abort(f"no '{LISTENING}' line within {START_TIMEOUT}s")
        if addr is None:
            self._abort(f"exited with {self.proc.wait()} before listening")
        self.addr = addr
        self.channel = grpc.insecure_channel(addr)
        self.stub = log_pb2_grpc.LogStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self._wait_serving(deadline)
        return self

    def _read_stderr(self, proc, addresses):
        """Drains stderr for the process's whole life (so it never blocks on
        a full pipe), keeps the lines, and hands over the listening address."""
        told = False
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.log_lines.append(line)
            if told:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("message") == LISTENING:
                addresses.put(entry["addr"])
                told = True
        if not told:
            addresses.put(None)

    def _wait_serving(self, deadline):
        """Waits on the health Watch stream (no polling) until SERVING."""
        remaining = deadline - time.monotonic()
        watch = self.health.Watch(
            health_pb2.HealthCheckRequest(service="proglog.v1.Log"),
            timeout=max(remaining, 0.1),
            wait_for_ready=True,
        )
        try:
            for response in watch:
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        except grpc.RpcError as error:
            self._abort(f"health watch failed: {error.code()} {error.details()}")
        finally:
            watch.cancel()
        self._abort("health watch ended before SERVING")

    def stop(self, sig=signal.SIGTERM):
        """Closes the client channel, signals the node and asserts it exits 0."""
        assert self.proc is not None, "node not running"
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            raise AssertionError(
                f"node did not exit within {STOP_TIMEOUT}s of {sig.name}\n{self.logs()}"
            )
        self.proc = None
        assert code == 0, f"node exited with {code} after {sig.name}\n{self.logs()}"

    def kill(self):
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def _abort(self, why):
        self.kill()
        pytest.fail(f"proglog agent failed to start: {why}\n{self.logs()}")

    def logs(self):
        return "--- agent stderr ---\n" + "\n".join(self.log_lines[-50:])

    # -- helpers ---------------------------------------------------------

    def produce(self, value: bytes) -> int:
        request = log_pb2.ProduceRequest(record=log_pb2.Record(value=value))
        return self.stub.Produce(request, timeout=RPC_TIMEOUT).offset

    def consume(self, offset: int):
        request = log_pb2.ConsumeRequest(offset=offset)
        return self.stub.Consume(request, timeout=RPC_TIMEOUT).record

    def info(self):
        return self.stub.GetLogInfo(log_pb2.GetLogInfoRequest(), timeout=RPC_TIMEOUT)


@pytest.fixture
def node_factory(tmp_path):
    """Makes nodes (not started); every one still running at teardown is
    stopped with SIGTERM and must exit 0."""
    binary = proglog_bin()
    nodes = []

    def make(data_dir=None, extra_args=()):
        index = len(nodes)
        workdir = tmp_path / f"node{index}"
        workdir.mkdir()
        node = Node(binary, Path(data_dir or workdir / "data"), workdir, extra_args)
        nodes.append(node)
        return node

    yield make

    errors = []
    for node in nodes:
        if node.proc is None:
            continue
        try:
            node.stop()
        except AssertionError as error:
            errors.append(str(error))
    if errors:
        pytest.fail("\n".join(errors))


@pytest.fixture
def node(node_factory):
    """A started node on a fresh data dir, stopped gracefully at teardown."""
    return node_factory().start()
