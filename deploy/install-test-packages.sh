#!/bin/sh
# The system packages the test suite needs, installed when missing (called by `make test`;
# the only place the tests' system pieces are installed). Each need is a command and the
# Debian packages that provide it, tried in order. Without root or apt-get it says what is
# missing and goes on: the tests that need it skip with the same reason.
set -u

need() {  # need COMMAND PACKAGE...
    cmd=$1; shift
    if command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ]; then
        return 0
    fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "note: $cmd is missing and cannot be installed here (needs root and apt-get: $*)" >&2
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt="apt-get -q -y -o DPkg::Lock::Timeout=120 --no-install-recommends"
    for package in "$@"; do
        $apt install "$package" >/dev/null 2>&1 && return 0
    done
    apt-get -q -y -o DPkg::Lock::Timeout=120 update >/dev/null 2>&1
    for package in "$@"; do
        $apt install "$package" >/dev/null 2>&1 && return 0
    done
    echo "error: could not install $cmd (tried: $*)" >&2
    return 1
}

need nginx nginx-light nginx
need chromium chromium  # the browser tests (Playwright drives this one)
