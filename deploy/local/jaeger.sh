#!/usr/bin/env bash
# jaeger.sh start|stop|status|build|otlp — a real Jaeger (v2, the collector-based
# `cmd/jaeger` binary) with in-memory storage for tests and local runs, built
# from its Go module so that nothing but go is needed. The module is pinned in
# deploy/local/jaeger/go.mod (a tools module of its own, so herald's go.mod
# stays clean); the binary is cached, and the first build takes about ten
# minutes on two cores.
#
#   HERALD_JAEGER_OTLP_GRPC_PORT  OTLP/gRPC receiver (default 4317)
#   HERALD_JAEGER_OTLP_HTTP_PORT  OTLP/HTTP receiver (default 4318)
#   HERALD_JAEGER_QUERY_PORT      query API and UI (default 16686)
#   HERALD_JAEGER_QUERY_GRPC_PORT query gRPC API (default 16685)
#   HERALD_JAEGER_MAX_TRACES      traces kept in memory (default 100000)
#   HERALD_JAEGER_START_TIMEOUT   seconds to wait for the query API (default 60)
#   HERALD_LOCAL_DIR              config, log, pid: $HERALD_LOCAL_DIR/jaeger
#   HERALD_CACHE_DIR              binary: $HERALD_CACHE_DIR/jaeger-<version>
#
# Everything listens on 127.0.0.1. `start` prints the query address as its
# last line on stdout; `otlp` prints the OTLP/HTTP endpoint to give
# OTEL_EXPORTER_OTLP_ENDPOINT (http://127.0.0.1:4318; with
# OTEL_EXPORTER_OTLP_PROTOCOL=grpc use port 4317); `build` only builds.
#
# The Go module carries no UI assets (Jaeger builds them with npm), so the
# page at the query address is Jaeger's placeholder; the query API
# (/api/traces/{id}, /api/services) is complete, and
# deploy/local/jaeger/tracepicture draws a trace from it.
set -euo pipefail

SERVICE=jaeger
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

MODULE_DIR=$HERE/jaeger
PKG=github.com/jaegertracing/jaeger/cmd/jaeger
# The version is the one deploy/local/jaeger/go.mod requires.
VERSION=$(awk '$1 == "github.com/jaegertracing/jaeger" { sub(/^v/, "", $2); print $2; exit }' "$MODULE_DIR/go.mod")
[[ -n $VERSION ]] || die "no github.com/jaegertracing/jaeger requirement in $MODULE_DIR/go.mod"

HOST=127.0.0.1
GRPC_PORT=${HERALD_JAEGER_OTLP_GRPC_PORT:-4317}
HTTP_PORT=${HERALD_JAEGER_OTLP_HTTP_PORT:-4318}
QUERY_PORT=${HERALD_JAEGER_QUERY_PORT:-16686}
QUERY_GRPC_PORT=${HERALD_JAEGER_QUERY_GRPC_PORT:-16685}
MAX_TRACES=${HERALD_JAEGER_MAX_TRACES:-100000}
START_TIMEOUT=${HERALD_JAEGER_START_TIMEOUT:-60}

DIR=$HERALD_LOCAL_DIR/jaeger
CONF=$DIR/config.yaml
LOG=$DIR/jaeger.log
PIDFILE=$DIR/jaeger.pid
BIN=$HERALD_CACHE_DIR/jaeger-$VERSION
URL=http://$HOST:$QUERY_PORT

build() {
	[[ -x $BIN ]] && return 0
	command -v go >/dev/null || die "go not found"
	mkdir -p "$HERALD_CACHE_DIR"
	local tmp
	tmp=$(mktemp "$BIN.build.XXXXXX")
	# shellcheck disable=SC2064 # expand $tmp now: it is local
	trap "rm -f '$tmp' '$tmp.log'" EXIT
	say "building Jaeger $VERSION from $PKG into $BIN (the first build takes about ten minutes on two cores)"
	if ! (cd "$MODULE_DIR" && go build -trimpath -o "$tmp" "$PKG") >"$tmp.log" 2>&1; then
		log_tail "$tmp.log"
		rm -f "$tmp" "$tmp.log"
		die "building Jaeger $VERSION failed"
	fi
	rm -f "$tmp.log"
	chmod +x "$tmp"
	# Another checkout may have built the same version meanwhile: either is fine.
	mv -f "$tmp" "$BIN"
	trap - EXIT
}

