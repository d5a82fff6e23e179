#!/usr/bin/env bash
# kafka.sh start|stop|status — a real single-node Apache Kafka (KRaft, broker
# and controller in one JVM) for tests and local runs, built from the Maven
# Central jars so that nothing but java and mvn is needed.
#
#   HERALD_KAFKA_PORT             broker port (default 19092)
#   HERALD_KAFKA_CONTROLLER_PORT  controller port (default broker port + 1)
#   HERALD_KAFKA_VERSION          org.apache.kafka:kafka_2.13 version (default 4.4.0)
#   HERALD_KAFKA_HEAP             JVM heap flags (default -Xms256m -Xmx768m)
#   HERALD_KAFKA_START_TIMEOUT    seconds to wait for the broker (default 120)
#   HERALD_LOCAL_DIR              data, logs, pid: $HERALD_LOCAL_DIR/kafka
#   HERALD_CACHE_DIR              jars: $HERALD_CACHE_DIR/kafka-<version>/libs
#
# `start` prints the bootstrap address as its last line on stdout.
set -euo pipefail

SERVICE=kafka
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_VERSION=${HERALD_KAFKA_VERSION:-4.4.0}
# kafka_2.13 depends on log4j-core but leaves the slf4j binding to the
# distribution; without it the broker logs nothing at all.
LOG4J_VERSION=${HERALD_KAFKA_LOG4J_VERSION:-2.25.5}
HOST=127.0.0.1
PORT=${HERALD_KAFKA_PORT:-19092}
CONTROLLER_PORT=${HERALD_KAFKA_CONTROLLER_PORT:-$((PORT + 1))}
HEAP=${HERALD_KAFKA_HEAP:--Xms256m -Xmx768m}
START_TIMEOUT=${HERALD_KAFKA_START_TIMEOUT:-120}

DIR=$HERALD_LOCAL_DIR/kafka
DATA=$DIR/data
LOGS=$DIR/logs
CONF=$DIR/server.properties
PIDFILE=$DIR/kafka.pid
LIBS=$HERALD_CACHE_DIR/kafka-$KAFKA_VERSION/libs
ADDR=$HOST:$PORT

fetch_libs() {
	[[ -f $LIBS/.complete ]] && return 0
	command -v mvn >/dev/null || die "mvn not found (apt-get install -y maven)"
	local parent tmp
	parent=$(dirname "$LIBS")
	mkdir -p "$parent"
	tmp=$(mktemp -d "$parent/fetch.XXXXXX")
	say "fetching kafka_2.13 $KAFKA_VERSION and its runtime dependencies with mvn into $LIBS"
	cat >"$tmp/pom.xml" <<-POM
		<project xmlns="http://maven.apache.org/POM/4.0.0">
		  <modelVersion>4.0.0</modelVersion>
		  <groupId>dev.herald.local</groupId>
		  <artifactId>kafka-libs</artifactId>
		  <version>1</version>
		  <packaging>pom</packaging>
		  <dependencies>
		    <dependency>
		      <groupId>org.apache.kafka</groupId>
		      <artifactId>kafka_2.13</artifactId>
		      <version>$KAFKA_VERSION</version>
		    </dependency>
		    <dependency>
		      <groupId>org.apache.logging.log4j</groupId>
		      <artifactId>log4j-slf4j-impl</artifactId>
		      <version>$LOG4J_VERSION</version>
		    </dependency>
		  </dependencies>
		</project>
	POM
	if ! mvn -q -B -Dstyle.color=never -f "$tmp/pom.xml" \
		dependency:copy-dependencies -DincludeScope=runtime \
		-DoutputDirectory="$tmp/libs" >"$tmp/mvn.log" 2>&1; then
		log_tail "$tmp/mvn.log"
		rm -rf "$tmp"
		die "mvn could not fetch kafka_2.13 $KAFKA_VERSION"
	fi
	touch "$tmp/libs/.complete"
	# Another checkout may have fetched the same version meanwhile: keep theirs.
	mv -T "$tmp/libs" "$LIBS" 2>/dev/null || true
	rm -rf "$tmp"
	[[ -f $LIBS/.complete ]] || die "could not install jars into $LIBS"
}

# Kafka's Uuid.toString: URL-safe base64 of 16 random bytes without padding;
# Kafka itself never hands out one that starts with '-'.
new_cluster_id() {
	local id
	while :; do
		id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
		[[ $id == -* ]] || break
	done
	echo "$id"
}

write_config() {
	mkdir -p "$DATA" "$LOGS"
	cat >"$CONF" <<-PROPS
		# Written by deploy/local/kafka.sh on every start; edits are lost.
		process.roles=broker,controller
		node.id=1
		controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
		listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
		advertised.listeners=PLAINTEXT://$HOST:$PORT
		listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
		controller.listener.names=CONTROLLER
		inter.broker.listener.name=PLAINTEXT
		log.dirs=$DATA

		# Tests create every topic they use, explicitly.
		auto.create.topics.enable=false
		delete.topic.enable=true
		num.partitions=1
		default.replication.factor=1
		min.insync.replicas=1

		# One broker: internal topics with one replica and few partitions.
		offsets.topic.replication.factor=1
		offsets.topic.num.partitions=4
		transaction.state.log.replication.factor=1
		transaction.state.log.min.isr=1
		transaction.state.log.num.partitions=4
		share.coordinator.state.topic.replication.factor=1
		share.coordinator.state.topic.min.isr=1
		group.initial.rebalance.delay.ms=0

		# Tests write records with old timestamps (replay, backfill): never
		# expire them by time or size; per-topic configs still apply.
		log.retention.ms=-1
		log.retention.bytes=-1

		# Two cores and a small heap, shared with the tests.
		num.network.threads=2
		num.io.threads=4
		background.threads=4
		num.recovery.threads.per.data.dir=1
		log.cleaner.threads=1
		log.cleaner.dedupe.buffer.size=16777216
	PROPS
	cat >"$DIR/log4j2.properties" <<-PROPS
		status = warn
		appender.file.type = RollingFile
		appender.file.name = FILE
		appender.file.fileName = $LOGS/server.log
		appender.file.filePattern = $LOGS/server.log.%i
		appender.file.layout.type = PatternLayout
		appender.file.layout.pattern = [%d] %p %m (%c)%n
		appender.file.policies.type = Policies
		appender.file.policies.size.type = SizeBasedTriggeringPolicy
		appender.file.policies.size.size = 50MB
		appender.file.strategy.type = DefaultRolloverStrategy
		appender.file.strategy.max = 3
		rootLogger.level = INFO
		rootLogger.appenderRef.file.ref = FILE
		logger.state.name = state.change.logger
		logger.state.level = WARN
		logger.request.name = kafka.request.logger
		logger.request.level = WARN
	PROPS
}

