#!/usr/bin/env bash
# The three-node cluster of deploy/compose.yaml, for `make compose-up` and
# `make compose-down` (docs/deploy.md).
#
#   bash deploy/compose.sh up      start n1..n3 (TLS=1: mutual TLS + gossip key)
#   bash deploy/compose.sh down    stop them and remove containers, network,
#                                  data volumes and the PKI volume
#   bash deploy/compose.sh pki     only make the TLS material (up does it)
#   bash deploy/compose.sh ps|logs|...   any other docker compose command
#
# Environment: PROGLOG_IMAGE (default proglog:VERSION from Cargo.toml),
# PROJECT (Compose project name, default proglog), TLS (1: on),
# PROGLOG_PKI_VOLUME (default ${PROJECT}-pki), PKI_DIR (where the client's
# CA and certificate are copied for the CLI, default deploy/.pki), and the
# address and port variables compose.yaml lists.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"

version=$(awk -F'"' '/^\[workspace.package\]/ { p = 1; next } /^\[/ { p = 0 } p && /^version/ { print $2; exit }' "$root/Cargo.toml")
export PROGLOG_IMAGE=${PROGLOG_IMAGE:-proglog:$version}
project=${PROJECT:-proglog}
export PROGLOG_PKI_VOLUME=${PROGLOG_PKI_VOLUME:-$project-pki}
prefix=${PROGLOG_SUBNET_PREFIX:-172.29.84}
pki_dir=${PKI_DIR:-$here/.pki}

if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
else
    echo "compose.sh: neither 'docker compose' nor 'docker-compose' found (apt-get install docker-compose)" >&2
    exit 2
fi
files=(-f "$here/compose.yaml")
if [ "${TLS:-0}" = 1 ]; then
    files+=(-f "$here/compose.tls.yaml")
fi

# One `proglog cert` run in the image, as its non-root user, on the PKI
# volume mounted at /data (a fresh volume there is created owned by that
# user, so the keys it writes with mode 0600 are readable by the nodes).
cert() {
    docker run --rm --read-only -v "$PROGLOG_PKI_VOLUME:/data" "$PROGLOG_IMAGE" cert "$@" >/dev/null
}

make_pki() {
    if docker volume inspect "$PROGLOG_PKI_VOLUME" >/dev/null 2>&1; then
        echo "== PKI volume $PROGLOG_PKI_VOLUME exists; keeping it"
    else
        echo "== making a CA, node certificates n1..n3, client 'root' and a gossip key in volume $PROGLOG_PKI_VOLUME"
        docker volume create "$PROGLOG_PKI_VOLUME" >/dev/null
        cert ca --out-dir /data
        for i in 1 2 3; do
            # Peers dial the advertised name nI:8400; the host dials
            # 127.0.0.1 through the published port.
            cert node --name "n$i" --dns "n$i" --dns localhost --ip "$prefix.1$i" --ip 127.0.0.1 --ca-dir /data --out-dir /data
        done
        cert client --cn root --ca-dir /data --out-dir /data
        cert gossip-key /data/gossip.key
    fi
    # The client side for the CLI on the host: CA and root's certificate.
    mkdir -p "$pki_dir"
    holder=$(docker create -v "$PROGLOG_PKI_VOLUME:/data" "$PROGLOG_IMAGE")
    for file in ca.pem root.pem root-key.pem; do
        docker cp "$holder:/data/$file" "$pki_dir/$file" >/dev/null
    done
    docker rm "$holder" >/dev/null
    chmod 0600 "$pki_dir/root-key.pem"
    echo "== client files in $pki_dir (ca.pem, root.pem, root-key.pem)"
}

case "${1:-}" in
    up)
        if ! docker image inspect "$PROGLOG_IMAGE" >/dev/null 2>&1; then
            echo "compose.sh: no image $PROGLOG_IMAGE; run 'make image' (or set PROGLOG_IMAGE)" >&2
            exit 2
        fi
        [ "${TLS:-0}" = 1 ] && make_pki
        "${compose[@]}" -p "$project" "${files[@]}" up -d
        rpc=${PROGLOG_N1_RPC_PORT:-8411}
        if [ "${TLS:-0}" = 1 ]; then
            echo "== try: proglog servers --addr 127.0.0.1:$rpc --ca-file $pki_dir/ca.pem --cert-file $pki_dir/root.pem --key-file $pki_dir/root-key.pem"
        else
            echo "== try: proglog servers --addr 127.0.0.1:$rpc   (n2, n3: ${PROGLOG_N2_RPC_PORT:-8412}, ${PROGLOG_N3_RPC_PORT:-8413})"
        fi
        ;;
    down)
        # Both files, so a TLS cluster's containers go too; the PKI volume
        # is external to Compose and removed here.
        "${compose[@]}" -p "$project" -f "$here/compose.yaml" down -v --remove-orphans
        if docker volume inspect "$PROGLOG_PKI_VOLUME" >/dev/null 2>&1; then
            docker volume rm "$PROGLOG_PKI_VOLUME" >/dev/null
            echo "== removed PKI volume $PROGLOG_PKI_VOLUME"
        fi
        ;;
    pki)
        make_pki
        ;;
    "")
        echo "usage: $0 up|down|pki|<docker compose command>" >&2
        exit 2
        ;;
    *)
        "${compose[@]}" -p "$project" "${files[@]}" "$@"
        ;;
esac