write_config() {
	mkdir -p "$DIR"
	cat >"$CONF" <<-YAML
		# Written by deploy/local/jaeger.sh on every start; edits are lost.
		# The all-in-one configuration of cmd/jaeger cut down to OTLP in,
		# memory storage and the query API, all on loopback.
		service:
		  extensions: [jaeger_storage, jaeger_query]
		  pipelines:
		    traces:
		      receivers: [otlp]
		      processors: []
		      exporters: [jaeger_storage_exporter]
		  telemetry:
		    metrics:
		      level: none
		    logs:
		      level: info

		extensions:
		  jaeger_storage:
		    backends:
		      memstore:
		        memory:
		          max_traces: $MAX_TRACES
		  jaeger_query:
		    # Jaeger would otherwise trace its own queries into the store.
		    enable_tracing: false
		    storage:
		      traces: memstore
		    http:
		      endpoint: $HOST:$QUERY_PORT
		    grpc:
		      endpoint: $HOST:$QUERY_GRPC_PORT

		receivers:
		  otlp:
		    protocols:
		      grpc:
		        endpoint: $HOST:$GRPC_PORT
		      http:
		        endpoint: $HOST:$HTTP_PORT

		exporters:
		  jaeger_storage_exporter:
		    trace_storage: memstore
	YAML
}

# query_serving succeeds when the query API answers its services endpoint
# and the OTLP receivers accept connections.
query_serving() {
	local body
	body=$(
		exec 2>/dev/null
		exec 3<>"/dev/tcp/$HOST/$QUERY_PORT" || exit 1
		printf 'GET /api/services HTTP/1.0\r\nHost: %s:%s\r\n\r\n' "$HOST" "$QUERY_PORT" >&3
		timeout 2 cat <&3
	) || return 1
	[[ $body == "HTTP/1."?" 200"* ]] || return 1
	port_open "$HOST" "$GRPC_PORT" && port_open "$HOST" "$HTTP_PORT"
}

wait_serving() {
	local pid=$1 deadline=$((SECONDS + START_TIMEOUT))
	while ((SECONDS < deadline)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			log_tail "$LOG"
			die "jaeger (pid $pid) exited during start-up; log in $LOG"
		fi
		query_serving && return 0
		sleep 0.2
	done
	log_tail "$LOG"
	stop_pid "$pid" jaeger 10
	rm -f "$PIDFILE"
	die "jaeger did not answer on $URL within ${START_TIMEOUT}s; log in $LOG"
}

cmd_start() {
	with_lock "$DIR.lock"
	local pid port
	pid=$(pid_of "$PIDFILE" "$CONF")
	if [[ -n $pid ]]; then
		wait_serving "$pid"
		say "already running (pid $pid)"
		echo "$URL"
		return 0
	fi
	if port_open "$HOST" "$QUERY_PORT"; then
		if query_serving; then
			say "a Jaeger not started from $DIR already serves $URL; using it (stop will not touch it)"
			echo "$URL"
			return 0
		fi
		die "port $QUERY_PORT is taken by something that is not Jaeger; set HERALD_JAEGER_QUERY_PORT"
	fi
	for port in "$GRPC_PORT" "$HTTP_PORT" "$QUERY_GRPC_PORT"; do
		port_open "$HOST" "$port" && die "port $port is taken; set HERALD_JAEGER_*_PORT"
	done

	build
	write_config
	say "starting Jaeger $VERSION: OTLP grpc $HOST:$GRPC_PORT, http $HOST:$HTTP_PORT, UI $URL"
	[[ -f $LOG ]] && mv -f "$LOG" "$LOG.previous"
	# setsid: Jaeger outlives the shell that started it (make, CI steps) and
	# is not hit by a Ctrl-C meant for the tests.
	setsid "$BIN" --config "$CONF" </dev/null >"$LOG" 2>&1 9>&- &
	pid=$!
	echo "$pid" >"$PIDFILE"
	wait_serving "$pid"
	say "ready in ${SECONDS}s (pid $pid, log $LOG)"
	echo "$URL"
}

cmd_stop() { stop_service jaeger "$CONF" 20; }

cmd_status() { service_status "$CONF" "$QUERY_PORT" "$URL, OTLP grpc $HOST:$GRPC_PORT, http $HOST:$HTTP_PORT"; }

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
build) build && say "built $BIN" ;;
otlp) echo "http://$HOST:$HTTP_PORT" ;;
*)
	echo "usage: $0 start|stop|status|build|otlp" >&2
	exit 2
	;;
esac
