#!/usr/bin/env bash
# make bench: every row of the performance table, one gated test at a time
# (the machine may have 2 cores), then one table of target against measured
# and bench.json at the repository root.
#
# Counts: MO_BENCH_LEADER_KILLS (20), MO_BENCH_CLIENTS (64),
# MO_BENCH_STATUS_GETS (2000). MO_BENCH_ONLY=regexp runs only the steps whose
# name matches (e.g. MO_BENCH_ONLY='Throughput|Status').
set -u
cd "$(dirname "$0")/.."
GO=${GO:-go}
start=$(date +%s)
work=$(mktemp -d "${TMPDIR:-/tmp}/mo-bench-XXXXXX")
trap 'rm -rf "$work"' EXIT
rows="$work/rows.jsonl"
: >"$rows"
failed=()

steps=(
	"SubmitThroughput|integration|^TestBenchSubmitThroughput$|MO_BENCH=1"
	"WriteRateVsSize|integration|^TestBenchWriteRateVsSize$|MO_BENCH=1"
	"AgentFailover|integration|^TestBenchAgentFailover$|MO_BENCH=1"
	"LeaderFailover|integration|^TestBenchLeaderFailover$|MO_BENCH=1"
	"MassRecovery|integration|^TestBenchMassRecovery$|MO_BENCH=1"
	"AgentStatus|integration|^TestBenchAgentStatus$|MO_BENCH=1"
	"HealthScale|health|^TestSimulatedScale$|HEALTH_SCALE_BENCH=1"
)

logs=()
for s in "${steps[@]}"; do
	IFS='|' read -r name pkg run envv <<<"$s"
	if [ -n "${MO_BENCH_ONLY:-}" ] && ! [[ $name =~ $MO_BENCH_ONLY ]]; then
		continue
	fi
	log="$work/$name.log"
	logs+=("$log")
	t0=$(date +%s)
	echo "== $name"
	if env "$envv" MO_BENCH_OUT="$rows" "$GO" test -count=1 -v -timeout 12m -run "$run" "./$pkg" >"$log" 2>&1; then
		echo "   ok in $(($(date +%s) - t0))s"
	else
		echo "   FAILED in $(($(date +%s) - t0))s; last lines:"
		tail -n 15 "$log" | sed 's/^/   /'
		failed+=("$name")
	fi
	if [ "$name" = HealthScale ]; then
		# The simulated scale test prints its own report; keep it in view.
		grep -v '^=== \|^--- \|^PASS\|^ok ' "$log" | tail -n 20 | sed 's/^/   /'
	fi
done

wall=$(($(date +%s) - start))
IFS=,
"$GO" run ./scripts/benchreport -rows "$rows" -out bench.json -wall "$wall" -failed "${failed[*]:-}" "${logs[@]}"
unset IFS
[ ${#failed[@]} -eq 0 ]
