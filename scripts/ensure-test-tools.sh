#!/usr/bin/env bash
# Make sure the programs the integration tests run are installed: OpenSSH's
# sshd, ssh, ssh-keygen, ssh-agent, ssh-add, curl, python3 (its pty module
# drives the terminal tests; its urllib is a client under `exec`), openssl
# (the HTTPS target's certificate), git (a clone over ssh under `exec`), Debian's chromium and firefox-esr (real browsers
# through the proxy), tcpdump (leakcheck's live capture) and iproute2's ip and
# ss (the network namespace the browser leak tests run in), and qemu-user's
# qemu-aarch64 with the aarch64 loader and libraries it runs the linux-arm64
# single executable with (`-L /usr/aarch64-linux-gnu`): libc6-arm64-cross's
# ld-linux-aarch64.so.1 and libstdc++6-arm64-cross's libstdc++.so.6, which
# Node links against and libc6-arm64-cross alone does not bring; and what
# `npm run build:binaries` (run by npm test) needs: binutils' strip, the
# aarch64 strip of binutils-aarch64-linux-gnu (the x86-64 one cannot read an
# arm64 ELF) and
# osslsigncode (it removes the Windows base's signature); and wine64, which
# runs the Windows single executable; and systemd's systemd-analyze, which
# checks the unit --print-unit prints (nothing here runs systemd). Idempotent:
# when all are present it changes nothing. Installs with apt-get (Debian/Ubuntu), via sudo when not root. Run
# by `npm test` through the pretest script.
set -euo pipefail

AARCH64_LIBS=(/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 /usr/aarch64-linux-gnu/lib/libstdc++.so.6)

missing=()
[[ -x /usr/sbin/sshd ]] || missing+=("/usr/sbin/sshd")
[[ -x /usr/bin/chromium ]] || missing+=("/usr/bin/chromium")
[[ -x /usr/bin/firefox-esr ]] || missing+=("/usr/bin/firefox-esr")
[[ -x /usr/sbin/ip ]] || missing+=("/usr/sbin/ip")
[[ -x /usr/lib/wine/wine64 ]] || missing+=("/usr/lib/wine/wine64")
[[ -x /usr/bin/systemd-analyze ]] || missing+=("/usr/bin/systemd-analyze")
for lib in "${AARCH64_LIBS[@]}"; do [[ -e "$lib" ]] || missing+=("$lib"); done
for tool in ssh ssh-keygen ssh-agent ssh-add curl python3 openssl git tcpdump ss qemu-aarch64 strip aarch64-linux-gnu-strip osslsigncode; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "ensure-test-tools: sshd, ssh, ssh-keygen, ssh-agent, ssh-add, curl, python3, openssl, git, chromium, firefox-esr, tcpdump, ip, ss, qemu-aarch64, the aarch64 loader and the aarch64 libstdc++, strip, aarch64-linux-gnu-strip, osslsigncode, wine64 and systemd-analyze already installed"
  exit 0
fi

fail() {
  echo "ensure-test-tools: missing ${missing[*]}: $1" >&2
  echo "ensure-test-tools: install openssh-server, openssh-client, curl, python3, openssl, git, chromium, firefox-esr, tcpdump, iproute2, qemu-user, libc6-arm64-cross, libstdc++6-arm64-cross, binutils, binutils-aarch64-linux-gnu, osslsigncode, wine64 and systemd yourself, then run the tests again" >&2
  exit 1
}

command -v apt-get >/dev/null 2>&1 || fail "no apt-get on this machine"

as_root=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || fail "not root and no sudo"
  # Without a terminal a password prompt could only hang: ask sudo not to prompt.
  if [[ -t 0 ]]; then as_root=(sudo); else as_root=(sudo -n); fi
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  fail "apt-get update failed"
fi
if ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssh-server openssh-client curl python3 openssl git chromium firefox-esr tcpdump iproute2 qemu-user libc6-arm64-cross libstdc++6-arm64-cross binutils binutils-aarch64-linux-gnu osslsigncode wine64 systemd >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  fail "apt-get install failed"
fi

still=()
[[ -x /usr/sbin/sshd ]] || still+=("/usr/sbin/sshd")
[[ -x /usr/bin/chromium ]] || still+=("/usr/bin/chromium")
[[ -x /usr/bin/firefox-esr ]] || still+=("/usr/bin/firefox-esr")
[[ -x /usr/sbin/ip ]] || still+=("/usr/sbin/ip")
[[ -x /usr/lib/wine/wine64 ]] || still+=("/usr/lib/wine/wine64")
[[ -x /usr/bin/systemd-analyze ]] || still+=("/usr/bin/systemd-analyze")
for lib in "${AARCH64_LIBS[@]}"; do [[ -e "$lib" ]] || still+=("$lib"); done
for tool in ssh ssh-keygen ssh-agent ssh-add curl python3 openssl git tcpdump ss qemu-aarch64 strip aarch64-linux-gnu-strip osslsigncode; do
  command -v "$tool" >/dev/null 2>&1 || still+=("$tool")
done
[[ ${#still[@]} -eq 0 ]] || fail "still missing after apt-get install: ${still[*]}"

echo "ensure-test-tools: installed openssh-server, openssh-client, curl, python3, openssl, git, chromium, firefox-esr, tcpdump, iproute2, qemu-user, libc6-arm64-cross, libstdc++6-arm64-cross, binutils, binutils-aarch64-linux-gnu, osslsigncode, wine64 and systemd with apt-get (was missing ${missing[*]})"
