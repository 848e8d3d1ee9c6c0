#!/bin/sh
# dev.sh: the README's entry point. `./dev.sh run` and `./dev.sh test` are `make run` and
# `make test` on a machine that may not have make yet: a minimal Debian 12 (debootstrap
# --variant=minbase) has none. Installs make if it is missing, then hands every argument
# to make. Everything else the targets need is installed by `make deps`, not here.
set -eu
cd "$(dirname "$0")"

if ! command -v make >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        sudo=
    elif command -v sudo >/dev/null 2>&1; then
        sudo=sudo
    else
        echo "dev.sh: make is missing; as root: apt-get update && apt-get install make" >&2
        exit 1
    fi
    echo "dev.sh: installing make"
    # A debootstrap root has no package lists yet: update first. `env` carries
    # DEBIAN_FRONTEND through sudo, which resets the environment.
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq make >/dev/null
fi
exec make "$@"
