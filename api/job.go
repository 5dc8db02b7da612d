package api

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Bounds and defaults of a job.
const (
	MaxJobCount = 1000
	// MaxJobVersions is how many versions of a job are kept (the current
	// one included); older ones are forgotten.
	MaxJobVersions = 10

	DefaultMaxParallel     = 1
	DefaultMinHealthyTime  = 10 * time.Second
	DefaultHealthyDeadline = 5 * time.Minute
)

// Update orders: what a rolling update does first for each instance.
const (
	// OrderStopFirst stops an old instance, then starts its replacement:
	// no extra room needed, one fewer instance meanwhile.
	OrderStopFirst = "stop_first"
	// OrderStartFirst starts the replacement and stops the old instance
	// once the new one is healthy: never fewer instances, but room for
	// max_parallel more is needed.
	OrderStartFirst = "start_first"
)

// Deployment statuses.
const (
	DeploymentRunning    = "running"
	DeploymentSuccessful = "successful"
	DeploymentFailed     = "failed"
	// DeploymentReverted is a failed deployment whose job was rolled back
	// to its last good version (auto_revert).
	DeploymentReverted = "reverted"
	// DeploymentCancelled is a deployment ended by a job stop or by a newer
	// version.
	DeploymentCancelled = "cancelled"
)

// Job statuses.
const (
	JobRunning = "running"
	JobStopped = "stopped"
)

// UpdateStrategy says how a new version replaces the instances of the old.
type UpdateStrategy struct {
	// MaxParallel is how many instances are replaced at a time (1).
	MaxParallel *int `json:"max_parallel,omitempty"`
	// MinHealthyTime is how long a new instance must stay healthy (10s).
	MinHealthyTime Duration `json:"min_healthy_time,omitempty"`
	// HealthyDeadline is how long a new instance may take to be healthy
	// for MinHealthyTime before the deployment fails (5m).
	HealthyDeadline Duration `json:"healthy_deadline,omitempty"`
	// AutoRevert rolls the last good version out again when a deployment fails.
	AutoRevert bool `json:"auto_revert,omitempty"`
	// Order is stop_first (the default) or start_first.
	Order string `json:"order,omitempty"`
}

// Parallel returns MaxParallel with its default.
func (u *UpdateStrategy) Parallel() int {
	if u == nil || u.MaxParallel == nil {
		return DefaultMaxParallel
	}
	return *u.MaxParallel
}

