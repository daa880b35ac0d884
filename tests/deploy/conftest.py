"""Fixtures of the deploy suite: the repository root, the image under test
and a fresh three-node Compose cluster per container test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from compose_cluster import ComposeCluster, compose_command, run  # noqa: E402


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def _docker_engine_problem() -> str | None:
    """Why there is no usable Docker engine here, or None if there is one."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    try:
        done = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer in 30 s"
    if done.returncode != 0:
        return f"`docker info` failed: {done.stderr.strip()[:200]}"
    return None


@pytest.fixture(scope="session")
def docker_engine() -> None:
    problem = _docker_engine_problem()
    if problem:
        pytest.skip(f"SKIPPED: no Docker engine ({problem}); the container tests need one")


@pytest.fixture(scope="session")
def compose(docker_engine) -> list[str]:
    command = compose_command()
    if command is None:
        # An engine without Compose is a broken setup, not a reason to skip.
        pytest.fail("a Docker engine is present but neither `docker compose` nor `docker-compose` is (apt-get install docker-compose)")
    return command


@pytest.fixture(scope="session")
def image(docker_engine) -> str:
    """PROGLOG_IMAGE if set (e.g. `make image`'s proglog:VERSION); otherwise an
    image built here from PROGLOG_BIN (default target/debug/proglog, the
    binary `make test` builds) with deploy/stage-rootfs.sh and
    deploy/Dockerfile, removed again after the session."""
    given = os.environ.get("PROGLOG_IMAGE")
    if given:
        yield given
        return
    binary = Path(os.environ.get("PROGLOG_BIN", ROOT / "target" / "debug" / "proglog"))
    if not binary.is_file():
        pytest.fail(f"no binary to put in the image: {binary} (run `cargo build -p agent` or set PROGLOG_BIN)")
    tag = f"proglog:e2e-{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory(prefix="proglog-image-") as context:
        run(["bash", str(ROOT / "deploy" / "stage-rootfs.sh"), str(binary), context])
        run(["docker", "build", "-q", "-f", str(ROOT / "deploy" / "Dockerfile"), "-t", tag, context], timeout=600)
    try:
        yield tag
    finally:
        run(["docker", "rmi", "-f", tag], check=False)


@pytest.fixture
def cluster(request, image, compose):
    """A fresh cluster, its own project; always removed, also on failure
    (the last log lines of each node are printed when the test failed)."""
    project = f"proglog-e2e-{uuid.uuid4().hex[:8]}"
    cluster = ComposeCluster(ROOT, image, project, compose)
    try:
        try:
            cluster.up()
            cluster.wait_ready()
        except Exception:
            print(cluster.all_logs())
            raise
        yield cluster
    finally:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            print(cluster.all_logs())
        cluster.down()
        leftovers = cluster.leftovers()
        assert not leftovers, f"cleanup left {leftovers}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
