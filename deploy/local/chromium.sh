#!/usr/bin/env bash
# chromium.sh — makes sure Debian's Chromium is installed, for the dashboard's
# browser test (internal/ui), and prints its path as the last line on stdout.
# Installs it with apt-get when missing (as root, or with passwordless sudo).
#
#   HERALD_CHROMIUM   a browser to use instead (printed as is when it exists)
set -euo pipefail

say() { echo "chromium.sh: $*" >&2; }

for candidate in "${HERALD_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
	if [[ -n $candidate && -x $candidate ]]; then
		echo "$candidate"
		exit 0
	fi
done

sudo=()
((EUID == 0)) || sudo=(sudo -n)
say "chromium not found; installing it with apt-get"
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" apt-get install -y -q chromium >&2; then
	"${sudo[@]}" apt-get update -q >&2
	"${sudo[@]}" apt-get install -y -q chromium >&2
fi
[[ -x /usr/bin/chromium ]] || { say "chromium is still missing after apt-get install"; exit 1; }
echo /usr/bin/chromium
