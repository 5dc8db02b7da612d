#!/usr/bin/env bash
# test_fault_tolerance.sh: the Phase 3 guide's automated fault-tolerance suite.
#
# Starts its own cluster (3 scheduler replicas, 3 agents) from bin/ on free
# ports of 127.0.0.1, with data in one temporary folder and a random token,
# then runs the guide's five scenarios plus two leader-loss drills:
#
#   1 single node failure      kill -9 one agent
#   2 multiple node failures   kill -9 two agents at once
#   3 scheduler restart        SIGTERM all three replicas, start them again
#   4 network partition        kill -STOP an agent until its workloads moved, then -CONT
#   5 high load                many workloads, then kill -9 one agent
#   6 leader loss              kill -9 the leader replica
#   7 leader and agent lost    kill -9 the leader and an agent together
#
# Each prints PASS or FAIL with its measured times; a table follows. Exit
# status: 0 all passed, 1 a scenario failed, 2 usage or setup error.
# Needs bash 4+, curl, coreutils and procps (pgrep); nothing else.
#
# By default everything speaks mutual TLS: the drill makes a CA and a server,
# an agent and a cli certificate with 'scheduler tls' in its data folder;
# replicas and agents get --tls-ca/--tls-cert/--tls-key, the CLI and curl the
# cli certificate (curl shows the server certificate to an agent's API).
#
#   scripts/test_fault_tolerance.sh [--quick] [--keep] [--no-tls]
#     --quick  short form for CI (fewer workloads); also DRILL_QUICK=1
#     --keep   keep the data folder (logs, raft data) afterwards; also DRILL_KEEP=1
#     --no-tls run the cluster in plaintext HTTP, as before TLS; also DRILL_TLS=0
#   DRILL_TIMEOUT=S        overall limit in seconds (default 600, quick 300)
#   DRILL_DETECT_TARGET=S  kill -9 -> offline must be under this (default 5, the guide's target)
#   DRILL_RECOVER_TARGET=S kill -9 -> workloads running elsewhere must be under this (default 15)
#   DRILL_REAL_CPU=1       let agents report the measured CPU; by default each agent
#                          reports a fixed 5% (agent --cpu-file, the drill hook): all
#                          three share this machine, so measured CPU is one machine-wide
#                          number whose noise (or a busy machine over the 80% limit)
#                          would decide placement and stall recovery

set -u
set -o pipefail

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; }

QUICK=${DRILL_QUICK:-0}
KEEP=${DRILL_KEEP:-0}
TLS=${DRILL_TLS:-1}
for a in "$@"; do
	case $a in
	--quick) QUICK=1 ;;
	--keep) KEEP=1 ;;
	--no-tls) TLS=0 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "unknown argument: $a" >&2; usage >&2; exit 2 ;;
	esac
done
[[ $QUICK == 1 ]] || QUICK=0
[[ $KEEP == 1 ]] || KEEP=0
[[ $TLS == 0 ]] || TLS=1

if ((BASH_VERSINFO[0] < 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] < 4))); then
	echo "bash 4.4 or newer is needed (this is $BASH_VERSION)" >&2
	exit 2
fi
for tool in curl pgrep awk sed mktemp od; do
	command -v "$tool" >/dev/null 2>&1 || { echo "missing tool: $tool" >&2; exit 2; }
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/bin
for b in scheduler agent; do
	if [[ ! -x $BIN/$b ]]; then
		echo "$BIN/$b not found: run 'make build' first (or 'make drill', which builds)" >&2
		exit 2
	fi
done

if ((QUICK)); then
	N_WORK=3  # workloads in scenarios 1-4, 6, 7
	N_LOAD=6  # workloads in scenario 5
	TOTAL_TIMEOUT=${DRILL_TIMEOUT:-300}
else
	N_WORK=6
	N_LOAD=60
	TOTAL_TIMEOUT=${DRILL_TIMEOUT:-600}
fi
REAL_CPU=${DRILL_REAL_CPU:-0}
DETECT_TARGET=${DRILL_DETECT_TARGET:-5}
RECOVER_TARGET=${DRILL_RECOVER_TARGET:-15}

# ---------------------------------------------------------------- time ----

# now sets the variable named $1 to the current time in microseconds.
now() { printf -v "$1" '%s' "${EPOCHREALTIME//[!0-9]/}"; }
# since START_US: prints seconds since START_US with two decimals.
since() {
	local t
	now t
	secs $((t - $1))
}
secs() { printf '%d.%02d' $(($1 / 1000000)) $((($1 % 1000000) / 10000)); }
# over S LIMIT: true when the seconds S (like 3.41) exceed LIMIT (integer or decimal).
over() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 > b + 0) }'; }

# ------------------------------------------------------------- workspace ----

DIR=$(mktemp -d "${TMPDIR:-/tmp}/mo-drill.XXXXXX") || { echo "mktemp failed" >&2; exit 2; }
chmod 700 "$DIR"
trap 'rm -rf "$DIR"' EXIT # until processes start; then cleanup() takes over
TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
export SCHEDULER_TOKEN=$TOKEN # replicas, agents and the CLI read it; workloads never see it
unset SCHEDULER_ADDR
unset SCHEDULER_TLS_CA SCHEDULER_TLS_CERT SCHEDULER_TLS_KEY # the CLI gets its TLS files as flags, or none
HDR=$DIR/auth.header # keeps the token out of curl's argv
(umask 077 && printf 'Authorization: Bearer %s\n' "$TOKEN" >"$HDR")

