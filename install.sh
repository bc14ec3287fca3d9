#!/usr/bin/env bash
# Installs multilang-sandbox: prerequisites (Docker or Podman, debootstrap),
# the release binary, the sandbox images; then registers the server with
# Claude Code when its CLI is present and prints the Claude Desktop and LM
# Studio configs.
# Safe to run again: every step skips what is already done.
#
# Options:
#   --no-ml   skip the data-science Python image (numpy, pandas, matplotlib, …; about 1 GB)
#   --gvisor  also install gVisor (Debian's runsc) and register it with Docker
#             as the runtime `runsc`; use it with MULTILANG_SANDBOX_RUNTIME=runsc
#   --podman  use Podman instead of Docker (Debian/Ubuntu): its Docker API
#             socket, rootful at /run/podman/podman.sock when run as root,
#             else rootless at $XDG_RUNTIME_DIR/podman/podman.sock
# Environment:
#   MULTILANG_SANDBOX_BIN_DIR   where to install the binary (default ~/.local/bin)
#   MULTILANG_SANDBOX_NO_REGISTER=1   do not run `claude mcp add`
set -euo pipefail

cd "$(dirname "$0")"
BIN_DIR="${MULTILANG_SANDBOX_BIN_DIR:-$HOME/.local/bin}"
BIN="$BIN_DIR/multilang-sandbox"
BASE_IMAGE="${MULTILANG_SANDBOX_BASE_IMAGE:-debian:trixie-slim}"
ML_FLAG="--ml"
GVISOR=0
PODMAN=0
for argument in "$@"; do
    case "$argument" in
        --no-ml) ML_FLAG="" ;;
        --gvisor) GVISOR=1 ;;
        --podman) PODMAN=1 ;;
        *) echo "install.sh: unknown option $argument (known: --no-ml, --gvisor, --podman)" >&2; exit 2 ;;
    esac
done
if [ "$GVISOR" = 1 ] && [ "$PODMAN" = 1 ]; then
    echo "install.sh: --gvisor registers runsc with Docker; it cannot be combined with --podman" >&2
    exit 2
fi

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
fi

