#!/bin/sh
# Make sure the base image has a python3 >= 3.10 with venv support.
#   base-setup.sh build    python3, python3-venv, python3-pip (build stage)
#   base-setup.sh runtime  python3 only (final stage)
# A base that already has a suitable python3 (python:3.x-slim) is left as is.
# Apt configuration found in $BUILDENV/apt (sources.list.d/, apt.conf.d/,
# sources.list) and a CA bundle $BUILDENV/ca-certificates.crt are used for
# the duration of this script only.
set -eu
mode="${1:-build}"
BUILDENV="${BUILDENV:-/opt/buildenv}"

if [ "$mode" = build ]; then
    check='import sys, venv, ensurepip; assert sys.version_info >= (3, 10)'
    pkgs="python3 python3-venv python3-pip"
else
    check='import sys; assert sys.version_info >= (3, 10)'
    pkgs="python3"
fi

if command -v python3 >/dev/null 2>&1 && python3 -c "$check" 2>/dev/null; then
    echo "base-setup: $(python3 --version) already present"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "base-setup: no suitable python3 and no apt-get in this base image" >&2
    exit 1
fi

# temporary apt configuration from the build environment
restore=""
if [ -d "$BUILDENV/apt" ]; then
    mkdir -p /tmp/apt-orig
    cp -a /etc/apt/sources.list.d /etc/apt/apt.conf.d /tmp/apt-orig/
    [ -f /etc/apt/sources.list ] && cp -a /etc/apt/sources.list /tmp/apt-orig/
    if [ -d "$BUILDENV/apt/sources.list.d" ] || [ -f "$BUILDENV/apt/sources.list" ]; then
        rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*
        [ -f "$BUILDENV/apt/sources.list" ] && cp "$BUILDENV/apt/sources.list" /etc/apt/sources.list
        [ -d "$BUILDENV/apt/sources.list.d" ] && cp "$BUILDENV"/apt/sources.list.d/* /etc/apt/sources.list.d/ 2>/dev/null || true
    fi
    [ -d "$BUILDENV/apt/apt.conf.d" ] && cp "$BUILDENV"/apt/apt.conf.d/* /etc/apt/apt.conf.d/ 2>/dev/null || true
    restore=1
fi
if [ -f "$BUILDENV/ca-certificates.crt" ]; then
    mkdir -p /etc/apt/apt.conf.d
    echo "Acquire::https::CaInfo \"$BUILDENV/ca-certificates.crt\";" > /etc/apt/apt.conf.d/99buildenv-ca
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $pkgs
apt-get clean
rm -rf /var/lib/apt/lists/* /etc/apt/apt.conf.d/99buildenv-ca

if [ -n "$restore" ]; then
    rm -f /etc/apt/sources.list /etc/apt/sources.list.d/* /etc/apt/apt.conf.d/*
    cp -a /tmp/apt-orig/sources.list.d/. /etc/apt/sources.list.d/
    cp -a /tmp/apt-orig/apt.conf.d/. /etc/apt/apt.conf.d/
    [ -f /tmp/apt-orig/sources.list ] && cp -a /tmp/apt-orig/sources.list /etc/apt/sources.list
    rm -rf /tmp/apt-orig
fi
python3 -c "$check"
echo "base-setup: installed $(python3 --version)"