# ------------------------------------------------------------------- tls ----

# With TLS, TLS_<ROLE> holds the --tls-* flags of a process of that role and
# CURL_<ROLE> curl's arguments for a client certificate of it; SCHEME is the
# URL scheme of every curl call. All empty, and http, in plaintext.
TLS_DIR=$DIR/tls
SCHEME=http
TLS_SERVER=() TLS_AGENT=() TLS_CLI=() CURL_SERVER=() CURL_CLI=()
# tls_make ARGS...: one 'scheduler tls' command, its output shown only on failure.
tls_make() {
	local out
	out=$("$BIN/scheduler" tls "$@" --dir "$TLS_DIR" 2>&1) || {
		echo "scheduler tls $*: failed:" >&2
		printf '%s\n' "$out" >&2
		return 1
	}
}
if ((TLS)); then
	tls_make ca create || exit 2
	for role in server agent cli; do
		tls_make cert create --role "$role" || exit 2
	done
	SCHEME=https
	TLS_SERVER=(--tls-ca "$TLS_DIR/ca.pem" --tls-cert "$TLS_DIR/server.pem" --tls-key "$TLS_DIR/server-key.pem")
	TLS_AGENT=(--tls-ca "$TLS_DIR/ca.pem" --tls-cert "$TLS_DIR/agent.pem" --tls-key "$TLS_DIR/agent-key.pem")
	TLS_CLI=(--tls-ca "$TLS_DIR/ca.pem" --tls-cert "$TLS_DIR/cli.pem" --tls-key "$TLS_DIR/cli-key.pem")
	CURL_SERVER=(--cacert "$TLS_DIR/ca.pem" --cert "$TLS_DIR/server.pem" --key "$TLS_DIR/server-key.pem")
	CURL_CLI=(--cacert "$TLS_DIR/ca.pem" --cert "$TLS_DIR/cli.pem" --key "$TLS_DIR/cli-key.pem")
fi

# Every workload runs `sleep $MARK`: MARK is unique to this run, so pgrep
# finds exactly this run's workloads (and any it might leak).
RUNID=$(printf '%05d%05d' $((RANDOM % 100000)) $((RANDOM % 100000)))
MARK=3600.$RUNID
MARK_RE="sleep 3600\\.$RUNID( |\$)"

# ----------------------------------------------------------------- ports ----

