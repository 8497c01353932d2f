#!/usr/bin/env bash
# Runs a command with a syslog socket of its own at /dev/log, in a private
# mount namespace (run this under `unshare --mount --propagation private`):
# a fresh /dev holding the host's null, zero, random, urandom, full, tty, pts
# and shm plus a datagram socket at /dev/log, whose messages a recorder
# appends to RECORD, one a line. The machine's own /dev is not touched.
#
# usage: unshare --mount --propagation private bash syslog-namespace.sh RECORD UNTIL -- COMMAND...
#   UNTIL: the recorder stops at the first message containing this text, or after 30 s.
# Exits with COMMAND's status once the recorder has stopped.
set -euo pipefail
record=$1
until_text=$2
shift 3

scratch=$(mktemp -d)
mkdir "$scratch/olddev"
mount --rbind /dev "$scratch/olddev"
mount -t tmpfs -o mode=0755 tmpfs /dev
for node in null zero random urandom full tty; do
  touch "/dev/$node"
  mount --bind "$scratch/olddev/$node" "/dev/$node"
done
mkdir /dev/pts /dev/shm
mount --rbind "$scratch/olddev/pts" /dev/pts
mount --rbind "$scratch/olddev/shm" /dev/shm
ln -s pts/ptmx /dev/ptmx
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr

python3 - "$record" "$until_text" <<'PY' &
import socket, sys, time
record, until = sys.argv[1], sys.argv[2]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind("/dev/log")
open(record + ".ready", "w").close()
deadline = time.time() + 30
with open(record, "a") as out:
    while time.time() < deadline:
        sock.settimeout(max(0.1, deadline - time.time()))
        try:
            message = sock.recv(65536).decode("utf-8", "replace")
        except socket.timeout:
            break
        out.write(message.replace("\n", "\\n") + "\n")
        out.flush()
        if until in message:
            break
PY
recorder=$!
for _ in $(seq 100); do [[ -e "$record.ready" ]] && break; sleep 0.05; done
status=0
"$@" || status=$?
wait "$recorder" || true
exit "$status"
