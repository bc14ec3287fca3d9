#!/bin/sh
# Fetches Go modules (`go get` specs, e.g. `golang.org/x/exp@latest`) into
# the module in /packages/go; programs are then built inside that module.
# Needs the Go module proxy (or direct VCS access) to be reachable.
set -eu
unset GOPROXY GOFLAGS
export GOPATH=/packages/go GOMODCACHE=/packages/go/pkg/mod
mkdir -p /packages/go/mod
cd /packages/go/mod
if [ ! -f go.mod ]; then
    go mod init sandbox >/dev/null 2>&1
fi
go get "$@"