declare -A USED_PORTS=()
load_used_ports() {
	local f line port
	for f in /proc/net/tcp /proc/net/tcp6; do
		[[ -r $f ]] || continue
		while read -r _ line _; do
			port=${line##*:}
			[[ $port =~ ^[0-9A-Fa-f]+$ ]] && USED_PORTS[$((16#$port))]=1
		done <"$f"
	done
}
# free_port sets the variable named $1 to a port of 127.0.0.1 nobody uses,
# below the kernel's ephemeral range so no outgoing connection takes it
# while a killed process is restarted on it.
free_port() {
	local lo=20000 hi=32000 eph _p i
	if read -r eph _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null && ((eph > lo + 1000)); then
		hi=$((eph - 1))
	fi
	for ((i = 0; i < 1000; i++)); do
		_p=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo)))
		[[ -n ${USED_PORTS[$_p]:-} ]] && continue
		USED_PORTS[$_p]=1
		if (exec 3<>"/dev/tcp/127.0.0.1/$_p") 2>/dev/null; then continue; fi # something listens
		printf -v "$1" "%s" "$_p"
		return 0
	done
	echo "no free port found" >&2
	return 1
}

# -------------------------------------------------------------- processes ----

REPLICAS=(s1 s2 s3)
AGENTS=(n1 n2 n3)
declare -A PID=() HTTP=() RAFT=() LISTEN=()
ALL_PIDS=()     # every process this script started, in start order
WATCHDOG=""
declare -A STOPPED=() # agents under SIGSTOP

load_used_ports
for r in "${REPLICAS[@]}"; do
	free_port p || exit 2
	HTTP[$r]=127.0.0.1:$p
	free_port p || exit 2
	RAFT[$r]=127.0.0.1:$p
done
for a in "${AGENTS[@]}"; do
	free_port p || exit 2
	LISTEN[$a]=127.0.0.1:$p
done
ALL_HTTP="${HTTP[s1]},${HTTP[s2]},${HTTP[s3]}"

# Replicas and agents run in sessions of their own: a Ctrl-C reaches this
# script, whose cleanup then stops them by PID, in order.
SETSID=""
command -v setsid >/dev/null 2>&1 && SETSID=setsid

# alive PID: the process exists and is not a zombie.
alive() {
	local st
	kill -0 "$1" 2>/dev/null || return 1
	read -r st </proc/"$1"/stat 2>/dev/null || return 1
	st=${st##*) }
	[[ ${st:0:1} != Z ]]
}
# ours PID: alive and a child of this script (so never a recycled PID).
ours() {
	local st f
	alive "$1" || return 1
	read -r st </proc/"$1"/stat 2>/dev/null || return 1
	read -r -a f <<<"${st##*) }"
	[[ ${f[1]} == "$$" ]]
}

# start_replica ID [FLAGS...]: starts (or restarts, on its data dir) a replica.
start_replica() {
	local id=$1
	shift
	$SETSID "$BIN/scheduler" serve --id "$id" --http "${HTTP[$id]}" --raft "${RAFT[$id]}" \
		--data "$DIR/$id" --log-level debug "${TLS_SERVER[@]}" "$@" </dev/null >>"$DIR/$id.log" 2>&1 &
	PID[$id]=$!
	ALL_PIDS+=("$!")
}

# start_agent ID: starts (or restarts, same id, port and data dir) an agent.
start_agent() {
	local id=$1 cpu=()
	if [[ $REAL_CPU != 1 ]]; then
		echo 5 >"$DIR/$id.cpu"
		cpu=(--cpu-file "$DIR/$id.cpu")
	fi
	$SETSID "$BIN/agent" --id "$id" --listen "${LISTEN[$id]}" --join "$ALL_HTTP" --data "$DIR/$id" \
		--stop-grace 3s --restart-grace 0 --log-level debug "${cpu[@]}" "${TLS_AGENT[@]}" </dev/null >>"$DIR/$id.log" 2>&1 &
	PID[$id]=$!
	ALL_PIDS+=("$!")
	unset "STOPPED[$id]"
}

# kill9 PID...: kill -9, quietly (no "Killed" job notice from bash).
kill9() {
	local p
	kill -9 "$@" 2>/dev/null
	for p in "$@"; do disown "$p" 2>/dev/null; done
}

live_replicas() {
	local r out=()
	for r in "${REPLICAS[@]}"; do
		[[ -n ${PID[$r]:-} ]] && alive "${PID[$r]}" && out+=("$r")
	done
	echo "${out[@]}"
}
# addrs_of ID...: comma-separated HTTP addresses.
addrs_of() {
	local r out=""
	for r in "$@"; do out+=${out:+,}${HTTP[$r]}; done
	echo "$out"
}

# ------------------------------------------------------------------ calls ----

# cli COMMAND ARGS...: the scheduler CLI, with the cli certificate under TLS
# (callers pass --addr and --timeout).
cli() { "$BIN/scheduler" "$1" "${TLS_CLI[@]}" "${@:2}"; }

# api METHOD ADDR PATH [BODY]: curl to a replica with the token (and the cli
# certificate under TLS); prints the body, then the HTTP status on a last
# line of its own.
api() { curl_as cli "$@"; }
# agent_api METHOD ADDR PATH: api for an agent's API, which accepts the
# server certificate only.
agent_api() { curl_as server "$@"; }
# curl_as ROLE METHOD ADDR PATH [BODY]: api with the client certificate of
# ROLE (server or cli).
curl_as() {
	local tls_args=() data=()
	case $1 in
	server) tls_args=("${CURL_SERVER[@]}") ;;
	*) tls_args=("${CURL_CLI[@]}") ;;
	esac
	shift
	[[ $# -ge 4 ]] && data=(-H 'Content-Type: application/json' --data-binary "$4")
	curl -sS -m 3 "${tls_args[@]}" -H @"$HDR" -X "$1" -w '\n%{http_code}' "${data[@]}" "$SCHEME://$2$3" 2>/dev/null
}

# flat JSON: whitespace removed (none of the values we read hold spaces).
flat() { local s=$1; s=${s//[$' \t\r\n']/}; printf '%s' "$s"; }
# split_objects ARRAY FLAT_JSON: ARRAY gets the pieces of FLAT_JSON between
# '{'s: one per object of a flat list (no globbing, no subshell).
split_objects() { IFS='{' read -r -a "$1" <<<"$2"; }

# leader_id: sets LEADER to the leader's id as a live replica reports it,
# and VOTERS to the voters with an HTTP address. Fails without a leader.
LEADER="" VOTERS=0
leader_id() {
	local r out body
	LEADER="" VOTERS=0
	for r in $(live_replicas); do
		out=$(api GET "${HTTP[$r]}" /cluster/status) || continue
		[[ ${out##*$'\n'} == 200 ]] || continue
		body=$(flat "${out%$'\n'*}")
		[[ $body =~ \"leader\":\{\"id\":\"([^\"]+)\" ]] || continue
		LEADER=${BASH_REMATCH[1]}
		local objs obj n=0
		split_objects objs "${body#*\"replicas\":}"
		for obj in "${objs[@]}"; do
			[[ $obj == *'"voter":true'* && $obj =~ \"http\":\"[^\"]+\" ]] && n=$((n + 1))
		done
		VOTERS=$n
		[[ -n ${PID[$LEADER]:-} ]] && alive "${PID[$LEADER]}" && return 0
		LEADER=""
		return 1
	done
	return 1
}
cluster_formed() { leader_id && ((VOTERS == 3)); }
new_leader_other_than() { leader_id && [[ $LEADER != "$1" ]]; }

# node_status ADDRS NODE: prints NODE's status from `scheduler health --json`.
node_status() {
	local out obj
	out=$(cli health --json --addr "$1" --timeout 3s 2>/dev/null) || return 1
	local objs
	split_objects objs "$(flat "$out")"
	for obj in "${objs[@]}"; do
		if [[ $obj == *"\"node_id\":\"$2\""* && $obj =~ \"status\":\"([a-z]+)\" ]]; then
			echo "${BASH_REMATCH[1]}"
			return 0
		fi
	done
	return 1
}
# nodes_are STATUS ADDRS NODE...: every NODE has STATUS.
nodes_are() {
	local want=$1 addrs=$2 n s
	shift 2
	for n in "$@"; do
		s=$(node_status "$addrs" "$n") || return 1
		[[ $s == "$want" ]] || return 1
	done
}

# load_workloads [ADDRS]: W_STATE, W_NODE, W_PID, W_CMD from the table of
# `scheduler workloads`, its columns found by their headers.
declare -A W_STATE=() W_NODE=() W_PID=() W_CMD=()
load_workloads() {
	local out f i ci=-1 si=-1 ni=-1 pi=-1
	out=$(cli workloads --addr "${1:-$ALL_HTTP}" --timeout 4s 2>/dev/null) || return 1
	W_STATE=() W_NODE=() W_PID=() W_CMD=()
	while read -r -a f; do
		((${#f[@]})) || continue
		if [[ ${f[0]} == ID ]]; then
			for i in "${!f[@]}"; do
				case ${f[i]} in
				STATE) si=$i ;; NODE) ni=$i ;; PID) pi=$i ;; COMMAND) ci=$i ;;
				esac
			done
			continue
		fi
		[[ ${f[0]} == workload_* ]] && ((si >= 0 && ni >= 0 && pi >= 0 && ci >= 0)) || continue
		W_STATE[${f[0]}]=${f[si]} W_NODE[${f[0]}]=${f[ni]} W_PID[${f[0]}]=${f[pi]}
		W_CMD[${f[0]}]=${f[*]:ci}
	done <<<"$out"
}

# workload_pid_ok PID: a live process of this run (kill -0, not a zombie, our argv).
workload_pid_ok() {
	local argv=()
	[[ $1 =~ ^[0-9]+$ ]] || return 1
	alive "$1" || return 1
	mapfile -t -d '' argv </proc/"$1"/cmdline 2>/dev/null || return 1
	[[ ${argv[0]:-} == sleep && ${argv[1]:-} == "$MARK" ]]
}

# all_running_on NODE_RE [ADDRS]: every workload of IDS runs, with a live pid,
# on a node matching NODE_RE.
all_running_on() {
	local id
	load_workloads "${2:-}" || return 1
	for id in "${IDS[@]}"; do
		[[ ${W_STATE[$id]:-} == running ]] || return 1
		[[ ${W_NODE[$id]} =~ ^($1)$ ]] || return 1
		workload_pid_ok "${W_PID[$id]}" || return 1
	done
}

# running_instances: INST[id] = running instances across every live agent's
# /status whose pid is alive; INST_OTHER counts ids not in IDS.
declare -A INST=()
INST_OTHER=0
running_instances() {
	local a out body obj id pid
	INST=() INST_OTHER=0
	for a in "${AGENTS[@]}"; do
		alive "${PID[$a]}" || continue
		out=$(agent_api GET "${LISTEN[$a]}" /status) || return 1
		[[ ${out##*$'\n'} == 200 ]] || return 1
		body=$(flat "${out%$'\n'*}")
		local objs
		split_objects objs "$body"
		for obj in "${objs[@]}"; do
			[[ $obj == *'"state":"running"'* ]] || continue
			[[ $obj =~ \"id\":\"([^\"]+)\" ]] || continue
			id=${BASH_REMATCH[1]}
			[[ $obj =~ \"pid\":([0-9]+) ]] || continue
			pid=${BASH_REMATCH[1]}
			workload_pid_ok "$pid" || continue
			INST[$id]=$((${INST[$id]:-0} + 1))
		done
	done
	for id in "${!INST[@]}"; do
		[[ " ${IDS[*]} " == *" $id "* ]] || INST_OTHER=$((INST_OTHER + 1))
	done
}
# exactly_one_each: exactly one running instance of each workload of IDS,
# none of any other, and no process of this run beyond them.
exactly_one_each() {
	local id
	running_instances || return 1
	((INST_OTHER == 0)) || return 1
	for id in "${IDS[@]}"; do
		[[ ${INST[$id]:-0} == 1 ]] || return 1
	done
	[[ $(pgrep -f "$MARK_RE" | wc -l) -eq ${#IDS[@]} ]]
}

# --------------------------------------------------------------- waiting ----

# wait_for LIMIT_S WHAT CMD...: polls CMD every 0.1 s until it succeeds;
# fails with WHY set once LIMIT_S seconds have passed.
WHY=""
wait_for() {
	local limit=$1 what=$2 t0 t
	shift 2
	now t0
	while :; do
		"$@" && return 0
		now t
		if ((t - t0 > limit * 1000000)); then
			WHY="timed out after ${limit}s waiting for $what"
			return 1
		fi
		sleep 0.1
	done
}

# submit NAME COUNT: submits COUNT workloads `sleep $MARK` and sets IDS.
IDS=()
submit() {
	local out
	out=$(cli submit --addr "$ALL_HTTP" --timeout 15s --name "$1" --count "$2" -- sleep "$MARK" 2>&1) || {
		WHY="submit failed: $out"
		return 1
	}
	mapfile -t IDS < <(grep '^workload_' <<<"$out")
	if ((${#IDS[@]} != $2)); then
		WHY="submit printed ${#IDS[@]} ids, want $2: $out"
		return 1
	fi
}
# submit_running NAME COUNT LIMIT: submit, then wait until all run with live pids.
submit_running() {
	submit "$1" "$2" || return 1
	wait_for "$3" "$2 workloads running" all_running_on '.+'
}

# busiest_agent [EXCEPT...]: the agent running most of IDS.
busiest_agent() {
	local a id best="" bestn=-1 n
	load_workloads || return 1
	for a in "${AGENTS[@]}"; do
		[[ " $* " == *" $a "* ]] && continue
		n=0
		for id in "${IDS[@]}"; do [[ ${W_NODE[$id]} == "$a" ]] && n=$((n + 1)); done
		((n > bestn)) && best=$a bestn=$n
	done
	echo "$best"
}
# on_node NODE: the ids of IDS on NODE (from the last load_workloads).
on_node() {
	local id
	for id in "${IDS[@]}"; do [[ ${W_NODE[$id]} == "$1" ]] && echo "$id"; done
}

# ------------------------------------------------------------ cluster care ----

# stop_run_workloads: `scheduler stop` every workload of this run that is not
# stopped yet, then waits until no process of this run is left.
stop_run_workloads() {
	local id out
	load_workloads || { WHY="cannot list workloads"; return 1; }
	for id in "${!W_STATE[@]}"; do
		[[ ${W_CMD[$id]} == *"$MARK"* && ${W_STATE[$id]} != stopped ]] || continue
		out=$(cli stop --addr "$ALL_HTTP" --timeout 10s "$id" 2>&1) || {
			WHY="scheduler stop $id: $out"
			return 1
		}
	done
	wait_for 20 "every workload process of the run to exit" no_run_processes
}
no_run_processes() { ! pgrep -f "$MARK_RE" >/dev/null; }

# ensure_ready: 3 replicas under one leader, 3 agents online, no workloads:
# restarts what a scenario killed, resumes what it paused.
ensure_ready() {
	local r a restarted=0
	for a in "${!STOPPED[@]}"; do kill -CONT "${PID[$a]}" 2>/dev/null; unset "STOPPED[$a]"; done
	for r in "${REPLICAS[@]}"; do
		alive "${PID[$r]}" || { start_replica "$r"; restarted=1; }
	done
	wait_for 30 "3 voters under one leader" cluster_formed || return 1
	for a in "${AGENTS[@]}"; do
		alive "${PID[$a]}" || start_agent "$a"
	done
	wait_for 30 "3 agents online" nodes_are online "$ALL_HTTP" "${AGENTS[@]}" || return 1
	stop_run_workloads || return 1
	IDS=()
}

# ------------------------------------------------------------- reporting ----

RESULTS=()   # "n|title|PASS|det|rec"
FAILED=0
LOGS=()      # logs to show when the current scenario fails
DET="" REC="" NOTE="" DET_LABEL="" REC_LABEL=""

show_logs() {
	local f
	for f in "$@"; do
		[[ -f $DIR/$f.log ]] || continue
		echo "    ---- $f.log (last 15 lines)"
		tail -n 15 "$DIR/$f.log" | cut -c1-300 | sed 's/^/    | /'
	done
}

# scenario N TITLE FUNCTION: readies the cluster, runs FUNCTION, reports.
scenario() {
	local n=$1 title=$2 fn=$3 ok=1
	DET="" REC="" NOTE="" WHY="" LOGS=() DET_LABEL="" REC_LABEL=""
	if ! ensure_ready; then
		ok=0
		WHY="cluster not ready before the scenario: $WHY"
		LOGS=("${REPLICAS[@]}" "${AGENTS[@]}")
	elif ! "$fn"; then
		ok=0
	fi
	local times=""
	[[ -n $DET ]] && times="${DET_LABEL:-offline} after ${DET}s"
	[[ -n $REC ]] && times+="${times:+, }${REC_LABEL:-recovered} after ${REC}s"
	if ((ok)); then
		echo "[PASS] $title: ${times:-done}${NOTE:+ ($NOTE)}"
		RESULTS+=("$n|$title|PASS|${DET:--}|${REC:--}")
	else
		FAILED=1
		echo "[FAIL] $title: $WHY${times:+ ($times)}"
		leader_id >/dev/null 2>&1 && LOGS+=("$LEADER")
		show_logs $(printf '%s\n' "${LOGS[@]}" | awk '!seen[$0]++')
		RESULTS+=("$n|$title|FAIL|${DET:--}|${REC:--}")
	fi
	DET_LABEL="" REC_LABEL=""
}

# check_targets: the guide's kill -9 targets for detection and recovery.
check_targets() {
	if over "$DET" "$DETECT_TARGET"; then
		WHY="offline after ${DET}s, over the ${DETECT_TARGET}s target"
		return 1
	fi
	if over "$REC" "$RECOVER_TARGET"; then
		WHY="recovered after ${REC}s, over the ${RECOVER_TARGET}s target"
		return 1
	fi
}

# spread_check MOVED_IDS...: moved workloads spread over the surviving nodes
# (invariant 3) when two or more moved and two nodes survive.
spread_check() {
	local id
	declare -A to=()
	(($# >= 2)) || return 0
	load_workloads || return 1
	for id in "$@"; do to[${W_NODE[$id]}]=1; done
	if ((${#to[@]} < 2)); then
		WHY="the $# moved workloads piled onto ${!to[*]} instead of spreading"
		return 1
	fi
	NOTE="$# moved to $(printf '%s\n' "${!to[@]}" | sort | paste -sd, -)"
}

# -------------------------------------------------------------- scenarios ----

# follower_of: a live replica that is not the leader.
follower_of() {
	local r
	leader_id || return 1
	for r in $(live_replicas); do
		[[ $r != "$LEADER" ]] && { echo "$r"; return 0; }
	done
	return 1
}

# kill_busiest ADDRS WHERE TIMEOUT: kill -9 the agent with the most
# workloads, wait until the health seen through ADDRS shows it offline (DET)
# and its workloads run elsewhere (REC, within TIMEOUT s), then check that
# they spread. Sets VICTIM and MOVED.
kill_busiest() {
	local addrs=$1 where=$2 timeout=$3 t0
	VICTIM=$(busiest_agent) || { WHY="cannot list workloads"; return 1; }
	load_workloads
	mapfile -t MOVED < <(on_node "$VICTIM")
	LOGS+=("$VICTIM")
	kill9 "${PID[$VICTIM]}"
	now t0
	wait_for 20 "$VICTIM offline$where" nodes_are offline "$addrs" "$VICTIM" || return 1
	DET=$(since "$t0")
	wait_for "$timeout" "the ${#MOVED[@]} workloads of $VICTIM running elsewhere" all_running_on "$(others "$VICTIM")" || return 1
	REC=$(since "$t0")
	spread_check "${MOVED[@]}"
}

s1_single() {
	submit_running drill-s1 "$N_WORK" 30 || return 1
	local f
	f=$(follower_of) || { WHY="no follower found"; return 1; }
	LOGS=("$f")
	kill_busiest "${HTTP[$f]}" " in the health of follower $f" 30 || return 1
	NOTE="$VICTIM had ${#MOVED[@]}; ${NOTE:-none to spread}"
	check_targets
}
# others NODE...: a regex of the agents other than NODE...
others() {
	local a out=()
	for a in "${AGENTS[@]}"; do [[ " $* " == *" $a "* ]] || out+=("$a"); done
	local IFS='|'
	echo "${out[*]}"
}

s2_multiple() {
	submit_running drill-s2 "$N_WORK" 30 || return 1
	local v1=n1 v2=n2 survivor=n3 t0
	LOGS=("$v1" "$v2" "$survivor")
	kill9 "${PID[$v1]}" "${PID[$v2]}"
	now t0
	wait_for 20 "$v1 and $v2 offline" nodes_are offline "$ALL_HTTP" "$v1" "$v2" || return 1
	DET=$(since "$t0")
	wait_for 30 "every workload running on $survivor" all_running_on "$survivor" || return 1
	REC=$(since "$t0")
	NOTE="all ${#IDS[@]} on $survivor"
	check_targets
}

s3_restart() {
	submit_running drill-s3 "$N_WORK" 30 || return 1
	local before after out r t0 id
	declare -A pids=()
	LOGS=("${REPLICAS[@]}")
	leader_id || { WHY="no leader"; return 1; }
	out=$(api GET "${HTTP[$LEADER]}" /state)
	[[ ${out##*$'\n'} == 200 ]] || { WHY="GET /state before: ${out##*$'\n'}"; return 1; }
	before=${out%$'\n'*}
	printf '%s' "$before" >"$DIR/state-before-restart.json"
	load_workloads || { WHY="cannot list workloads"; return 1; }
	for id in "${IDS[@]}"; do pids[$id]=${W_PID[$id]}; done
	local -a rp=()
	for r in "${REPLICAS[@]}"; do rp+=("${PID[$r]}"); done
	kill -TERM "${rp[@]}"
	wait_for 20 "the three replicas to exit after SIGTERM" none_alive "${rp[@]}" || return 1
	for r in "${REPLICAS[@]}"; do
		wait "${PID[$r]}" 2>/dev/null
		local code=$?
		((code == 0)) || { WHY="replica $r exited with status $code after SIGTERM"; return 1; }
	done
	ls "$DIR"/s?/orchestrator_state.json >/dev/null 2>&1 || { WHY="no state file written on clean shutdown"; return 1; }
	now t0
	for r in "${REPLICAS[@]}"; do start_replica "$r"; done # neither --bootstrap nor --join
	wait_for 30 "3 voters under one leader after the restart" cluster_formed || return 1
	DET=$(since "$t0")
	DET_LABEL="leader back"
	STATE_BEFORE=$before
	wait_for 20 "GET /state identical to before the restart" state_same || {
		printf '%s' "$STATE_LAST" >"$DIR/state-after-restart.json"
		WHY+=" (see state-*-restart.json in the data folder)"
		return 1
	}
	REC=$(since "$t0")
	REC_LABEL="state identical"
	all_running_on '.+' || { WHY="workloads not all running after the restart"; return 1; }
	for id in "${IDS[@]}"; do
		[[ ${W_PID[$id]} == "${pids[$id]}" ]] || { WHY="$id was restarted (pid ${pids[$id]} -> ${W_PID[$id]})"; return 1; }
	done
	exactly_one_each || { WHY="not exactly one instance of each workload on the agents"; return 1; }
	NOTE="${#IDS[@]} workloads kept their pids"
}
STATE_BEFORE="" STATE_LAST=""
state_same() {
	local out
	leader_id || return 1
	out=$(api GET "${HTTP[$LEADER]}" /state) || return 1
	[[ ${out##*$'\n'} == 200 ]] || return 1
	STATE_LAST=${out%$'\n'*}
	[[ $STATE_LAST == "$STATE_BEFORE" ]]
}
none_alive() {
	local p
	for p in "$@"; do alive "$p" && return 1; done
	return 0
}

s4_partition() {
	submit_running drill-s4 "$N_WORK" 30 || return 1
	local victim t0 t1 moved strays
	victim=$(busiest_agent) || { WHY="cannot list workloads"; return 1; }
	load_workloads
	mapfile -t moved < <(on_node "$victim")
	LOGS=("$victim")
	kill -STOP "${PID[$victim]}"
	STOPPED[$victim]=1
	now t0
	wait_for 25 "paused $victim offline" nodes_are offline "$ALL_HTTP" "$victim" || return 1
	DET=$(since "$t0")
	wait_for 30 "the workloads of paused $victim running elsewhere" all_running_on "$(others "$victim")" || return 1
	REC=$(since "$t0")
	strays=$(pgrep -f "$MARK_RE" | wc -l)
	kill -CONT "${PID[$victim]}"
	unset "STOPPED[$victim]"
	now t1
	wait_for 20 "exactly one running instance of each workload across the agents" exactly_one_each || return 1
	local dedup
	dedup=$(since "$t1")
	wait_for 20 "$victim online again" nodes_are online "$ALL_HTTP" "$victim" || return 1
	local back
	back=$(since "$t1")
	load_workloads
	if [[ -n $(on_node "$victim") ]]; then
		WHY="a workload moved back to $victim"
		return 1
	fi
	NOTE="${#moved[@]} moved, strays stopped: $((strays - ${#IDS[@]})) after ${dedup}s, and $victim online ${back}s after SIGCONT"
}

s5_load() {
	submit_running drill-s5 "$N_LOAD" 90 || return 1
	kill_busiest "$ALL_HTTP" "" 60 || return 1
	NOTE="${#IDS[@]} workloads, ${#MOVED[@]} on $VICTIM; ${NOTE:-}"
	check_targets
}

s6_leader() {
	submit_running drill-s6 "$N_WORK" 30 || return 1
	local old t0 survivors body
	leader_id || { WHY="no leader"; return 1; }
	old=$LEADER
	LOGS=("${REPLICAS[@]}")
	kill9 "${PID[$old]}"
	now t0
	wait_for 20 "a new leader" new_leader_other_than "$old" || return 1
	DET=$(since "$t0")
	DET_LABEL="new leader $LEADER"
	survivors=$(addrs_of $(live_replicas))
	body="{\"name\":\"drill-s6-write\",\"command\":\"sleep\",\"args\":[\"$MARK\"]}"
	WRITE_ADDRS=$survivors WRITE_BODY=$body
	wait_for 20 "a write accepted" write_accepted || return 1
	REC=$(since "$t0")
	REC_LABEL="write accepted"
	all_running_on '.+' "$survivors" || { WHY="the workloads did not all keep running through the leader loss"; return 1; }
	NOTE="killed $old"
}
WRITE_ADDRS="" WRITE_BODY=""
write_accepted() {
	local a out
	for a in ${WRITE_ADDRS//,/ }; do
		out=$(curl -sS -m 2 "${CURL_CLI[@]}" -H @"$HDR" -H 'Content-Type: application/json' -X POST \
			--data-binary "$WRITE_BODY" -w '\n%{http_code}' "$SCHEME://$a/workloads" 2>/dev/null) || continue
		[[ ${out##*$'\n'} == 201 ]] && return 0
	done
	return 1
}

s7_leader_agent() {
	submit_running drill-s7 "$N_WORK" 30 || return 1
	local old victim t0 survivors
	leader_id || { WHY="no leader"; return 1; }
	old=$LEADER
	victim=$(busiest_agent) || { WHY="cannot list workloads"; return 1; }
	LOGS=("${REPLICAS[@]}" "$victim")
	kill9 "${PID[$old]}" "${PID[$victim]}"
	now t0
	survivors=$(addrs_of $(live_replicas))
	wait_for 25 "$victim offline under a new leader" nodes_are offline "$survivors" "$victim" || return 1
	DET=$(since "$t0")
	wait_for 30 "the workloads of $victim running elsewhere" all_running_on "$(others "$victim")" "$survivors" || return 1
	REC=$(since "$t0")
	NOTE="killed $old and $victim"
	check_targets
}

# ---------------------------------------------------------------- cleanup ----

# kill_tree_pids PID...: prints PID and all descendants.
descendants() {
	local p c
	for p in "$@"; do
		echo "$p"
		for c in $(pgrep -P "$p" 2>/dev/null); do descendants "$c"; done
	done
}

CLEANED=0
cleanup() {
	local rc=$? p left=() extra=()
	((CLEANED)) && return
	CLEANED=1
	trap - INT TERM ALRM
	if [[ -n $WATCHDOG ]]; then kill "$WATCHDOG" 2>/dev/null; wait "$WATCHDOG" 2>/dev/null; fi
	# Everything the agents started (workloads, their guard): checked afterwards.
	for p in "${ALL_PIDS[@]}"; do ours "$p" && extra+=($(descendants "$p")); done
	local mine=()
	for p in "${ALL_PIDS[@]}"; do ours "$p" && mine+=("$p"); done
	for p in "${mine[@]}"; do kill -CONT "$p" 2>/dev/null; done
	for p in "${mine[@]}"; do kill -TERM "$p" 2>/dev/null; done
	wait_for 20 "every started process to exit" none_alive "${mine[@]}" >/dev/null 2>&1
	for p in "${mine[@]}"; do
		if ours "$p"; then
			left+=("$p")
			kill9 "$p"
		fi
	done
	# The agents (--restart-grace 0) stop their workloads on SIGTERM; anything
	# of this run left is a leak.
	wait_for 10 "the workloads to exit" no_run_processes >/dev/null 2>&1
	local leaked=() rest=()
	mapfile -t leaked < <(pgrep -f "$MARK_RE")
	for p in "${extra[@]}"; do
		alive "$p" && [[ " ${ALL_PIDS[*]} ${leaked[*]} " != *" $p "* ]] && rest+=("$p")
	done
	if ((${#left[@]})); then
		echo "cleanup: ${#left[@]} process(es) ignored SIGTERM for 20s and were killed: ${left[*]}" >&2
		rc=1
	fi
	if ((${#leaked[@]} + ${#rest[@]})); then
		echo "cleanup: processes left behind after the agents exited, killed now:" >&2
		ps -o pid=,args= -p "$(printf '%s,' "${leaked[@]}" "${rest[@]}" | sed 's/,$//')" >&2 2>/dev/null
		kill9 "${leaked[@]}" "${rest[@]}"
		rc=1
	fi
	wait 2>/dev/null
	if ((KEEP)) || ((rc != 0 && ${#ALL_PIDS[@]} > 0)); then
		echo "data and logs kept in $DIR"
	else
		rm -rf "$DIR"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT
trap 'echo "terminated" >&2; exit 143' TERM
trap 'echo "overall timeout of ${TOTAL_TIMEOUT}s reached: giving up" >&2; exit 1' ALRM

# The watchdog: one overall deadline for the whole drill.
MAIN_PID=$$
(
	trap 'kill "$sp" 2>/dev/null; exit 0' TERM
	sleep "$TOTAL_TIMEOUT" &
	sp=$!
	wait "$sp"
	kill -ALRM "$MAIN_PID" 2>/dev/null
) &
WATCHDOG=$!

# ------------------------------------------------------------------- main ----

now START
echo "== Micro-Orchestrator fault-tolerance drill$( ((QUICK)) && echo ' (quick)')"
echo "   $(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN) cores, $(uname -sr), bash $BASH_VERSION"
echo "   replicas ${HTTP[s1]} ${HTTP[s2]} ${HTTP[s3]}; agents ${LISTEN[n1]} ${LISTEN[n2]} ${LISTEN[n3]}"
echo "   data $DIR; workloads run 'sleep $MARK'; overall limit ${TOTAL_TIMEOUT}s"
if ((TLS)); then
	echo "   transport: mutual TLS (CA and server, agent, cli certificates in $TLS_DIR; --no-tls for plaintext)"
else
	echo "   transport: plaintext HTTP (--no-tls or DRILL_TLS=0)"
fi
if [[ $REAL_CPU == 1 ]]; then
	echo "   agents report the measured CPU (DRILL_REAL_CPU=1)"
else
	echo "   agents report a fixed 5% CPU (--cpu-file): placement spreads by workload count"
fi
echo "   targets after kill -9: offline < ${DETECT_TARGET}s, workloads running elsewhere < ${RECOVER_TARGET}s"

start_replica s1 --bootstrap
start_replica s2 --join "$ALL_HTTP"
start_replica s3 --join "$ALL_HTTP"
if ! wait_for 60 "3 voters under one leader" cluster_formed; then
	echo "[FAIL] cluster start: $WHY"
	show_logs "${REPLICAS[@]}"
	exit 1
fi
for a in "${AGENTS[@]}"; do start_agent "$a"; done
if ! wait_for 60 "3 agents online" nodes_are online "$ALL_HTTP" "${AGENTS[@]}"; then
	echo "[FAIL] cluster start: $WHY"
	show_logs "${REPLICAS[@]}" "${AGENTS[@]}"
	exit 1
fi
echo "   cluster up in $(since "$START")s, leader $LEADER"
echo

scenario 1 "single node failure" s1_single
scenario 2 "multiple node failures" s2_multiple
scenario 3 "scheduler restart" s3_restart
scenario 4 "network partition" s4_partition
scenario 5 "high load ($N_LOAD workloads)" s5_load
scenario 6 "leader loss" s6_leader
scenario 7 "leader and agent lost" s7_leader_agent

echo
printf '%-3s %-30s %-7s %11s %10s\n' "#" "SCENARIO" "RESULT" "DETECTION" "RECOVERY"
NFAIL=0
for row in "${RESULTS[@]}"; do
	IFS='|' read -r n title res det rec <<<"$row"
	[[ $res == PASS ]] || NFAIL=$((NFAIL + 1))
	[[ $det != - ]] && det+=" s"
	[[ $rec != - ]] && rec+=" s"
	printf '%-3s %-30s %-7s %11s %10s\n' "$n" "$title" "$res" "$det" "$rec"
done
echo
if ((FAILED)); then
	echo "FAIL ($(since "$START")s)"
	echo "drill: $((${#RESULTS[@]} - NFAIL)) passed, $NFAIL failed"
	exit 1
fi
echo "PASS: all ${#RESULTS[@]} scenarios ($(since "$START")s)"
echo "drill: ${#RESULTS[@]} passed, 0 failed"
exit 0
