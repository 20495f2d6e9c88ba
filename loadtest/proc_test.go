package loadtest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/pgtest"
)

func TestParseProcStat(t *testing.T) {
	// comm may hold spaces and parentheses; the fields count from the last ')'.
	line := []byte("4242 (postgres: a (b) c) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 30 7 3 20 0 1 0 100 1000 10\n")
	st, err := parseProcStat(line)
	if err != nil {
		t.Fatal(err)
	}
	want := ProcStat{PID: 4242, PPID: 17, Comm: "postgres: a (b) c", CPU: 280 * clockTick, ChildrenCPU: 10 * clockTick}
	if st != want {
		t.Fatalf("parseProcStat = %+v; want %+v", st, want)
	}
	for _, bad := range []string{"", "12 comm S 1", "12 (x) S 1 2 3", "x (y) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Fatalf("parseProcStat(%q): want an error", bad)
		}
	}
}

func TestParseMachineCPU(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	b := []byte("cpu  100 2 30 500 7 1 4 3 50 0\ncpu0 50 1 15 250 3 0 2 1 25 0\n")
	m, err := parseMachineCPU(b)
	if err != nil {
		t.Fatal(err)
	}
	want := MachineCPU{Busy: 140 * clockTick, Total: 647 * clockTick}
	if m != want {
		t.Fatalf("parseMachineCPU = %+v; want %+v (guest is inside user, idle and iowait are not busy)", m, want)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5 6 7 8\n", "cpu 1 2 3 4 5 6 7\n", "cpu 1 2 x 4 5 6 7 8\n"} {
		if _, err := parseMachineCPU([]byte(bad)); err == nil {
			t.Fatalf("parseMachineCPU(%q): want an error", bad)
		}
	}
	live, err := ReadMachineCPU()
	if err != nil || live.Total <= 0 || live.Busy > live.Total {
		t.Fatalf("ReadMachineCPU = %+v, %v", live, err)
	}
}

// TestProcessTreeCPUCountsExitedChildren burns CPU in a child that exits:
// its time must show in the parent's tree total, as an exited PostgreSQL
// backend's does in the postmaster's.
func TestProcessTreeCPUCountsExitedChildren(t *testing.T) {
	before, err := ProcessTreeCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	self0, _ := ReadProcStat(os.Getpid())
	cmd := exec.Command("sh", "-c", `i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done`)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("busy child: %v %s", err, out)
	}
	self1, err := ReadProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	child := self1.ChildrenCPU - self0.ChildrenCPU
	if child < 5*clockTick {
		t.Fatalf("the exited child's CPU %v did not reach the parent's children time", child)
	}
	after, err := ProcessTreeCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after-before < child {
		t.Fatalf("tree CPU grew by %v; want at least the child's %v", after-before, child)
	}
	if _, err := ProcessTreeCPU(1 << 30); err == nil {
		t.Fatal("ProcessTreeCPU of a process that does not exist: want an error")
	}
}

// TestFindPostmaster finds the local PostgreSQL server behind a database
// URL and reads its CPU.
func TestFindPostmaster(t *testing.T) {
	dbURL := pgtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pid, err := FindPostmaster(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	st, err := ReadProcStat(pid)
	if err != nil || st.Comm != "postgres" {
		t.Fatalf("postmaster %d: %+v, %v", pid, st, err)
	}
	if cpu, err := ProcessTreeCPU(pid); err != nil || cpu <= 0 {
		t.Fatalf("postgres CPU %v, %v; want > 0", cpu, err)
	}
	if _, err := FindPostmaster(ctx, "postgres://127.0.0.1:1/x?sslmode=disable&connect_timeout=2"); err == nil {
		t.Fatal("FindPostmaster of a dead server: want an error")
	}
}

// TestWindowsMergeAndSplit records answers into 10-second windows and
// checks the points and the merged latency of a span.
func TestWindowsMergeAndSplit(t *testing.T) {
	s := &series{width: 10 * time.Second, sigFigs: histSigFigs}
	for i := range 100 {
		s.observe(time.Duration(i)*time.Second/4, 201, time.Millisecond, 1, 0) // 0–24.75 s, 1 ms
	}
	s.observe(25*time.Second, 201, 100*time.Millisecond, 1, 0)
	s.observe(26*time.Second, 503, time.Second, 0, 0)
	pts := s.points(27 * time.Second)
	if len(pts) != 3 || pts[0].T != 0 || pts[1].T != 10 || pts[2].T != 20 || pts[0].SpanSeconds != 10 || pts[2].SpanSeconds != 7 {
		t.Fatalf("points = %+v; want windows at 0, 10, 20 s, the last 7 s long", pts)
	}
	if pts[0].Acked != 40 || pts[2].Acked != 21 || pts[2].Errors != 1 || pts[2].P999Micros < 99_000 {
		t.Fatalf("points = %+v; want 40 acked first, 21 acked and an error last with the 100 ms answer at p99.9", pts)
	}
	if l := s.latencyBetween(0, 20*time.Second); l.Count != 80 || l.MaxMicros > 1001 {
		t.Fatalf("first 20 s: %+v; want 80 answers of 1 ms", l)
	}
	if l := s.latencyBetween(20*time.Second, time.Hour); l.Count != 21 || l.MaxMicros < 99_000 {
		t.Fatalf("last window: %+v; want 21 answers, the slowest 100 ms", l)
	}
}
