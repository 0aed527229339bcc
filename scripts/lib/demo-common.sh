# Shell helpers for scripts/demo.sh. Sourced, not run.
# Every function logs what it does; none of them prints output it did not observe.

# Prints one step header.
step() { printf '\n==> %s\n' "$*"; }
# Prints a note about something the demo skipped or replaced, and why.
skipped() { printf '    SKIPPED: %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

# Waits until a command succeeds, polling every 0.2 s, for at most $1 seconds.
wait_for() {
    local timeout="$1"; shift
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            return 1
        fi
        sleep 0.2
    done
}

# Starts a background process in a network namespace; stores its pid in $WORK/run/$name.pid.
# Usage: start_bg NAME NETNS LOGFILE CMD...
start_bg() {
    local name="$1" netns="$2" log="$3"; shift 3
    local pidfile="$WORK/run/$name.pid"
    if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        info "$name already runs (pid $(cat "$pidfile"))"
        return 0
    fi
    if [ -n "$netns" ]; then
        setsid ip netns exec "$netns" "$@" >>"$log" 2>&1 < /dev/null &
    else
        setsid "$@" >>"$log" 2>&1 < /dev/null &
    fi
    echo $! > "$pidfile"
    info "started $name (pid $!), log $log"
}

# Stops the process recorded in $WORK/run/$1.pid with SIGTERM, then SIGKILL after 5 s.
stop_bg() {
    local pidfile="$WORK/run/$1.pid" pid
    [ -s "$pidfile" ] || return 0
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 5))
        while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        info "stopped $1 (pid $pid)"
    fi
    rm -f "$pidfile"
}

# Runs a command in the namespace when one is given.
in_ns() {
    local netns="$1"; shift
    if [ -n "$netns" ]; then ip netns exec "$netns" "$@"; else "$@"; fi
}

# Prints the agent's /status as a table: service, state, pid, guest ip, spec hash, error.
status_table() {
    local netns="$1" api="$2"
    in_ns "$netns" curl -fsS "http://$api/status" | python3 -c '
import json, sys
s = json.load(sys.stdin)
summary = (s.get("last_tick") or {}).get("summary") or {}
tick = ", ".join("%s %s" % (summary[k], k) for k in ("create", "update", "delete", "unchanged") if k in summary)
print("    node %s, revision %s, last tick: %s" % (s.get("node"), s.get("revision"), tick or "none yet"))
rows = [("SERVICE", "STATE", "PID", "GUEST IP", "SPEC HASH", "ERROR")]
for svc in s.get("services") or []:
    if isinstance(svc, str):
        svc = s["services"][svc] | {"name": svc}
    rows.append((str(svc.get("name") or svc.get("service")), str(svc.get("state")),
                 str(svc.get("pid") or "-"), str(svc.get("guest_ip") or "-"),
                 str(svc.get("spec_hash") or "")[:12], str(svc.get("last_error") or "")))
widths = [max(len(r[i]) for r in rows) for i in range(6)]
for r in rows:
    print("    " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
'
}

# Prints one field of one service from /status. Usage: service_field NETNS API SERVICE FIELD
service_field() {
    local netns="$1" api="$2" service="$3" field="$4"
    in_ns "$netns" curl -fsS "http://$api/status" | python3 -c '
import json, sys
s = json.load(sys.stdin)
name, field = sys.argv[1], sys.argv[2]
services = s.get("services") or []
if isinstance(services, dict):
    services = [v | {"name": k} for k, v in services.items()]
for svc in services:
    if (svc.get("name") or svc.get("service")) == name:
        print(svc.get(field) if svc.get(field) is not None else "")
        break
' "$service" "$field"
}

# Prints "service=pid" for every service in /status, sorted by name.
pids_of() {
    local netns="$1"
    in_ns "$netns" curl -fsS "http://$API/status" | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(" ".join("%s=%s" % (v["name"], v.get("pid")) for v in sorted(s["services"], key=lambda v: v["name"])))
'
}

# Prints each action of the last plan in /status with its reason.
plan_reasons() {
    local netns="$1"
    in_ns "$netns" curl -fsS "http://$API/status" | python3 -c '
import json, sys
s = json.load(sys.stdin)
for a in ((s.get("last_tick") or {}).get("plan") or {}).get("actions") or []:
    print("      %s %s: %s" % (a.get("kind"), a.get("service"), a.get("reason")))
'
}
