#!/bin/sh
# Verifies the gantry units with systemd-analyze (installs Debian's systemd package for it when
# missing) and checks the sysusers.d and tmpfiles.d files parse. Used by tests/tests/daemon_units.rs.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v systemd-analyze >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The units name /usr/bin/gantry*: verify against a root with stand-in binaries when absent.
for unit in gantry.service gantry-secrets.service; do
    sed -e "s#/usr/bin/gantry-secrets#$tmp/bin/gantry-secrets#g" \
        -e "s#/usr/bin/gantryd #$tmp/bin/gantryd #g" "$here/$unit" > "$tmp/$unit"
done
mkdir -p "$tmp/bin"
printf '#!/bin/sh\nexit 0\n' > "$tmp/bin/gantryd"
cp "$tmp/bin/gantryd" "$tmp/bin/gantry-secrets"
chmod +x "$tmp/bin/gantryd" "$tmp/bin/gantry-secrets"
# docker.service may not exist on a build machine: a stand-in keeps Requires= resolvable.
printf '[Unit]\nDescription=stand-in\n[Service]\nExecStart=/bin/true\n' > "$tmp/docker.service"
out=$(SYSTEMD_UNIT_PATH="$tmp:" systemd-analyze verify --man=no "$tmp/gantry.service" "$tmp/gantry-secrets.service" 2>&1) || {
    echo "$out"; exit 1; }
# Any warning about our units is a failure too.
if echo "$out" | grep -E "gantry(-secrets)?\.service" ; then exit 1; fi
# sysusers creates group gantry inside the scratch root, where tmpfiles then resolves it.
mkdir -p "$tmp/etc"
systemd-sysusers --root="$tmp" "$here/gantry.sysusers.conf"
grep -q '^gantry:' "$tmp/etc/group"
systemd-tmpfiles --root="$tmp" --create "$here/gantry.tmpfiles.conf"
test -d "$tmp/run/gantry" && test -d "$tmp/var/lib/gantry"
echo "units verified"
