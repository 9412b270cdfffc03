# shellcheck shell=bash
# Service `images`: local test images made with `docker import` of a rootfs built from Debian's
# busybox-static (no image registry is reachable). gantry-test/busybox:latest has /bin/busybox
# with a symlink per applet (sh, httpd, wget, nc, ...), /etc/passwd, /etc/group, /tmp, /var/www.
# Rebuilt only when its content label (busybox binary + this script) changes.

TEST_IMAGE="gantry-test/busybox:latest"
IMAGE_LABEL="org.gantry.test.content"

up_images() {
	apt_install busybox-static
	local busybox=/bin/busybox
	[[ -x "$busybox" ]] || die "images: $busybox missing after installing busybox-static"
	file_is_static "$busybox" || die "images: $busybox is not statically linked (busybox-static expected)"

	local content current
	content="$(cat "$busybox" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-32)"
	current="$(docker image inspect -f "{{index .Config.Labels \"$IMAGE_LABEL\"}}" "$TEST_IMAGE" 2>/dev/null || true)"
	if [[ "$current" == "$content" ]]; then
		log "images: $TEST_IMAGE up to date"
	else
		log "images: building $TEST_IMAGE"
		build_busybox_image "$busybox" "$content"
	fi
	env_set GANTRY_TEST_IMAGE "$TEST_IMAGE"
}

file_is_static() {
	# A static binary has no PT_INTERP program header; read it without depending on `file`.
	! LC_ALL=C grep -q --binary-files=text '/lib64/ld-linux' "$1"
}

build_busybox_image() {
	local busybox="$1" content="$2" root applet logfile="$LOG_DIR/images.log"
	rm -rf "$GANTRY_TEST_STATE"/rootfs.*
	root="$(mktemp -d "$GANTRY_TEST_STATE/rootfs.XXXXXX")"
	mkdir -p "$root"/{bin,sbin,etc,root,tmp,var/www,usr/bin,usr/sbin,proc,sys,dev,run,home}
	chmod 1777 "$root/tmp"
	chmod 700 "$root/root"
	cp "$busybox" "$root/bin/busybox"
	chmod 755 "$root/bin/busybox"
	# One symlink per applet; at least these must exist.
	for applet in $("$busybox" --list) sh httpd wget nc sleep cat echo ls env kill ps date mkdir \
		rm grep test true false printf id hostname; do
		[[ "$applet" == busybox ]] && continue
		[[ -e "$root/bin/$applet" ]] || ln -s busybox "$root/bin/$applet"
	done
	cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
	cat >"$root/etc/group" <<'GROUP'
root:x:0:
daemon:x:1:
www-data:x:33:
nogroup:x:65534:
GROUP
	printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
	printf '<html><body>gantry-test busybox</body></html>\n' >"$root/var/www/index.html"
	tar --numeric-owner --owner=0 --group=0 -C "$root" -cf - . |
		docker import \
			--change 'CMD ["/bin/sh"]' \
			--change "LABEL $IMAGE_LABEL=$content" \
			--change 'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin' \
			- "$TEST_IMAGE" >>"$logfile" 2>&1 ||
		die "images: docker import of $TEST_IMAGE" "$logfile"
	rm -rf "$root"
	# The image must run: a shell, a file, an applet.
	local out
	out="$(docker run --rm "$TEST_IMAGE" sh -c 'cat /etc/passwd >/dev/null && id -u && test -d /var/www && echo ok' 2>&1)" ||
		die "images: $TEST_IMAGE does not run: $out"
	[[ "$out" == *ok ]] || die "images: $TEST_IMAGE sanity check printed: $out"
	log "images: built $TEST_IMAGE"
}
