package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Suite is one invocation measuring several targets (orderflow, the naive
// baseline, the no-op ceiling) one after another with the same settings,
// plus, optionally, an open-loop sweep of offered rates per target. Every
// run in it is a complete [Report]; Config.Name says which target it was.
type Suite struct {
	RunID   string    `json:"run_id"`
	Started time.Time `json:"started"`
	// Runs are the main runs, one per target, in the order they ran.
	Runs []*Report `json:"runs"`
	// Sweep are the open-loop runs, by target, then by offered rate.
	Sweep []*Report `json:"sweep,omitempty"`
}

// SuiteWriter renders a finished Suite. [Summary], [JSONFile] and
// [*Charts] implement it.
type SuiteWriter interface {
	WriteSuite(s *Suite) error
}

// Err returns an error wrapping [ErrReconcile] naming every run whose
// reconciliation failed, or nil.
func (s *Suite) Err() error {
	var bad []string
	for _, r := range append(append([]*Report(nil), s.Runs...), s.Sweep...) {
		if r.Reconcile != nil && !r.Reconcile.OK() {
			bad = append(bad, fmt.Sprintf("%s (%s)", displayName(r), r.Reconcile.Err()))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("%w in %s", ErrReconcile, strings.Join(bad, "; "))
}

// displayName is the target's name, or its URL when it has none.
func displayName(r *Report) string {
	if r.Config.Name != "" {
		return r.Config.Name
	}
	return r.Config.Target
}

// WriteSuite implements [SuiteWriter]: the JSON of the whole suite.
func (j JSONFile) WriteSuite(s *Suite) error { return writeJSONFile(j.Path, s) }

// ReadSuite reads a suite that JSONFile.WriteSuite wrote.
func ReadSuite(path string) (*Suite, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read suite: %w", err)
	}
	s := new(Suite)
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("decode suite %s: %w", path, err)
	}
	return s, nil
}

// WriteSuite implements [SuiteWriter]: every run's summary, then the
// tables of [Summary.WriteTables].
func (s Summary) WriteSuite(su *Suite) error {
	for _, r := range su.Runs {
		if err := s.WriteReport(r); err != nil {
			return err
		}
		if _, err := io.WriteString(s.W, "\n"); err != nil {
			return err
		}
	}
	return s.WriteTables(su)
}

// WriteTables writes one table comparing the targets' main runs and one
// for the sweep.
func (s Summary) WriteTables(su *Suite) error {
	var b strings.Builder
	fmt.Fprintf(&b, "== %s: targets side by side (measured window; CPU, alloc and GC from each target's /metrics)\n", su.RunID)
	fmt.Fprintf(&b, "%-10s %10s %9s %9s %9s %8s %10s %10s %11s %10s %7s  %s\n",
		"target", "orders/s", "p50", "p99", "p99.9", "errors", "CPU s/1k", "PG s/1k", "alloc MB/s", "B/order", "GC %", "reconcile")
	for _, r := range su.Runs {
		writeRow(&b, r)
	}
	if len(su.Sweep) > 0 {
		fmt.Fprintf(&b, "\n== open-loop sweep: latency from the schedule against offered rate\n")
		fmt.Fprintf(&b, "%-10s %9s %10s %9s %9s %9s %8s %8s  %s\n", "target", "offered/s", "orders/s", "p50", "p99", "p99.9", "errors", "dropped", "reconcile")
		for _, r := range su.Sweep {
			l, c := r.Latency, r.Counts
			fmt.Fprintf(&b, "%-10s %9d %10.0f %9s %9s %9s %8d %8d  %s\n", displayName(r), r.Config.Rate, r.Rates.OrdersPerSecond,
				micros(l.P50Micros), micros(l.P99Micros), micros(l.P999Micros), c.Requests-c.Acked, c.DroppedByGenerator, verdict(r))
		}
	}
	_, err := io.WriteString(s.W, b.String())
	return err
}

func writeRow(b *strings.Builder, r *Report) {
	l, c := r.Latency, r.Counts
	cpu, pg, alloc, perOrder, gc := "-", "-", "-", "-", "-"
	if p := r.Postgres; p != nil {
		pg = fmt.Sprintf("%.3f", p.CPUSecondsPer1000Acked)
	}
	if sv := r.Server; sv != nil {
		cpu = fmt.Sprintf("%.3f", sv.CPUSecondsPer1000Acked)
		alloc = fmt.Sprintf("%.1f", sv.AllocBytesPerSecond/1e6)
		perOrder = fmt.Sprintf("%.0f", sv.AllocBytesPerAcked)
		gc = fmt.Sprintf("%.2f", sv.GCPauseFraction*100)
	}
	fmt.Fprintf(b, "%-10s %10.0f %9s %9s %9s %8d %10s %10s %11s %10s %7s  %s\n", displayName(r), r.Rates.OrdersPerSecond,
		micros(l.P50Micros), micros(l.P99Micros), micros(l.P999Micros), c.Requests-c.Acked, cpu, pg, alloc, perOrder, gc, verdict(r))
}

func verdict(r *Report) string {
	rc := r.Reconcile
	switch {
	case rc == nil:
		return "not checked"
	case rc.OK():
		return fmt.Sprintf("OK (%d acked)", rc.Acked)
	default:
		return "FAILED: " + strings.TrimPrefix(rc.Err().Error(), ErrReconcile.Error()+": ")
	}
}
