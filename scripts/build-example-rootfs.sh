#!/usr/bin/env bash
# Builds the example guest root filesystem: Debian's busybox-static, a static fc-init as
# /sbin/fc-init and a small web service, packed into an ext4 image with `mkfs.ext4 -d`
# (no mount and no root needed for the image itself; installing packages needs root).
#
# The service answers HTTP on port 8080 (the port the examples use):
#   GET /          "hello from <service>" where <service> is $SERVICE_NAME (or the hostname)
#   GET /healthz   "ok"
#   GET /cgi-bin/env  the environment the service sees, one KEY=VALUE per line
#
# Usage: scripts/build-example-rootfs.sh [OUTPUT.ext4]   (default build/example-rootfs.ext4)
set -euo pipefail
cd "$(dirname "$0")/.."

output="${1:-build/example-rootfs.ext4}"
size="${ROOTFS_SIZE:-32M}"

# Debian's busybox-static installs a statically linked /bin/busybox with httpd.
if ! dpkg -s busybox-static >/dev/null 2>&1 || ! command -v mkfs.ext4 >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "build-example-rootfs: busybox-static or e2fsprogs is missing; run as root to install them" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends busybox-static e2fsprogs >/dev/null
fi

fc_init="$(bash scripts/build-fc-init.sh | tail -n 1)"

staging="$(mktemp -d)"
trap 'rm -rf "$staging"' EXIT

mkdir -p "$staging"/{bin,sbin,etc,proc,sys,dev,run,tmp,www/cgi-bin,var/log,root}
cp /bin/busybox "$staging/bin/busybox"
for applet in $(/bin/busybox --list); do
    [ -e "$staging/bin/$applet" ] || ln -s busybox "$staging/bin/$applet"
done
install -m 0755 "$fc_init" "$staging/sbin/fc-init"
# The Go firework's kernel args name /sbin/init as the fallback command.
ln -sf /bin/service "$staging/sbin/init"

cat > "$staging/bin/service" <<'SERVICE'
#!/bin/sh
# Example service: busybox httpd on port 8080 with three pages.
name="${SERVICE_NAME:-$(hostname)}"
echo "hello from $name" > /www/index.html
echo ok > /www/healthz
echo "service $name starting on :8080"
exec httpd -f -p 8080 -h /www
SERVICE
chmod 0755 "$staging/bin/service"

cat > "$staging/www/cgi-bin/env" <<'CGI'
#!/bin/sh
echo "Content-Type: text/plain"
echo ""
# httpd adds its own CGI variables; report only what the guest's init passed on.
env | grep -v -E '^(HTTP_|REMOTE_|REQUEST_|SCRIPT_|SERVER_|GATEWAY_|QUERY_STRING|PATH_INFO)' | sort
CGI
chmod 0755 "$staging/www/cgi-bin/env"

echo "root:x:0:0:root:/root:/bin/sh" > "$staging/etc/passwd"
echo "root:x:0:" > "$staging/etc/group"
echo "example" > "$staging/etc/hostname"

mkdir -p "$(dirname "$output")"
rm -f "$output"
mkfs.ext4 -q -F -L firework-example -d "$staging" "$output" "$size"
echo "$output"
