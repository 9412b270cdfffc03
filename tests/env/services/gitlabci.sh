# shellcheck shell=bash
# Service `gitlabci`: gitlab-ci-local (npm, pinned) in a private prefix ($GANTRY_NPM_PREFIX), the
# runner of .gitlab-ci.yml files that the GitLab template's test uses (shell executor: jobs
# without `image:` run on this host). Node.js, npm, git, rsync and the AWS CLI from Debian when
# missing. Nothing runs.
# 4.64.1 is the newest release that runs on Node 20, which machines of this kind have (later
# ones call Set.prototype.union, Node 22). Debian 12's own nodejs (installed when there is none)
# is 18, which the package accepts (engines: node >= 18) but this project has not run it on.

up_gitlabci() {
	local bin="$GANTRY_NPM_PREFIX/node_modules/.bin/gitlab-ci-local" version
	# What it runs besides node: git (the job's commit), rsync (copies the project per job);
	# what the template's jobs run: the AWS CLI (ECR login in the build job).
	command -v git >/dev/null || apt_install git
	command -v rsync >/dev/null || apt_install rsync
	command -v aws >/dev/null || apt_install awscli
	if ! version="$("$bin" --version 2>/dev/null)" || [[ "$version" != "$GITLAB_CI_LOCAL_VERSION" ]]; then
		command -v npm >/dev/null || apt_install nodejs npm
		log "npm install gitlab-ci-local@$GITLAB_CI_LOCAL_VERSION (prefix $GANTRY_NPM_PREFIX)"
		mkdir -p "$GANTRY_NPM_PREFIX"
		(cd "$GANTRY_NPM_PREFIX" && npm install --prefix "$GANTRY_NPM_PREFIX" --no-audit --no-fund \
			"gitlab-ci-local@$GITLAB_CI_LOCAL_VERSION") >>"$LOG_DIR/npm.log" 2>&1 ||
			die "npm install gitlab-ci-local@$GITLAB_CI_LOCAL_VERSION" "$LOG_DIR/npm.log"
		version="$("$bin" --version 2>&1)" || die "gitlabci: $bin --version: $version"
	fi
	log "gitlabci: $bin ($version)"
	env_set GITLAB_CI_LOCAL_BIN "$bin"
}