install_prerequisites() {
    local missing=()
    command -v docker >/dev/null 2>&1 || missing+=(docker.io)
    if [ "$(uname -s)" = "Linux" ]; then
        command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
        command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    fi
    [ ${#missing[@]} -eq 0 ] && return 0
    if command -v apt-get >/dev/null 2>&1; then
        # shellcheck disable=SC2207
        missing=($(printf '%s\n' "${missing[@]}" | sort -u))
        say "installing ${missing[*]} with apt-get"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
    elif [ "$(uname -s)" = "Darwin" ]; then
        command -v docker >/dev/null 2>&1 \
            || die "Docker is missing: install Docker Desktop (https://docs.docker.com/desktop/) and run this again"
    else
        die "please install: ${missing[*]} (Docker engine and debootstrap), then run this again"
    fi
}

start_docker() {
    if docker info >/dev/null 2>&1; then return 0; fi
    if [ "$(uname -s)" = "Darwin" ]; then
        say "starting Docker Desktop"
        open -a Docker || die "start Docker Desktop, then run this again"
    elif [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        say "starting the Docker service"
        $SUDO systemctl start docker || true
    fi
    if ! docker info >/dev/null 2>&1 && command -v dockerd >/dev/null 2>&1 && ! pgrep -x dockerd >/dev/null 2>&1; then
        say "starting dockerd in the background (log: /var/log/dockerd.log)"
        $SUDO sh -c 'setsid dockerd >/var/log/dockerd.log 2>&1 </dev/null &'
    fi
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && return 0
        sleep 1
    done
    if $SUDO docker info >/dev/null 2>&1; then
        die "Docker runs but $(id -un) may not use it: run \`sudo usermod -aG docker $(id -un)\`, log in again, and rerun"
    fi
    die "Docker did not start; see /var/log/dockerd.log or \`systemctl status docker\`"
}

# gVisor: Debian's runsc, registered in /etc/docker/daemon.json (kept
# otherwise as it is) with --network=none, which sandboxes without network
# need to start under it; dockerd reloads runtimes on SIGHUP. (Not
# --oci-seccomp: with it, runsc 2022-12-19 refuses thread creation under the
# sandbox profiles; gVisor's own kernel is the wall there, see SECURITY.md.)
install_gvisor() {
    [ "$(uname -s)" = "Linux" ] || die "--gvisor needs Linux (Docker Desktop cannot add runtimes)"
    if ! command -v runsc >/dev/null 2>&1; then
        command -v apt-get >/dev/null 2>&1 || die "install gVisor's runsc (https://gvisor.dev/docs/user_guide/install/), then rerun"
        say "installing runsc (gVisor) with apt-get"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq runsc >/dev/null
    fi
    local config=/etc/docker/daemon.json runsc changed
    runsc="$(command -v runsc)"
    $SUDO mkdir -p /etc/docker
    changed=$($SUDO python3 - "$config" "$runsc" <<'PY'
import json, os, sys
path, runsc = sys.argv[1], sys.argv[2]
config = {}
if os.path.exists(path) and os.path.getsize(path) > 0:
    with open(path) as handle:
        config = json.load(handle)
wanted = {"path": runsc, "runtimeArgs": ["--network=none"]}
if config.get("runtimes", {}).get("runsc") == wanted:
    print("no")
    sys.exit(0)
config.setdefault("runtimes", {})["runsc"] = wanted
with open(path + ".new", "w") as handle:
    json.dump(config, handle, indent=2)
    handle.write("\n")
os.replace(path + ".new", path)
print("yes")
PY
)
    if [ "$changed" = no ] && docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; then
        say "Docker already has the runsc runtime"
        return 0
    fi
    say "registered runsc with Docker in $config"
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        $SUDO systemctl reload docker || $SUDO systemctl restart docker
    else
        $SUDO pkill -HUP -x dockerd || die "could not signal dockerd to reload $config; restart Docker"
    fi
    for _ in $(seq 1 30); do
        docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc":{"path":"'"$runsc"'","runtimeArgs":\["--network=none"\]' && return 0
        sleep 1
    done
    die "Docker did not pick up the runsc runtime; see $config and the Docker log"
}

# Podman: its packages (runc too: crun, Podman's usual runtime, cannot start
# containers on a cgroup v1 or hybrid hierarchy), then its Docker-compatible
# API service, which the server finds by itself (DOCKER_HOST is exported
# here for the image build and printed for the clients).
install_podman() {
    [ "$(uname -s)" = "Linux" ] || die "--podman needs Linux (on macOS use Docker Desktop, or point DOCKER_HOST at podman machine's socket)"
    local missing=()
    command -v podman >/dev/null 2>&1 || missing+=(podman)
    command -v runc >/dev/null 2>&1 || missing+=(runc)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    if [ ${#missing[@]} -gt 0 ]; then
        command -v apt-get >/dev/null 2>&1 || die "please install: ${missing[*]}, then run this again"
        say "installing ${missing[*]} with apt-get"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    configure_podman
}

# Sets `key = value` under [section] in /etc/containers/containers.conf,
# unless the key is set there already (then it returns 1); stops the
# install when the file cannot be written.
set_in_containers_conf() {
    local section="$1" key="$2" value="$3" config=/etc/containers/containers.conf
    if [ -f "$config" ] && grep -Eq "^[[:space:]]*$key[[:space:]]*=" "$config"; then
        return 1
    fi
    $SUDO mkdir -p /etc/containers || die "cannot create /etc/containers"
    $SUDO python3 - "$config" "$section" "$key = $value" <<'PY'
import os, sys
path, section, line = sys.argv[1], "[%s]" % sys.argv[2], sys.argv[3]
lines = open(path).read().splitlines() if os.path.exists(path) else []
try:
    at = next(i for i, text in enumerate(lines) if text.strip() == section) + 1
except StopIteration:
    lines += ["", section]
    at = len(lines)
lines.insert(at, line)
with open(path + ".new", "w") as handle:
    handle.write("\n".join(lines).lstrip("\n") + "\n")
os.replace(path + ".new", path)
PY
    [ $? -eq 0 ] || die "cannot write $config"
}

# What Podman needs from /etc/containers/containers.conf here:
# - on cgroup v1, runc (crun cannot start containers there);
# - rootful without CAP_SYS_RESOURCE (inside some VMs and containers):
#   Podman asks for open-file and process limits of about a million, which
#   only that capability may set, so every container fails with "error
#   setting rlimit"; it gets this shell's open-file limit and a process
#   limit within its own instead.
configure_podman() {
    CONTAINERS_CONF_CHANGED=0
    if [ ! -f /sys/fs/cgroup/cgroup.controllers ] && set_in_containers_conf engine runtime '"runc"'; then
        say "cgroup v1: set Podman's runtime to runc in /etc/containers/containers.conf"
        CONTAINERS_CONF_CHANGED=1
    fi
    local effective nofile nproc
    effective=$(awk '/^CapEff:/ {print $2}' /proc/self/status)
    if [ "$(id -u)" -eq 0 ] && [ $(( (16#$effective >> 24) & 1 )) -eq 0 ]; then
        nofile=$(ulimit -Hn)
        nproc=$(ulimit -Hu)
        [ "$nofile" = unlimited ] && nofile=1048576
        if [ "$nproc" = unlimited ] || [ "$nproc" -gt 16384 ]; then nproc=16384; fi
        if set_in_containers_conf containers default_ulimits "[\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]"; then
            say "no CAP_SYS_RESOURCE: set Podman's default limits to nofile=$nofile, nproc=$nproc"
            CONTAINERS_CONF_CHANGED=1
        fi
    fi
}

# Docker beside Podman: Docker sets the FORWARD policy to DROP, and with
# bridged traffic filtered (br_netfilter) that drops the traffic between two
# containers on one of Podman's internal networks (netavark accepts it only
# on networks with a way out), which is how a sandbox reaches the egress
# proxy: installs and network grants would time out. Accept what stays on
# one of netavark's `podman*` bridges; nothing routed, so no way out is
# opened.
allow_podman_bridges() {
    [ "$(id -u)" -eq 0 ] || return 0
    command -v iptables >/dev/null 2>&1 || return 0
    iptables -S FORWARD 2>/dev/null | grep -qx -- '-P FORWARD DROP' || return 0
    iptables -S DOCKER-USER >/dev/null 2>&1 || return 0
    local rule=(-i podman+ -o podman+ -m physdev --physdev-is-bridged -j ACCEPT)
    iptables -C DOCKER-USER "${rule[@]}" 2>/dev/null && return 0
    iptables -I DOCKER-USER "${rule[@]}" \
        || die "could not let traffic within Podman's bridges past Docker's FORWARD policy (iptables DOCKER-USER)"
    say "Docker's FORWARD policy drops traffic within Podman's internal networks: accepted traffic that stays on one Podman bridge (iptables DOCKER-USER; add it to your firewall configuration to keep it across reboots)"
}

start_podman() {
    local socket
    if [ "$(id -u)" -eq 0 ]; then
        socket=/run/podman/podman.sock
    else
        socket="${XDG_RUNTIME_DIR:-/run/user/$(id -u)}/podman/podman.sock"
    fi
    export DOCKER_HOST="unix://$socket"
    if podman --url "$DOCKER_HOST" info >/dev/null 2>&1; then
        [ "$CONTAINERS_CONF_CHANGED" = 1 ] || return 0
        # A running service read the configuration when it started.
        say "restarting Podman's API service for the new configuration"
        if [ "$(id -u)" -eq 0 ] && [ -d /run/systemd/system ] && systemctl is-active --quiet podman.socket 2>/dev/null; then
            systemctl restart podman.service 2>/dev/null || true
        elif [ "$(id -u)" -ne 0 ] && systemctl --user is-active --quiet podman.socket 2>/dev/null; then
            systemctl --user restart podman.service 2>/dev/null || true
        else
            pkill -f "podman system service --time=0 $DOCKER_HOST" || true
            sleep 1
        fi
    fi
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        say "starting Podman's API socket with systemd"
        if [ "$(id -u)" -eq 0 ]; then
            systemctl enable --now podman.socket || true
        else
            systemctl --user enable --now podman.socket || true
        fi
    fi
    if ! podman --url "$DOCKER_HOST" info >/dev/null 2>&1; then
        say "starting Podman's API service in the background (log: ${socket%/*}/service.log)"
        mkdir -p "${socket%/*}"
        setsid podman system service --time=0 "$DOCKER_HOST" >"${socket%/*}/service.log" 2>&1 </dev/null &
    fi
    for _ in $(seq 1 30); do
        podman --url "$DOCKER_HOST" info >/dev/null 2>&1 && return 0
        sleep 1
    done
    die "Podman's API service did not start at $socket"
}

build_binary() {
    command -v cargo >/dev/null 2>&1 || die "Rust is missing: install it with rustup (https://rustup.rs), then rerun"
    say "building the release binary"
    cargo build --release --locked --quiet
    mkdir -p "$BIN_DIR"
    install -m 0755 target/release/multilang-sandbox "$BIN"
    say "installed $BIN"
}

base_image_present() {
    if [ "$PODMAN" = 1 ]; then
        podman --url "$DOCKER_HOST" image exists "$BASE_IMAGE"
    else
        docker image inspect "$BASE_IMAGE" >/dev/null 2>&1
    fi
}

build_images() {
    say "building the sandbox images (first time: a few minutes)"
    if [ -z "$SUDO" ] || base_image_present; then
        "$BIN" images build $ML_FLAG
    else
        # The base image may have to be made with debootstrap, which needs root.
        $SUDO env "PATH=$PATH" ${DOCKER_HOST:+DOCKER_HOST="$DOCKER_HOST"} "$BIN" images build $ML_FLAG
    fi
}

register_clients() {
    # With Podman the clients start the server with DOCKER_HOST set, so it
    # uses Podman even where a Docker socket exists too.
    local add_env="" json_env=""
    if [ "$PODMAN" = 1 ]; then
        add_env=" --env DOCKER_HOST=$DOCKER_HOST"
        json_env=',
      "env": {"DOCKER_HOST": "'"$DOCKER_HOST"'"}'
    fi
    if [ "${MULTILANG_SANDBOX_NO_REGISTER:-0}" != "1" ] && command -v claude >/dev/null 2>&1; then
        if claude mcp get multilang-sandbox >/dev/null 2>&1; then
            say "Claude Code already has multilang-sandbox registered"
        else
            say "registering with Claude Code"
            # shellcheck disable=SC2086
            claude mcp add --scope user multilang-sandbox $add_env -- "$BIN" \
                || say "could not register; run: claude mcp add --scope user multilang-sandbox${add_env} -- $BIN"
        fi
    fi
    cat <<CONFIG

multilang-sandbox is installed: $BIN

Claude Code:
  claude mcp add --scope user multilang-sandbox${add_env} -- $BIN

Claude Desktop (claude_desktop_config.json; on macOS in
~/Library/Application Support/Claude/, on Windows in %APPDATA%\\Claude\\):
{
  "mcpServers": {
    "multilang-sandbox": {
      "command": "$BIN",
      "args": []$json_env
    }
  }
}

LM Studio (~/.lmstudio/mcp.json, or Program > Install > Edit mcp.json):
{
  "mcpServers": {
    "multilang-sandbox": {
      "command": "$BIN",
      "args": []$json_env
    }
  }
}
CONFIG
}

if [ "$PODMAN" = 1 ]; then
    install_podman
    start_podman
    allow_podman_bridges
else
    install_prerequisites
    start_docker
fi
if [ "$GVISOR" = 1 ]; then install_gvisor; fi
build_binary
build_images
register_clients
