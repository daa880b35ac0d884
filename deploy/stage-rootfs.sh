#!/usr/bin/env bash
# Stages the build context of deploy/Dockerfile: a root filesystem holding one
# proglog binary and the few files it needs at run time, so the image builds
# FROM scratch with nothing pulled.
#
#   bash deploy/stage-rootfs.sh BINARY CONTEXT_DIR
#
# CONTEXT_DIR is emptied and filled with:
#   rootfs/usr/local/bin/proglog    BINARY without its debug sections
#   rootfs/etc/passwd, etc/group    root and the user proglog (65532)
#   rootfs/etc/nsswitch.conf        hosts: files dns
#   rootfs/etc/ssl/certs/ca-certificates.crt   this machine's CA bundle
#   rootfs/tmp                      mode 1777
#   rootfs/<each library ldd lists> only for a dynamically linked BINARY
#                                   (the debug build), with its loader
#   data/                           an empty directory that becomes /data
#
# A static BINARY (the release build with +crt-static) needs no library, so
# the image is the binary plus a few kilobytes. Needs: ldd, objcopy
# (binutils), and a CA bundle (Debian's ca-certificates).
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 BINARY CONTEXT_DIR" >&2
    exit 2
fi
binary=$1
context=$2
ca_bundle=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
uid=65532

[ -x "$binary" ] || { echo "stage-rootfs: $binary is not an executable file" >&2; exit 2; }
[ -r "$ca_bundle" ] || { echo "stage-rootfs: no CA bundle at $ca_bundle (apt-get install ca-certificates, or set CA_BUNDLE)" >&2; exit 2; }
command -v objcopy >/dev/null 2>&1 || { echo "stage-rootfs: objcopy not found (apt-get install binutils)" >&2; exit 2; }

rm -rf "$context"
rootfs="$context/rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs" "$rootfs/tmp" "$context/data"
chmod 1777 "$rootfs/tmp"

# Debug sections are most of a debug build's size (hundreds of MB) and
# nothing at run time reads them; symbols stay, so backtraces keep names.
objcopy --strip-debug "$binary" "$rootfs/usr/local/bin/proglog"
chmod 0755 "$rootfs/usr/local/bin/proglog"

cat >"$rootfs/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/sbin/nologin
proglog:x:$uid:$uid:proglog:/data:/sbin/nologin
PASSWD
cat >"$rootfs/etc/group" <<GROUP
root:x:0:
proglog:x:$uid:
GROUP
# glibc's resolver consults this for the order of sources; containers and
# Kubernetes supply /etc/hosts and /etc/resolv.conf themselves.
echo "hosts: files dns" >"$rootfs/etc/nsswitch.conf"
cp "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"

# A dynamically linked binary brings each shared library at the path the
# loader will look for it. `ldd` prints "name => /path (addr)" per library
# and "/lib64/ld-linux-x86-64.so.2 (addr)" for the loader; for a static
# binary it prints "statically linked" (static-pie, exit 0) or "not a
# dynamic executable" (exit 1), and no "=>".
libraries=$(ldd "$binary" 2>/dev/null || true)
if printf '%s\n' "$libraries" | grep -q '=>'; then
    count=0
    for lib in $(printf '%s\n' "$libraries" | awk '/=> \// { print $3 } /^[[:space:]]*\// { print $1 }' | sort -u); do
        mkdir -p "$rootfs$(dirname "$lib")"
        cp -L "$lib" "$rootfs$lib"
        count=$((count + 1))
    done
    echo "stage-rootfs: dynamic binary; copied $count shared objects"
else
    echo "stage-rootfs: static binary; no shared objects needed"
fi
echo "stage-rootfs: staged $(du -sh "$context" | cut -f1) in $context"
