#!/usr/bin/env bash
# Installs what Ferry needs on a fresh Debian/Ubuntu machine, then builds it.
# Safe to run again: it only installs what is missing and only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

need_debs=()
command -v bwrap >/dev/null 2>&1 || need_debs+=(bubblewrap)
command -v setpriv >/dev/null 2>&1 || need_debs+=(util-linux)
command -v prlimit >/dev/null 2>&1 || need_debs+=(util-linux)
command -v flock >/dev/null 2>&1 || need_debs+=(util-linux)
# The sandbox hands each task its environment through a small perl shim (perl-base is Essential on Debian).
command -v perl >/dev/null 2>&1 || need_debs+=(perl-base)
# --network public: pasta (passt) connects a task's own network namespace to the internet, and
# nftables filters it (unshare, nsenter: util-linux; umount: mount, Essential).
command -v pasta >/dev/null 2>&1 || need_debs+=(passt)
command -v nft >/dev/null 2>&1 || need_debs+=(nftables)
command -v unshare >/dev/null 2>&1 || need_debs+=(util-linux)
for extra in "$@"; do
  case "$extra" in
    --with-test-deps)
      command -v perl >/dev/null 2>&1 || need_debs+=(perl)
      command -v ip >/dev/null 2>&1 || need_debs+=(iproute2)
      # Runtime tests use real clients and throwaway servers.
      [ -x /usr/lib/postgresql/15/bin/initdb ] || need_debs+=(postgresql-15)
      command -v psql >/dev/null 2>&1 || need_debs+=(postgresql-client-15)
      command -v mariadbd >/dev/null 2>&1 || need_debs+=(mariadb-server)
      command -v mariadb >/dev/null 2>&1 || need_debs+=(mariadb-client)
      [ -x /usr/bin/python3 ] || need_debs+=(python3)
      command -v kubectl >/dev/null 2>&1 || need_debs+=(kubernetes-client)
      # The masking tests produce each encoding with the real tools.
      command -v xxd >/dev/null 2>&1 || need_debs+=(xxd)
      command -v hexdump >/dev/null 2>&1 || need_debs+=(bsdextrautils)
      command -v openssl >/dev/null 2>&1 || need_debs+=(openssl)
      # The deploy tests check the generated systemd units (systemd-analyze verify and security).
      command -v systemd-analyze >/dev/null 2>&1 || need_debs+=(systemd)
      # The seccomp test regenerates the checked-in filters with libseccomp's own bindings.
      /usr/bin/python3 -c 'import seccomp' >/dev/null 2>&1 || need_debs+=(python3-seccomp)
      # The web UI's browser tests drive Debian's Chromium with playwright-core (no browser download).
      [ -x /usr/bin/chromium ] || need_debs+=(chromium)
      ;;
  esac
done

if [ ${#need_debs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian packages: ${need_debs[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_debs[@]}" >/dev/null
  else
    echo "setup: missing ${need_debs[*]} (install them as root for the bubblewrap sandbox, and passt and nftables for --network public; without them the agent refuses to sandbox, and refuses --network public tasks)" >&2
  fi
fi

# npm ci when node_modules is missing or older than the lock file.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "setup: building" >&2
npm run --silent build
