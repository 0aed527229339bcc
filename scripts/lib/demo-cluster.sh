# Cluster mode of scripts/demo.sh: Git repository -> signed webhook -> enricher with the
# scheduler -> Garage -> two agents, each in its own network namespace with its own Traefik.
# The agents publish heartbeats to Garage, and the enricher places every service on a node
# from them. Sourced by demo.sh after demo-common.sh; uses its variables and functions.

GARAGE_S3=10.77.0.1:3900
GARAGE_RPC=127.0.0.1:3901
ENRICHER=127.0.0.1:18600
CLUSTER="$WORK/cluster"

find_garage() {
    command -v garage 2>/dev/null || { [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/garage" ] && echo "${CARGO_HOME:-$HOME/.cargo}/bin/garage"; }
}

# gitops_change RUN: commits an env change to api, pushes, sends the webhook, triggers the
# agent and prints the time from the commit until api runs the new spec and answers.
gitops_change() {
    local run="$1" old_hash start runs_before
    step "GitOps change $run: commit an env change to api, push, send the webhook"
    runs_before="$(enricher_runs_ok)"
    old_hash="$(service_field "$NS1" "$API" api spec_hash)"
    sed -i "s|^  LOG_LEVEL: .*|  LOG_LEVEL: debug-$run-$(date -u +%H%M%S)|" "$CLUSTER/checkout/services/api.yaml"
    start=$(date +%s.%N)
    git -C "$CLUSTER/checkout" -c user.name=demo -c user.email=demo@localhost commit -q -am "Change api LOG_LEVEL"
    git -C "$CLUSTER/checkout" push -q origin main
    send_webhook
    wait_for 30 enricher_ran_after "${runs_before:-0}" || { info "the enricher did not publish within 30 s:"; enricher_errors; }
    # The agent polls every 30 s; POST /v1/reconcile makes it read the new config now.
    in_ns "$NS1" curl -fsS -X POST "http://$API/v1/reconcile" >/dev/null
    if wait_for 60 rolled "$NS1" api "$old_hash" && wait_for 30 curl_service_ok "$NS1" api.demo.localhost /; then
        info "commit-to-healthy: api rolled and answers through Traefik $(awk "BEGIN{printf \"%.2f\", $(date +%s.%N) - $start}") s after the commit"
    else
        info "api did not roll and answer through Traefik within 90 s"
    fi
}

garage_cli() {
    "$GARAGE" -c "$CLUSTER/garage/garage.toml" "$@"
}

# Starts Garage on the host bridge address and creates the bucket and key once.
start_garage() {
    step "Garage (S3) on $GARAGE_S3"
    bash "$REPO/.ci/setup-garage.sh" 2>&1 | grep -i garage | sed 's/^/    /' || true
    GARAGE="$(find_garage)" || die "garage is not installed (.ci/setup-garage.sh failed)"
    mkdir -p "$CLUSTER/garage"
    if [ ! -s "$CLUSTER/garage/garage.toml" ]; then
        cat > "$CLUSTER/garage/garage.toml" <<EOF
metadata_dir = "$CLUSTER/garage/meta"
data_dir = "$CLUSTER/garage/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "$GARAGE_RPC"
rpc_public_addr = "$GARAGE_RPC"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

[s3_api]
s3_region = "garage"
api_bind_addr = "$GARAGE_S3"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:3903"
EOF
    fi
    start_bg garage "" "$WORK/logs/garage.log" "$GARAGE" -c "$CLUSTER/garage/garage.toml" server
    wait_for 30 garage_cli status || die "garage does not respond (log: $WORK/logs/garage.log)"
    if [ ! -s "$CLUSTER/garage/key" ]; then
        local node
        node="$(garage_cli node id -q | cut -d@ -f1)"
        garage_cli layout assign -z dc1 -c 1G "${node:0:16}" >/dev/null
        garage_cli layout apply --version 1 >/dev/null
        wait_for 30 garage_cli bucket create firework || die "garage bucket create failed"
        garage_cli key create demo >/dev/null
        garage_cli bucket allow --read --write --owner firework --key demo >/dev/null
        garage_cli key info demo --show-secret > "$CLUSTER/garage/key"
        info "created bucket firework and key demo"
    fi
    AWS_ACCESS_KEY_ID="$(sed -n 's/^ *Key ID: *//p' "$CLUSTER/garage/key")"
    AWS_SECRET_ACCESS_KEY="$(sed -n 's/^ *Secret key: *//p' "$CLUSTER/garage/key")"
    [ -n "$AWS_ACCESS_KEY_ID" ] && [ -n "$AWS_SECRET_ACCESS_KEY" ] || die "no key in $CLUSTER/garage/key"
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
    export AWS_REGION=garage AWS_DEFAULT_REGION=garage
}

# Makes the Git repository from examples/input with the image and kernel paths rewritten and
# every guest port set to 8080, where the example image's web server listens.
make_repo() {
    step "Git repository $CLUSTER/repo.git from examples/input"
    if [ -d "$CLUSTER/repo.git" ]; then
        info "exists"
        return 0
    fi
    local src="$CLUSTER/checkout" svc
    mkdir -p "$src"
    git init -q -b main "$src"
    cp "$REPO/examples/input/defaults.yaml" "$src/"
    cp -r "$REPO/examples/input/services" "$REPO/examples/input/tenants" "$src/"
    # Images: each guest boots its own copy of the example image, because two guests cannot
    # share one writable root drive. A tenant copy of a base service gets the base image's
    # file name with the tenant id in front (acme-api.ext4), so it has its own file too.
    local images="api cache billing acme-api acme-cache globex-reports"
    for svc in $images; do
        [ -s "$WORK/images/$svc.ext4" ] || cp "$WORK/images/example-rootfs.ext4" "$WORK/images/$svc.ext4"
    done
    sed -i -E \
        -e "s|/var/lib/images/vmlinux-6.1|$KERNEL|" \
        -e "s|/var/lib/images/([a-z0-9-]+)-rootfs.ext4|$WORK/images/\\1.ext4|" \
        -e 's|(init=/sbin/fc-init)( -- [^"]*)?"|\1 -- /bin/service"|' \
        -e 's|^memory_mb: .*|memory_mb: 128|' -e 's|^vcpus: .*|vcpus: 1|' \
        -e 's|^(  +)(port\|vm_port): [0-9]+$|\1\2: 8080|' \
        -e 's|^(  +path): /.*$|\1: /healthz|' \
        -e 's|host: ([a-z0-9-]+)\.example\.com|host: \1.demo.localhost|' \
        -e 's|host: ([a-z0-9-]+)\.([a-z0-9-]+)\.example\.com|host: \1.\2.demo.localhost|' \
        "$src/defaults.yaml" "$src"/services/*.yaml "$src"/tenants/*/*.yaml
    # api and its tenant copy acme-api share anti_affinity_group api, which needs two nodes
    # of type web; this demo has one.
    sed -i '/^anti_affinity_group:/d' "$src/services/api.yaml"
    info "note: anti_affinity_group is removed from api because the demo has one node of type web"
    for f in "$src"/services/*.yaml "$src"/tenants/*/*.yaml; do
        case "$f" in
            */services/*) svc="$(sed -n 's/^name: //p' "$f")" ;;
            *) svc="$(basename "$(dirname "$f")")-$(basename "$f" .yaml)" ;;
        esac
        grep -q '^env:' "$f" || printf 'env:\n' >> "$f"
        sed -i "s|^env:|env:\n  SERVICE_NAME: $svc|" "$f"
    done
    git -C "$src" add -A
    git -C "$src" -c user.name=demo -c user.email=demo@localhost commit -q -m "Example input"
    git clone -q --bare "$src" "$CLUSTER/repo.git"
    git -C "$src" remote add origin "$CLUSTER/repo.git"
    info "services: $(cd "$src/services" && ls | tr '\n' ' ')"
    info "tenants:  $(cd "$src/tenants" && ls -d */* | tr '\n' ' ')"
}

start_enricher() {
    step "Enricher serving webhooks on $ENRICHER"
    [ -s "$CLUSTER/webhook-secret" ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$CLUSTER/webhook-secret"
    [ -s "$CLUSTER/enricher.yaml" ] || cat > "$CLUSTER/enricher.yaml" <<EOF
listen: $ENRICHER
repository: file://$CLUSTER/repo.git
branch: main
output: s3://firework/cluster
registry: s3://firework/cluster
s3_endpoint: http://$GARAGE_S3
s3_region: garage
secret_file: $CLUSTER/webhook-secret
EOF
    start_bg enricher "" "$WORK/logs/enricher.log" "$BIN/firework-enricher" serve --config "$CLUSTER/enricher.yaml"
    wait_for 20 curl -fsS "http://$ENRICHER/healthz" || die "the enricher does not respond (log: $WORK/logs/enricher.log)"
}

# Sends a signed GitHub push webhook for the checkout's HEAD.
send_webhook() {
    local after body signature
    after="$(git -C "$CLUSTER/checkout" rev-parse HEAD)"
    body="{\"ref\":\"refs/heads/main\",\"after\":\"$after\",\"deleted\":false}"
    signature="sha256=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$(cat "$CLUSTER/webhook-secret")" -r | cut -d' ' -f1)"
    printf '    $ curl -X POST http://%s/webhook -H "X-GitHub-Event: push" -H "X-Hub-Signature-256: %s" ...\n' "$ENRICHER" "${signature:0:20}..."
    curl -sS -X POST "http://$ENRICHER/webhook" \
        -H "Content-Type: application/json" -H "X-GitHub-Event: push" \
        -H "X-GitHub-Delivery: demo-$after-$RANDOM" -H "X-Hub-Signature-256: $signature" \
        --data "$body" | sed 's/^/    /'
    echo
}

# start_cluster_node NAME NS INDEX NODE_TYPE: an agent that reads nodes/NAME.yaml, which the
# scheduler writes, and offers NODE_TYPE and 8 vCPUs (more than this host has: vCPUs are
# overcommitted) in its heartbeat.
start_cluster_node() {
    local name="$1" ns="$2" index="$3" node_type="$4" dir="$CLUSTER/$1"
    step "Node $name: namespace $ns, host_ip 10.77.0.$((10 + index)), node type $node_type"
    setup_netns "$ns" "$index"
    write_agent_config "$name" "$dir" "store_type: s3
s3_bucket: firework
s3_prefix: cluster/
s3_region: garage
s3_endpoint_url: http://$GARAGE_S3
host_ip: 10.77.0.$((10 + index))
node_types: [$node_type]
capacity_vcpus: 8" "$name" 30s
    start_node "$name" "$ns" "$dir"
}

# first_render: sends the webhook until the enricher has placed and published the input. A
# render fails until both agents' heartbeats are in Garage, because no live node has the
# node type of some service before that.
first_render() {
    step "First render: a signed push webhook for the initial commit"
    local attempt runs
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        runs="$(enricher_runs_ok)"
        send_webhook
        if wait_for 15 enricher_ran_after "${runs:-0}"; then
            info "the enricher placed every service and published nodes/<node>.yaml and index.json to s3://firework/cluster/"
            return 0
        fi
        info "attempt $attempt: no successful render yet:"
        enricher_errors | tail -n 1
        sleep 2
    done
    die "the enricher did not publish within 10 attempts (log: $WORK/logs/enricher.log)"
}

# show_placement: prints which node runs which service, from each agent's /status.
show_placement() {
    local ns node
    for node in node-a:$NS1 node-b:$NS2; do
        ns="${node#*:}"
        info "${node%%:*}: $(in_ns "$ns" curl -fsS "http://$API/status" | python3 -c '
import json, sys
print(" ".join(sorted(v["name"] for v in json.load(sys.stdin)["services"])))
')"
    done
}

run_cluster() {
    install_packages
    command -v openssl >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null; }
    build
    write_firecracker_wrapper
    setup_netns "$NS1" 1
    start_garage
    make_repo
    start_enricher
    # The agents start first: until the scheduler has seen their heartbeats, it has no node
    # to place a service on.
    start_cluster_node node-a "$NS1" 1 web
    start_cluster_node node-b "$NS2" 2 backend
    first_render
    in_ns "$NS1" curl -fsS -X POST "http://$API/v1/reconcile" >/dev/null
    in_ns "$NS2" curl -fsS -X POST "http://$API/v1/reconcile" >/dev/null
    wait_for 60 rolled "$NS1" api none || info "api is not running on node-a after 60 s"
    wait_for 60 rolled "$NS2" billing none || info "billing is not running on node-b after 60 s"
    step "Placement by the scheduler (node type web -> node-a, backend -> node-b)"
    show_placement
    step "node-a status"
    status_table "$NS1" "$API"
    step "node-b status"
    status_table "$NS2" "$API"
    ensure_routes "$NS1" "$CLUSTER/node-a"
    show_curl "$NS1" api.demo.localhost /
    show_curl "$NS1" api.acme.demo.localhost /
    step "Cross-node link: the enricher set api's BILLING_ADDR to node-b's host_ip and billing's host port"
    show_curl "$NS1" api.demo.localhost /cgi-bin/env | grep -E 'BILLING_ADDR|NODE_IP|CACHE_URL' || info "no BILLING_ADDR in api's environment"
    printf '    $ ip netns exec %s curl http://10.77.0.12:19090/\n' "$NS1"
    if [ "$GUEST_MODE" -eq 1 ]; then
        wait_for 20 in_ns "$NS1" curl -fsS -m 2 http://10.77.0.12:19090/ >/dev/null || true
        in_ns "$NS1" curl -sS -m 2 http://10.77.0.12:19090/ 2>&1 | sed 's/^/    /'
    fi

    local run
    for run in $(seq 1 "${FIREWORK_DEMO_GITOPS_RUNS:-1}"); do
        gitops_change "$run"
    done
    ensure_routes "$NS1" "$CLUSTER/node-a"
    status_table "$NS1" "$API"
    show_curl "$NS1" api.demo.localhost /cgi-bin/env
    step "Done"
    info "logs: $WORK/logs/   clean up: bash scripts/demo.sh --down"
}

# Prints the number of successful enricher runs (render + publish) from its /metrics.
enricher_runs_ok() {
    curl -fsS "http://$ENRICHER/metrics" | sed -n 's/^firework_enricher_runs_total{result="ok"} \([0-9]*\).*/\1/p' | head -n 1
}

# Succeeds when the enricher finished more than $1 successful runs.
enricher_ran_after() {
    local count
    count="$(enricher_runs_ok)"
    [ "${count:-0}" -gt "$1" ]
}

# Prints the last enricher error from its log, for when a run fails.
enricher_errors() {
    grep -iE 'error|fail' "$WORK/logs/enricher.log" | tail -n 3 | cut -c1-240 | sed 's/^/      /'
}
