package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// clockTick is the unit of the CPU times in /proc/<pid>/stat: USER_HZ,
// which Linux fixes at 100 per second on every architecture it exposes to
// user space.
const clockTick = 10 * time.Millisecond

// ProcStat is the part of /proc/<pid>/stat the load test reads.
type ProcStat struct {
	PID, PPID int
	// Comm is the executable name (at most 15 bytes).
	Comm string
	// CPU is user + system time; ChildrenCPU the same for children the
	// process has waited for (exited ones).
	CPU, ChildrenCPU time.Duration
}

// ReadProcStat reads /proc/<pid>/stat (Linux only).
func ReadProcStat(pid int) (ProcStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return ProcStat{}, err
	}
	return parseProcStat(b)
}

// parseProcStat parses "pid (comm) state ppid … utime stime cutime cstime …";
// comm may hold spaces and parentheses, so it ends at the last ')'.
func parseProcStat(b []byte) (ProcStat, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 1 || end < open {
		return ProcStat{}, fmt.Errorf("proc stat %q: no (comm)", b)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return ProcStat{}, fmt.Errorf("proc stat: pid: %w", err)
	}
	f := bytes.Fields(b[end+1:])
	// f[0] state, f[1] ppid, f[11] utime, f[12] stime, f[13] cutime, f[14] cstime.
	if len(f) < 15 {
		return ProcStat{}, fmt.Errorf("proc stat of %d: %d fields after comm, want at least 15", pid, len(f))
	}
	var v [5]int64
	for i, j := range []int{1, 11, 12, 13, 14} {
		if v[i], err = strconv.ParseInt(string(f[j]), 10, 64); err != nil {
			return ProcStat{}, fmt.Errorf("proc stat of %d: field %d: %w", pid, j+3, err)
		}
	}
	return ProcStat{PID: pid, PPID: int(v[0]), Comm: string(b[open+1 : end]),
		CPU: time.Duration(v[1]+v[2]) * clockTick, ChildrenCPU: time.Duration(v[3]+v[4]) * clockTick}, nil
}

// ProcessTreeCPU returns the CPU time used so far by process pid and its
// direct children: pid's own user + system time, what its exited children
// used (the kernel adds it to pid when pid waits for them), and the user +
// system time of each child still running. For a PostgreSQL postmaster that
// is every backend, background writer, WAL writer, checkpointer and
// autovacuum worker, past and present. Linux only (/proc).
func ProcessTreeCPU(pid int) (time.Duration, error) {
	root, err := ReadProcStat(pid)
	if err != nil {
		return 0, fmt.Errorf("cpu of process %d: %w", pid, err)
	}
	total := root.CPU + root.ChildrenCPU
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("cpu of process %d: %w", pid, err)
	}
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		st, err := ReadProcStat(child)
		if err != nil || st.PPID != pid {
			continue // gone in the meantime, or not a child
		}
		total += st.CPU
	}
	return total, nil
}

// FindPostmaster returns the process id of the PostgreSQL server behind
// databaseURL when it runs on this machine: the parent of the backend
// serving a fresh connection (SELECT pg_backend_pid()). Both must be
// processes named postgres here, else the server is elsewhere (another
// host or another PID namespace) and it is an error. It blocks for at most
// 10s.
func FindPostmaster(ctx context.Context, databaseURL string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return 0, fmt.Errorf("find postmaster: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var backend int
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		return 0, fmt.Errorf("find postmaster: %w", err)
	}
	st, err := ReadProcStat(backend)
	if err != nil || st.Comm != "postgres" {
		return 0, fmt.Errorf("find postmaster: backend %d is not a local postgres process (is the server on another machine?)", backend)
	}
	pm, err := ReadProcStat(st.PPID)
	if err != nil || pm.Comm != "postgres" {
		return 0, fmt.Errorf("find postmaster: parent %d of backend %d is not a postgres process", st.PPID, backend)
	}
	return pm.PID, nil
}

// MachineCPU is the machine's CPU time from /proc/stat, summed over every
// CPU: Busy (user, nice, system, irq, softirq, steal) and Total (Busy plus
// idle and iowait). Busy/Total over an interval is how loaded the box was.
type MachineCPU struct {
	Busy, Total time.Duration
}

// ReadMachineCPU reads the aggregate "cpu" line of /proc/stat (Linux only).
func ReadMachineCPU() (MachineCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return MachineCPU{}, err
	}
	return parseMachineCPU(b)
}

func parseMachineCPU(b []byte) (MachineCPU, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return MachineCPU{}, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	// user nice system idle iowait irq softirq steal [guest guest_nice]:
	// guest time is already counted in user and nice.
	var m MachineCPU
	for i := 1; i <= 8; i++ {
		v, err := strconv.ParseInt(string(f[i]), 10, 64)
		if err != nil {
			return MachineCPU{}, fmt.Errorf("/proc/stat: field %d of %q: %w", i, line, err)
		}
		d := time.Duration(v) * clockTick
		m.Total += d
		if i != 4 && i != 5 { // idle, iowait
			m.Busy += d
		}
	}
	return m, nil
}

// ProcessCPU is the CPU time (user + system) this process has used: the
// load generator's own, when it runs in the process measuring.
func ProcessCPU() time.Duration { return processCPU() }
