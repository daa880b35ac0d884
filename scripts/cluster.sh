#!/usr/bin/env bash
# Three replicated proglog nodes on 127.0.0.1 in the foreground, for trying
# the cluster: RPC on 8401-8403, gossip on 8501-8503, data in
# ./cluster-data/n1..n3 (kept between runs, so a second `make cluster`
# restarts the same cluster). Ctrl-C stops all three cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
PROGLOG=${PROGLOG:-target/release/proglog}
if [ ! -x "$PROGLOG" ]; then
    echo "== building $PROGLOG"
    cargo build --release -p agent --bin proglog
fi
DATA=${DATA:-cluster-data}
mkdir -p "$DATA"
pids=()
stop() {
    trap - INT TERM
    echo
    echo "== stopping the cluster"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM
for i in 1 2 3; do
    seeds=""
    for j in 1 2 3; do
        [ "$j" = "$i" ] || seeds="${seeds:+$seeds,}127.0.0.1:850$j"
    done
    # Own sessions: Ctrl-C reaches only this script, which then stops each
    # node once with SIGTERM (a second signal would make a node exit at
    # once, uncleanly). The prefixing sed ignores Ctrl-C so the last lines
    # still show.
    setsid "$PROGLOG" agent --node-name "n$i" --data-dir "$DATA/n$i" \
        --rpc-addr "127.0.0.1:840$i" --gossip-addr "127.0.0.1:850$i" \
        --join "$seeds" --bootstrap-expect 3 > >(trap '' INT; sed -u "s/^/[n$i] /") 2>&1 &
    pids+=($!)
done
echo "== three nodes starting; try: $PROGLOG servers --addr 127.0.0.1:8401"
wait