format_storage() {
	[[ -f $DATA/meta.properties ]] && return 0
	local id
	id=$(new_cluster_id)
	say "formatting $DATA (cluster id $id)"
	if ! java -cp "$LIBS/*" -Dlog4j2.configurationFile="$DIR/log4j2.properties" \
		kafka.tools.StorageTool format -t "$id" -c "$CONF" >"$LOGS/format.log" 2>&1; then
		log_tail "$LOGS/format.log"
		die "formatting $DATA failed"
	fi
}

# kafka_serving succeeds when the broker answers a Metadata request (v4, all
# topics) listing at least one live broker: the listener is open, request
# processing is enabled and the broker is unfenced.
kafka_serving() {
	local out b
	out=$(
		exec 2>/dev/null
		exec 3<>"/dev/tcp/$HOST/$PORT" || exit 1
		# size 20 | api_key 3 | version 4 | correlation 1 | client "probe" | topics null | no auto-create
		printf '\x00\x00\x00\x14\x00\x03\x00\x04\x00\x00\x00\x01\x00\x05probe\xff\xff\xff\xff\x00' >&3
		# size | correlation | throttle_time_ms | brokers count
		timeout 2 head -c 16 <&3 | od -An -tu1
	) || return 1
	read -r -a b <<<"$out"
	((${#b[@]} == 16)) || return 1
	((b[4] == 0 && b[5] == 0 && b[6] == 0 && b[7] == 1)) || return 1
	((((b[12] << 24) | (b[13] << 16) | (b[14] << 8) | b[15]) >= 1))
}

wait_serving() {
	local pid=$1 deadline=$((SECONDS + START_TIMEOUT))
	while ((SECONDS < deadline)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			log_tail "$LOGS/server.log"
			log_tail "$LOGS/stdout.log" 20
			die "kafka (pid $pid) exited during start-up; logs in $LOGS"
		fi
		kafka_serving && return 0
		sleep 0.2
	done
	log_tail "$LOGS/server.log"
	log_tail "$LOGS/stdout.log" 20
	stop_pid "$pid" kafka 20
	rm -f "$PIDFILE"
	die "kafka did not serve metadata on $ADDR within ${START_TIMEOUT}s; logs in $LOGS"
}

cmd_start() {
	command -v java >/dev/null || die "java not found (Kafka $KAFKA_VERSION needs Java 17+)"
	with_lock "$DIR.lock"
	local pid
	pid=$(pid_of "$PIDFILE" "$CONF")
	if [[ -n $pid ]]; then
		wait_serving "$pid"
		say "already running (pid $pid)"
		echo "$ADDR"
		return 0
	fi
	if port_open "$HOST" "$PORT"; then
		if kafka_serving; then
			say "a Kafka not started from $DIR already serves $ADDR; using it (stop will not touch it)"
			echo "$ADDR"
			return 0
		fi
		die "port $PORT is taken by something that is not Kafka; set HERALD_KAFKA_PORT"
	fi
	port_open "$HOST" "$CONTROLLER_PORT" && die "controller port $CONTROLLER_PORT is taken; set HERALD_KAFKA_CONTROLLER_PORT"

	fetch_libs
	write_config
	format_storage
	say "starting Kafka $KAFKA_VERSION on $ADDR (controller $HOST:$CONTROLLER_PORT, data $DATA)"
	# A fresh server.log, so that a failure shows this start's log tail.
	if [[ -f $LOGS/server.log ]]; then
		mv -f "$LOGS/server.log" "$LOGS/server.log.previous"
		rm -f "$LOGS"/server.log.[0-9]*
	fi
	# setsid: the broker outlives the shell that started it (make, CI steps)
	# and is not hit by a Ctrl-C meant for the tests.
	# shellcheck disable=SC2086 # HEAP holds several flags
	setsid java $HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
		-Djava.awt.headless=true -Dlog4j2.configurationFile="$DIR/log4j2.properties" \
		-Dkafka.logs.dir="$LOGS" -cp "$LIBS/*" kafka.Kafka "$CONF" \
		</dev/null >"$LOGS/stdout.log" 2>&1 9>&- &
	pid=$!
	echo "$pid" >"$PIDFILE"
	wait_serving "$pid"
	say "ready in ${SECONDS}s (pid $pid, logs $LOGS)"
	echo "$ADDR"
}

cmd_stop() { stop_service kafka "$CONF" 60; }

cmd_status() { service_status "$CONF" "$PORT" "$ADDR"; }

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*)
	echo "usage: $0 start|stop|status" >&2
	exit 2
	;;
esac
