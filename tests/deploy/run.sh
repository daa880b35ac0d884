#!/usr/bin/env bash
# The deploy suite: the Helm chart rendered, linted and validated offline
# (test_chart.py), the loss check's own negative controls (test_history.py),
# and a three-node cluster in containers built from deploy/ (test_containers.py,
# skipped with a message when no Docker engine is present).
#
#   bash tests/deploy/run.sh [pytest args...]
#
# Makes or reuses a venv at tests/deploy/.venv with the pinned requirements
# (installed again only when requirements.txt changes). The container tests
# put PROGLOG_BIN (default: target/debug/proglog, built here by cargo if
# missing or stale) into an image FROM scratch, unless PROGLOG_IMAGE names an
# image to test instead (e.g. PROGLOG_IMAGE=proglog:0.1.0 after `make image`).
#
# Environment:
#   PROGLOG_BIN    the binary the test image is built from
#   PROGLOG_IMAGE  an existing image to test (then nothing is built)
#   PYTHON         the interpreter that makes the venv (default python3)
#   CARGO          cargo (default cargo)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"
start=$(date +%s)

if ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    echo "== deploy tests: creating venv at $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv"
fi
vpy="$venv/bin/python"
stamp="$venv/.requirements.stamp"
want="$( (cat "$here/requirements.txt"; "$vpy" -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "== deploy tests: installing requirements"
    "$vpy" -m pip install --disable-pip-version-check --no-input -q -r "$here/requirements.txt"
    echo "$want" >"$stamp"
fi

# The binary the chart test runs with the rendered config and the container
# tests put in their image. `cargo build` is a no-op after `make test`.
if [ -z "${PROGLOG_BIN:-}" ]; then
    echo "== deploy tests: cargo build -p agent"
    (cd "$root" && "${CARGO:-cargo}" build -q -p agent --bin proglog)
    target_dir="${CARGO_TARGET_DIR:-$root/target}"
    case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
    export PROGLOG_BIN="$target_dir/debug/proglog"
fi

cd "$here"
set +e
"$vpy" -m pytest -q "$@"
rc=$?
set -e
echo "== deploy tests finished in $(( $(date +%s) - start ))s (pytest exit $rc)"
exit $rc
