#!/usr/bin/env bash
# TLS on vs off, measured by `proglog bench` (4 connections, window 256,
# 400k records, fsync interval) against a fresh node per run, alternating
# plaintext and mutual TLS. Both sides run an oso policy (dev.polar without
# TLS, example.polar with it, as root), so the difference is TLS alone.
# Prints: mode, record size, produce records/s, consume records/s, produce p50 µs.
#
#   bash bench/tls.sh target/release/proglog PKI_DIR SIZE [RUNS]
#
# PKI_DIR holds ca.pem, 0.pem/0-key.pem (a node certificate for 127.0.0.1)
# and root.pem/root-key.pem, as docs/security.md's walk-through makes them.
set -euo pipefail
P=$1; PKI=$2; size=$3; runs=${4:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
for r in $(seq 1 "$runs"); do
  for mode in plain tls; do
    rm -rf "$work/d"; flags=(--acl-policy-file "$root"/auth/policies/dev.polar); client=()
    if [ "$mode" = tls ]; then
      flags=(--acl-policy-file "$root"/auth/policies/example.polar --tls-cert-file "$PKI/0.pem" --tls-key-file "$PKI/0-key.pem" --tls-client-ca-file "$PKI/ca.pem")
      client=(--ca-file "$PKI/ca.pem" --cert-file "$PKI/root.pem" --key-file "$PKI/root-key.pem")
    fi
    "$P" agent --data-dir "$work/d" --rpc-addr 127.0.0.1:8599 --fsync interval --log-level warn \
      "${flags[@]}" & pid=$!
    for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/8599) 2>/dev/null && break; sleep 0.1; done
    "$P" bench --addr 127.0.0.1:8599 "${client[@]}" --records 400000 --size "$size" --connections 4 --window 256 --json \
      | python3 -c "import json,sys; d=json.load(sys.stdin); print('$mode', $size, round(d['produce']['recordsPerSecond']), round(d['consume']['recordsPerSecond']), d['produce']['latencyUs']['p50'])"
    kill $pid; wait $pid 2>/dev/null || true
  done
done
