#!/usr/bin/env bash
# `make compare`: installs the peers if missing (Debian's nats-server and
# redis-server, with apt), builds proglog and the harness in release mode,
# then runs the harness; extra arguments go to proglog-compare (see
# `target/release/proglog-compare --help`). Run from the workspace root.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
	echo "== installing ${missing[*]} with apt" >&2
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	# Where an init system runs, the packages also start their own services
	# on the default ports; the harness uses its own ports and ignores them.
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

echo "== building proglog and proglog-compare (release)" >&2
"${CARGO:-cargo}" build --release -p agent -p proglog-compare >&2

# exec: Ctrl-C and SIGTERM reach the harness itself, which kills what it
# started and removes its data directories.
exec target/release/proglog-compare "$@"
