# shellcheck shell=bash
# Shared helpers for the deploy/local service scripts. Sourced, not run.
#
# Conventions every script follows: progress and errors go to stderr, so the
# only thing on stdout is the address printed as the last line of `start`
# (callers do `addr=$(deploy/local/kafka.sh start)`).

# Default to the checkout's .local-services (git-ignored), wherever the
# script is called from.
HERALD_LOCAL_DIR=${HERALD_LOCAL_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.local-services}
HERALD_CACHE_DIR=${HERALD_CACHE_DIR:-${HOME:-/root}/.cache/herald}

say() { printf '%s: %s\n' "${SERVICE:-herald}" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# pid_of FILE prints the pid stored in FILE when that process is still alive
# and its command line contains PATTERN (so a recycled pid is not mistaken for
# ours); prints nothing otherwise.
pid_of() {
	local file=$1 pattern=$2 pid
	[[ -s $file ]] || return 0
	pid=$(<"$file")
	[[ $pid =~ ^[0-9]+$ ]] || return 0
	[[ -r /proc/$pid/cmdline ]] || return 0
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$pattern" || return 0
	echo "$pid"
}

# port_open HOST PORT succeeds when something accepts TCP connections there.
port_open() {
	(exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# stop_pid PID NAME sends SIGTERM, waits up to $3 seconds (default 30), then
# SIGKILLs what is left.
stop_pid() {
	local pid=$1 name=$2 timeout=${3:-30} i
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < timeout * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	say "$name (pid $pid) did not stop in ${timeout}s; killing it"
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
}

# with_lock FILE serialises concurrent start/stop of the same service dir.
# It holds fd 9: a daemon started under the lock must get 9>&- or it keeps
# the lock for its whole life.
with_lock() {
	local file=$1
	mkdir -p "$(dirname "$file")"
	exec 9>"$file"
	if command -v flock >/dev/null; then
		flock -w 300 9 || die "timed out waiting for lock $file"
	fi
}

# log_tail FILE shows the end of a service log on stderr after a failure.
log_tail() {
	local file=$1 n=${2:-40}
	[[ -s $file ]] || return 0
	printf -- '--- last %d lines of %s ---\n' "$n" "$file" >&2
	tail -n "$n" "$file" >&2
	printf -- '---\n' >&2
}

# stop_service NAME MATCH TIMEOUT: stops the process of $PIDFILE whose
# command line contains MATCH (under the lock of $DIR), waiting up to TIMEOUT
# seconds; a service that is not running is left as it is.
stop_service() {
	local name=$1 match=$2 timeout=$3 pid
	with_lock "$DIR.lock"
	pid=$(pid_of "$PIDFILE" "$match")
	if [[ -z $pid ]]; then
		rm -f "$PIDFILE"
		say "not running"
		return 0
	fi
	say "stopping (pid $pid)"
	stop_pid "$pid" "$name" "$timeout"
	rm -f "$PIDFILE"
	say "stopped"
}

# service_status MATCH PORT WHERE: prints whether the service of $PIDFILE
# runs (WHERE says on what) and exits 0, or 3 when it does not, saying when
# PORT is served by a process these scripts did not start.
service_status() {
	local match=$1 port=$2 where=$3 pid
	pid=$(pid_of "$PIDFILE" "$match")
	if [[ -n $pid ]]; then
		echo "running (pid $pid) on $where"
		return 0
	fi
	if port_open "$HOST" "$port"; then
		echo "stopped ($HOST:$port is served by a process not started from $DIR)"
	else
		echo "stopped"
	fi
	return 3
}
