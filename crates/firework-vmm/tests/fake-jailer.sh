#!/bin/bash
# Stands in for Firecracker's jailer in tests: records its arguments, builds the jail the
# way the jailer does (`<base>/<exec name>/<id>/root` with `/run` and a copy of the binary),
# creates the cgroup directory, and runs the binary chrooted in the jail as uid:gid with
# the jailer's Firecracker arguments. The host's /usr is bind-mounted read-only inside a
# private mount namespace so that the dynamically linked emulator can run there; those
# mounts vanish with the process. Needs root, unshare(1) and chroot(1).
set -euo pipefail

printf '%s\n' "$@" > "$FAKE_JAILER_ARGS"

id='' exec_file='' uid='' gid='' base='' parent=''
while [ $# -gt 0 ]; do
  case "$1" in
    --id) id=$2; shift 2 ;;
    --exec-file) exec_file=$2; shift 2 ;;
    --uid) uid=$2; shift 2 ;;
    --gid) gid=$2; shift 2 ;;
    --chroot-base-dir) base=$2; shift 2 ;;
    --parent-cgroup) parent=$2; shift 2 ;;
    --cgroup-version | --cgroup) shift 2 ;;
    --) shift; break ;;
    *) echo "fake jailer: unexpected argument $1" >&2; exit 1 ;;
  esac
done

exec_name=$(basename "$(readlink -f "$exec_file")")
root="$base/$exec_name/$id/root"
mkdir -p "$root/run"
chown "$uid:$gid" "$root/run"
cp "$exec_file" "$root/$exec_name"
if [ -n "$parent" ]; then
  mkdir -p "$FAKE_CGROUP_ROOT/$parent/$id"
fi

export FAKE_ROOT="$root"
exec unshare --mount --propagation private -- /bin/sh -c '
  set -e
  for d in usr lib lib64 bin; do
    if [ -L "/$d" ]; then
      ln -sfn "$(readlink "/$d")" "$FAKE_ROOT/$d"
    elif [ -d "/$d" ]; then
      mkdir -p "$FAKE_ROOT/$d"
      mount --bind "/$d" "$FAKE_ROOT/$d"
      mount -o remount,bind,ro "$FAKE_ROOT/$d"
    fi
  done
  exec chroot --userspec="$0" "$FAKE_ROOT" "$@"
' "$uid:$gid" "/$exec_name" --id "$id" --start-time-us 0 --start-time-cpu-us 0 \
  --parent-cpu-time-us 0 "$@"