// JobSpec is a job as a file or POST /jobs gives it: the task of its
// instances (a workload spec), their count and the update strategy. POST
// /jobs takes it as one flat JSON object.
type JobSpec struct {
	Name string `json:"name"`
	// Count is how many instances run (default 1; 0 to 1000).
	Count     *int              `json:"count,omitempty"`
	Command   string            `json:"command"`
	Args      []string          `json:"args,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	Exclusive bool              `json:"exclusive,omitempty"`
	Spec
	Update *UpdateStrategy `json:"update,omitempty"`
}

// CountOr returns the count asked for, or 1 when none is.
func (j *JobSpec) CountOr() int {
	if j.Count == nil {
		return 1
	}
	return *j.Count
}

// FieldError is one problem of a job spec, with the field it is about
// (for example "update.max_parallel", "check.interval", "count").
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error implements error: the field, then the message (which may name the
// field itself already).
func (e FieldError) Error() string {
	if strings.HasPrefix(e.Message, e.Field) {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// jobName is a DNS label (RFC 1123): what a job name must be.
var jobName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// ValidateJobName checks that a job name is a DNS label.
func ValidateJobName(name string) error {
	if name == "" {
		return fmt.Errorf("a job needs a name")
	}
	if !jobName.MatchString(name) {
		return fmt.Errorf("job name %q is not a DNS label: use 1 to 63 of a-z, 0-9 and -, starting and ending with a letter or digit", name)
	}
	return nil
}

// Validate checks a job spec before Normalize and returns every problem
// found, each naming its field.
func (j *JobSpec) Validate() []FieldError {
	var errs []FieldError
	add := func(field string, err error) {
		if err != nil {
			errs = append(errs, FieldError{Field: field, Message: err.Error()})
		}
	}
	add("name", ValidateJobName(j.Name))
	if j.Count != nil && (*j.Count < 0 || *j.Count > MaxJobCount) {
		errs = append(errs, FieldError{Field: "count", Message: fmt.Sprintf("%d: want 0 to %d", *j.Count, MaxJobCount)})
	}
	if err := ValidateProcess(j.Command, j.Args, j.Env); err != nil {
		field := "command"
		switch msg := err.Error(); {
		case strings.HasPrefix(msg, "args"):
			field = "args"
		case strings.HasPrefix(msg, "env"):
			field = "env"
		}
		add(field, err)
	}
	if err := j.Spec.Validate(); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			errs = append(errs, FieldError{Field: SpecErrorField(line), Message: line})
		}
	}
	if u := j.Update; u != nil {
		if u.MaxParallel != nil && (*u.MaxParallel < 1 || *u.MaxParallel > MaxJobCount) {
			errs = append(errs, FieldError{Field: "update.max_parallel", Message: fmt.Sprintf("%d: want 1 to %d", *u.MaxParallel, MaxJobCount)})
		}
		add("update.min_healthy_time", positive("update.min_healthy_time", u.MinHealthyTime))
		add("update.healthy_deadline", positive("update.healthy_deadline", u.HealthyDeadline))
		minH, dl := u.MinHealthyTime.D(), u.HealthyDeadline.D()
		if minH == 0 {
			minH = DefaultMinHealthyTime
		}
		if dl == 0 {
			dl = DefaultHealthyDeadline
		}
		if minH >= dl {
			errs = append(errs, FieldError{Field: "update.healthy_deadline", Message: fmt.Sprintf("healthy_deadline %s must be longer than min_healthy_time %s", dl, minH)})
		}
		switch u.Order {
		case "", OrderStopFirst:
		case OrderStartFirst:
			if j.Exclusive {
				errs = append(errs, FieldError{Field: "update.order", Message: "start_first would run two instances of an exclusive job at once; use stop_first"})
			}
		default:
			errs = append(errs, FieldError{Field: "update.order", Message: fmt.Sprintf("order %q: want stop_first or start_first", u.Order)})
		}
	}
	return errs
}

// SpecErrorField names the field that a line of Spec.Validate's error is
// about, for example "check.interval" for "check.interval 50ms: at least
// 100ms", "check" for "check: a http check needs port", "ports" for "port
// label ...".
func SpecErrorField(line string) string {
	word := line
	if i := strings.IndexAny(word, " :"); i >= 0 {
		word = word[:i]
	}
	switch {
	case word == "port":
		return "ports"
	case word == "":
		return "spec"
	}
	return word
}

// Normalize fills a valid job spec's defaults: count 1, the workload spec's
// defaults, and the update strategy's.
func (j *JobSpec) Normalize() {
	if j.Count == nil {
		j.Count = new(int)
		*j.Count = 1
	}
	j.Spec.Normalize()
	if j.Update == nil {
		j.Update = &UpdateStrategy{}
	}
	u := j.Update
	if u.MaxParallel == nil {
		u.MaxParallel = new(int)
		*u.MaxParallel = DefaultMaxParallel
	}
	if u.MinHealthyTime == 0 {
		u.MinHealthyTime = Duration(DefaultMinHealthyTime)
	}
	if u.HealthyDeadline == 0 {
		u.HealthyDeadline = Duration(DefaultHealthyDeadline)
	}
	if u.Order == "" {
		u.Order = OrderStopFirst
	}
	if len(j.Args) == 0 {
		j.Args = nil
	}
	if len(j.Env) == 0 {
		j.Env = nil
	}
}

// Deployment is the rollout of one version of a job.
type Deployment struct {
	Version uint64 `json:"version"`
	// Status is running, successful, failed, reverted or cancelled.
	Status string `json:"status"`
	// Healthy is how many instances of the version have been healthy for
	// min_healthy_time; Desired is the count it aims at.
	Healthy int `json:"healthy"`
	Desired int `json:"desired"`
	// Placed is how many instances of the version it has created (in-place
	// updates of unchanged instances included).
	Placed      int        `json:"placed"`
	Description string     `json:"description,omitempty"`
	StartedAt   time.Time  `json:"started_at"`
	EndedAt     *time.Time `json:"ended_at,omitempty"`
	// RevertOf, on the rollout of a revert, is the version whose spec it
	// rolls out again.
	RevertOf *uint64 `json:"revert_of,omitempty"`
	// Counted are the IDs of the instances counted healthy.
	Counted []string `json:"counted,omitempty"`
}

// Terminal reports whether the deployment has ended.
func (d *Deployment) Terminal() bool { return d != nil && d.Status != DeploymentRunning }

// JobVersion is one kept version of a job.
type JobVersion struct {
	Version     uint64    `json:"version"`
	Spec        JobSpec   `json:"spec"`
	SubmittedAt time.Time `json:"submitted_at"`
	// Deployment is how this version's rollout ended (or running); empty
	// when it had none.
	Deployment string `json:"deployment,omitempty"`
	// Stable is a version whose rollout succeeded: what auto_revert goes
	// back to.
	Stable bool `json:"stable,omitempty"`
	// RevertOf is the version it is a revert to, if it is one.
	RevertOf *uint64 `json:"revert_of,omitempty"`
}

// Job is a job as GET /jobs and GET /jobs/{name} show it.
type Job struct {
	Name string `json:"name"`
	// Status is running or stopped.
	Status  string  `json:"status"`
	Version uint64  `json:"version"`
	Count   int     `json:"count"`
	Spec    JobSpec `json:"spec"`
	// Instances counts its live and recent instances by state; Health
	// counts its running instances by health.
	Instances  map[string]int `json:"instances"`
	Health     map[string]int `json:"health"`
	Deployment *Deployment    `json:"deployment,omitempty"`
	CreatedAt  time.Time      `json:"created_at"`
	UpdatedAt  time.Time      `json:"updated_at"`
}

// JobList is the answer to GET /jobs.
type JobList struct {
	Jobs []Job `json:"jobs"`
}

// JobVersions is the answer to GET /jobs/{name}/versions: newest first.
type JobVersions struct {
	Name     string       `json:"name"`
	Versions []JobVersion `json:"versions"`
}

// FieldDiff is one changed field of a plan: Op is "+" (added), "-"
// (removed) or "~" (changed); Old and New are JSON values.
type FieldDiff struct {
	Op    string `json:"op"`
	Field string `json:"field"`
	Old   string `json:"old,omitempty"`
	New   string `json:"new,omitempty"`
}

// JobPlan is what POST /jobs?plan=true answers: what a run of the spec
// would do, changing nothing.
type JobPlan struct {
	Name string `json:"name"`
	// New is true for a job that does not exist yet.
	New bool `json:"new"`
	// Changes is false when the run would change nothing.
	Changes bool `json:"changes"`
	// Version is the version the job would be at; NewVersion says whether
	// the run makes one.
	Version    uint64 `json:"version"`
	NewVersion bool   `json:"new_version"`
	// CountFrom and CountTo are the count before and after; CountNote
	// explains a count kept from a scale.
	CountFrom int         `json:"count_from"`
	CountTo   int         `json:"count_to"`
	CountNote string      `json:"count_note,omitempty"`
	Diff      []FieldDiff `json:"diff"`
	// Instances to create, to replace with the new version (destructive
	// updates), to update in place (no restart) and to stop.
	Create  int `json:"create"`
	Replace int `json:"replace"`
	InPlace int `json:"in_place"`
	Stop    int `json:"stop"`
}

// JobRunResponse is the answer to POST /jobs: the job's version and count
// after the run, and the plan it carried out.
type JobRunResponse struct {
	Name    string  `json:"name"`
	Version uint64  `json:"version"`
	Count   int     `json:"count"`
	Plan    JobPlan `json:"plan"`
}

// JobScaleRequest is the body of POST /jobs/{name}/scale.
type JobScaleRequest struct {
	Count *int `json:"count"`
}

// JobRevertRequest is the body of POST /jobs/{name}/revert.
type JobRevertRequest struct {
	Version *uint64 `json:"version"`
}
