#!/bin/sh
# Usage: go-install.sh ROOT SPEC... Fetches Go modules (`go get` specs, e.g.
# `example.com/mod@v1`) into the module cache under ROOT/go. Needs the Go
# module proxy (or direct VCS access) to be reachable.
set -eu
root=$1
shift
unset GOPROXY GOFLAGS
export GOPATH="$root/go" GOMODCACHE="$root/go/pkg/mod"
mkdir -p "$root/go/mod"
cd "$root/go/mod"
if [ ! -f go.mod ]; then
    go mod init sandbox >/dev/null 2>&1
fi
go get "$@"
