#!/usr/bin/env bash
# with-services.sh CMD [ARGS...] — runs CMD with a real Kafka and Redis:
# starts whichever of them is not already running, exports
# HERALD_TEST_KAFKA and HERALD_TEST_REDIS (what internal/testkit reads),
# and afterwards stops only what it started, whatever CMD's outcome.
# Set HERALD_KEEP_SERVICES=1 to leave them running.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
started=()

cleanup() {
	local rc=$? svc out
	trap - EXIT INT TERM
	if [[ -z ${HERALD_KEEP_SERVICES:-} ]]; then
		# Quietly: the test runner's summary should stay the last output.
		for svc in "${started[@]}"; do
			out=$("$here/$svc.sh" stop 2>&1) || printf '%s\n' "$out" >&2
		done
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start SVC VAR starts SVC unless it is running and stores its address
# (the last line start prints) in VAR.
start() {
	local svc=$1 var=$2 addr
	# status fails when this checkout's service is not running; remember it
	# before start, which may fail half-way and still leave a process to stop.
	"$here/$svc.sh" status >/dev/null || started+=("$svc")
	addr=$("$here/$svc.sh" start)
	printf -v "$var" '%s' "${addr##*$'\n'}"
}

start kafka HERALD_TEST_KAFKA
start redis HERALD_TEST_REDIS
start jaeger HERALD_TEST_JAEGER
HERALD_TEST_OTLP=$("$here/jaeger.sh" otlp)
export HERALD_TEST_KAFKA HERALD_TEST_REDIS HERALD_TEST_JAEGER HERALD_TEST_OTLP
echo "with-services: HERALD_TEST_KAFKA=$HERALD_TEST_KAFKA HERALD_TEST_REDIS=$HERALD_TEST_REDIS HERALD_TEST_JAEGER=$HERALD_TEST_JAEGER" >&2

"$@"
