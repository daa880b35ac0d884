#!/usr/bin/env bash
# Runs the Python (grpcio) client suite against a real `proglog agent`
# (test_cluster.py: against a three-node replicated cluster, via followers).
#
#   bash tests/python/run.sh [pytest args...]
#
# Makes or reuses a venv at tests/python/.venv, installs the pinned
# requirements (only when requirements.txt changed), generates the Python
# stubs of proto/proglog/v1/log.proto into tests/python/gen, builds the agent
# unless PROGLOG_BIN names a binary, and runs pytest -q. Both directories are
# gitignored. Needs python3 (3.9+) with venv, and PyPI for the first run.
#
# Environment:
#   PROGLOG_BIN  a proglog binary to test instead of building one
#   PYTHON       the interpreter that makes the venv (default python3)
#   CARGO        cargo (default cargo)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$here/.venv"
gen="$here/gen"
python="${PYTHON:-python3}"
start=$(date +%s)

# 1. The venv, remade if it is missing or its interpreter no longer runs.
if ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    echo "== python tests: creating venv at $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv"
fi
vpy="$venv/bin/python"

# 2. The pinned requirements, installed again only when they (or the
#    interpreter) changed.
stamp="$venv/.requirements.stamp"
want="$( (cat "$here/requirements.txt"; "$vpy" -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "== python tests: installing requirements"
    "$vpy" -m pip install --disable-pip-version-check --no-input -q -r "$here/requirements.txt"
    echo "$want" >"$stamp"
fi

# 3. Stubs from the contract, always regenerated (well under a second) so they
#    never lag the .proto. Written to a scratch dir first, then swapped in.
tmp_gen="$(mktemp -d "$here/.gen.XXXXXX")"
trap 'rm -rf "$tmp_gen"' EXIT
"$vpy" -m grpc_tools.protoc -I "$root/proto" \
    --python_out="$tmp_gen" --grpc_python_out="$tmp_gen" \
    "$root/proto/proglog/v1/log.proto"
rm -rf "$gen"
mv "$tmp_gen" "$gen"

# 4. The binary under test.
if [ -n "${PROGLOG_BIN:-}" ]; then
    if [ ! -x "$PROGLOG_BIN" ]; then
        echo "PROGLOG_BIN=$PROGLOG_BIN is not an executable file" >&2
        exit 2
    fi
    bin="$(cd "$(dirname "$PROGLOG_BIN")" && pwd)/$(basename "$PROGLOG_BIN")"
else
    echo "== python tests: cargo build -p agent"
    (cd "$root" && "${CARGO:-cargo}" build -q -p agent)
    target_dir="${CARGO_TARGET_DIR:-$root/target}"
    case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
    bin="$target_dir/debug/proglog"
fi
echo "== python tests: testing $bin"

# 5. The suite. Its exit code is this script's.
cd "$here"
set +e
PROGLOG_BIN="$bin" "$vpy" -m pytest -q "$@"
rc=$?
set -e
echo "== python tests finished in $(( $(date +%s) - start ))s (pytest exit $rc)"
exit $rc
