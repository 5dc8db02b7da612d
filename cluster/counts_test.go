package cluster

import (
	"reflect"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// A completed batch workload counts neither as failed nor as desired (the
// health summary and the recovery metrics read these counts).
func TestWorkloadCountsLeaveCompletedOut(t *testing.T) {
	f := fsm.New()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	batch := api.Spec{Type: api.TypeBatch}
	cmds := []fsm.Command{
		&fsm.RegisterNode{At: at, ID: "n1", Address: "a:1"},
		&fsm.SubmitWorkloads{At: at, Seq: 4, Workloads: []api.Workload{
			{ID: "w1", Command: "true", Spec: batch}, {ID: "w2", Command: "sleep"}, {ID: "w3", Command: "sleep"}, {ID: "w4", Command: "sleep"}}},
		&fsm.PlaceWorkloads{At: at, Placements: []fsm.Placement{{ID: "w1", Node: "n1", Generation: 1}, {ID: "w2", Node: "n1", Generation: 1}, {ID: "w3", Node: "n1", Generation: 1}}},
		&fsm.RecordOutcomes{At: at, MaxAttempts: 3, Outcomes: []fsm.Outcome{
			{ID: "w1", Generation: 1, ExitCode: new(int), Completed: true},
			{ID: "w2", Generation: 1, Running: true, PID: 5},
			{ID: "w3", Generation: 1, Reason: "boom"}}},
		&fsm.UpdateInstances{Reports: []fsm.InstanceReport{{ID: "w2", Generation: 1, Health: api.HealthHealthy}}},
	}
	for _, c := range cmds {
		if err := f.ApplyCommand(c); err != nil {
			t.Fatal(err)
		}
	}
	r := &Replica{fsm: f}
	failed, permanent, desired, queue := r.workloadCounts()
	if !reflect.DeepEqual(failed, []string{"w3"}) || len(permanent) != 0 || desired != 3 || queue != 1 {
		t.Fatalf("failed %v permanent %v desired %d queue %d", failed, permanent, desired, queue)
	}
	if healthLabel("") != api.HealthUnknown || healthLabel(api.HealthUnhealthy) != api.HealthUnhealthy {
		t.Fatal("health labels")
	}
}
