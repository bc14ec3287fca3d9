#!/bin/sh
# Usage: go-build.sh OUTPUT SOURCE [session]
# Builds the one-file program SOURCE into OUTPUT as
# `go build -ldflags="-s -w" -o OUTPUT SOURCE` would. Most of that command's
# time on a small program is the go command itself (loading and hashing the
# standard packages to find them in the build cache), so a program whose
# standard-library imports are all in the build cache is compiled and linked
# by the toolchain's own compile and link, with the flags and build info go
# build gives them, against the cached packages named in an import config.
# Any other program, settings of the go command's own (GOFLAGS, GOARCH, a
# go.mod…), or any failure, take `go build` (its messages are the ones
# people see). The configs are in /opt/go-fast (the packages the image
# warmed; the link's adds the build info, `modinfo`); a session keeps its
# own copies in /tmp/go-fast and adds the standard packages of each program
# `go build` built, so the next builds of those programs take the fast path
# too.
set -u
out=$1
src=$2
fast=/opt/go-fast
config=$fast
if [ "${3:-}" = session ]; then
    config=/tmp/go-fast
    if [ ! -f "$config/importcfg.link" ]; then
        mkdir -p "$config" && cp "$fast/importcfg" "$fast/importcfg.link" "$config/"
    fi
fi
. "$fast/env"

# True when go build would build with the image's settings (none changed
# by the request's environment or `go env -w`) outside any module (a go.mod
# or go.work from the working directory up sets the language version and
# the requirements), as the fast path does.
image_settings() {
    [ "${GOFLAGS-}" = -buildvcs=false ] && [ "${CGO_ENABLED-}" = 0 ] && [ "${GOTOOLCHAIN-}" = local ] \
        && [ -z "${GOOS-}${GOARCH-}${GOAMD64-}${GOARM64-}${GOARM-}${GO386-}${GORISCV64-}${GOPPC64-}" ] \
        && [ -z "${GOFIPS140-}${GOEXPERIMENT-}${GO111MODULE-}${GOWORK-}${GOROOT-}${GOENV-}" ] \
        && [ ! -e "${XDG_CONFIG_HOME:-${HOME:-/}/.config}/go/env" ] \
        || return 1
    dir=$PWD
    while [ -n "$dir" ]; do
        [ -e "$dir/go.mod" ] || [ -e "$dir/go.work" ] && return 1
        dir=${dir%/*}
    done
    [ ! -e /go.mod ] && [ ! -e /go.work ]
}

# Build constraints, embedded files and GODEBUG settings are go build's.
if image_settings && ! grep -q -e '^//go:build' -e '^// +build' -e '//go:embed' -e '^//go:debug' "$src"; then
    if "$GO_TOOLDIR/compile" -o "$out.a" -p main -lang="$GO_LANG" -complete -nolocalimports \
        -importcfg "$config/importcfg" -pack "$src" >/dev/null 2>&1 \
        && GOROOT="$GO_ROOT" "$GO_TOOLDIR/link" -o "$out" -importcfg "$config/importcfg.link" \
            -buildmode=exe -s -w "$out.a" >/dev/null 2>&1; then
        rm -f "$out.a"
        exit 0
    fi
    rm -f "$out.a"
fi
go build -ldflags="-s -w" -o "$out" "$src" || exit
if [ "$config" != "$fast" ]; then
    # The standard packages this program needs, as now cached, replace the
    # configs' lines for the same packages.
    go list -export -deps -f '{{if .Standard}}{{if .Export}}packagefile {{.ImportPath}}={{.Export}}{{end}}{{end}}' \
        "$src" >"$config/new" 2>/dev/null \
        && for name in importcfg importcfg.link; do
            awk 'FNR == NR { split($2, p, "="); seen[p[1]] = 1; print; next }
                 $1 == "packagefile" { split($2, p, "="); if (p[1] in seen) next }
                 { print }' "$config/new" "$config/$name" >"$config/next" \
                && mv "$config/next" "$config/$name"
        done
    rm -f "$config/new" "$config/next"
fi
exit 0
