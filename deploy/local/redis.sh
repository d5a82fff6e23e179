#!/usr/bin/env bash
# redis.sh start|stop|status — Debian's redis-server on a loopback port of
# its own, daemonized, nothing persisted. Installs redis-server when missing.
#
#   HERALD_REDIS_PORT   port (default 16379)
#   HERALD_LOCAL_DIR    data, log, pid: $HERALD_LOCAL_DIR/redis
#
# `start` prints the URL as its last line on stdout.
set -euo pipefail

SERVICE=redis
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HOST=127.0.0.1
PORT=${HERALD_REDIS_PORT:-16379}
DIR=$HERALD_LOCAL_DIR/redis
PIDFILE=$DIR/redis.pid
LOG=$DIR/redis.log
URL=redis://$HOST:$PORT/0
# internal/testkit leases one database per test; 16 would make parallel
# tests queue for one.
DATABASES=256

install_redis() {
	command -v redis-server >/dev/null && return 0
	local sudo=()
	((EUID == 0)) || sudo=(sudo -n)
	say "redis-server not found; installing it with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	if ! "${sudo[@]}" apt-get install -y -q redis-server >&2; then
		"${sudo[@]}" apt-get update -q >&2
		"${sudo[@]}" apt-get install -y -q redis-server >&2
	fi
	command -v redis-server >/dev/null || die "redis-server is still missing after apt-get install"
}

# redis_pong succeeds when the server answers PING.
redis_pong() {
	local reply
	reply=$(
		exec 2>/dev/null
		exec 3<>"/dev/tcp/$HOST/$PORT" || exit 1
		printf 'PING\r\n' >&3
		timeout 2 head -c 7 <&3
	) || return 1
	[[ $reply == $'+PONG\r\n' || $reply == $'+PONG\r' || $reply == '+PONG' ]]
}

cmd_start() {
	with_lock "$DIR.lock"
	local pid i
	pid=$(pid_of "$PIDFILE" "redis-server $HOST:$PORT")
	if [[ -n $pid ]] && redis_pong; then
		say "already running (pid $pid)"
		echo "$URL"
		return 0
	fi
	if [[ -z $pid ]] && port_open "$HOST" "$PORT"; then
		if redis_pong; then
			say "a Redis not started from $DIR already serves $HOST:$PORT; using it (stop will not touch it)"
			echo "$URL"
			return 0
		fi
		die "port $PORT is taken by something that is not Redis; set HERALD_REDIS_PORT"
	fi
	if [[ -z $pid ]]; then
		install_redis
		mkdir -p "$DIR"
		rm -f "$PIDFILE"
		# Closing fd 9 keeps the daemon from holding the start/stop lock.
		redis-server - >>"$LOG" 2>&1 9>&- <<-CONF || { log_tail "$LOG"; die "redis-server failed to start"; }
			bind $HOST
			port $PORT
			protected-mode yes
			daemonize yes
			pidfile $PIDFILE
			logfile $LOG
			dir $DIR
			databases $DATABASES
			save ""
			appendonly no
		CONF
	fi
	for ((i = 0; i < 100; i++)); do
		pid=$(pid_of "$PIDFILE" "redis-server $HOST:$PORT")
		if [[ -n $pid ]] && redis_pong; then
			say "ready on $HOST:$PORT (pid $pid, data $DIR)"
			echo "$URL"
			return 0
		fi
		sleep 0.1
	done
	log_tail "$LOG"
	die "redis did not answer PING on $HOST:$PORT within 10s"
}

cmd_stop() { stop_service redis "redis-server $HOST:$PORT" 20; }

cmd_status() { service_status "redis-server $HOST:$PORT" "$PORT" "$HOST:$PORT"; }

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*)
	echo "usage: $0 start|stop|status" >&2
	exit 2
	;;
esac
