package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// privatePG is a throwaway PostgreSQL cluster of the test's own, which the
// test may stop and start at will: the shared server at 127.0.0.1:5432 is
// never touched. Trust auth on loopback, superuser role root, one database
// "orderflow" (migrated and seeded by the caller).
type privatePG struct {
	t        *testing.T
	bin      string // directory of initdb, pg_ctl
	dir      string // owned by the postgres OS user; also the socket dir
	port     int
	URL      string // the orderflow database
	AdminURL string // the postgres database
}

// pgBinDir finds the newest /usr/lib/postgresql/*/bin with initdb and pg_ctl.
func pgBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin: install the postgresql package (make db does)")
}

// startPrivatePG initdbs a temporary cluster as the postgres OS user (initdb
// refuses root), starts it on a free port and creates the orderflow
// database. A machine without the binaries fails the test; it never skips.
func startPrivatePG(t *testing.T) *privatePG {
	t.Helper()
	bin, err := pgBinDir()
	if err != nil {
		t.Fatalf("private PostgreSQL: %v", err)
	}
	dir, err := os.MkdirTemp("", "orderflow-chaos-pg-")
	if err != nil {
		t.Fatalf("private PostgreSQL: %v", err)
	}
	p := &privatePG{t: t, bin: bin, dir: dir, port: freePort(t)}
	t.Cleanup(func() {
		_ = p.pgctl("-m", "immediate", "stop")
		_ = os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("private PostgreSQL: running as root needs the postgres OS user to run initdb: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatalf("private PostgreSQL: chown %s: %v", dir, err)
		}
	}
	if out, err := p.run(filepath.Join(bin, "initdb"), "-D", p.data(), "-U", "root", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"); err != nil {
		t.Fatalf("private PostgreSQL: initdb: %v\n%s", err, out)
	}
	p.AdminURL = fmt.Sprintf("postgres://root@127.0.0.1:%d/postgres?sslmode=disable", p.port)
	p.URL = fmt.Sprintf("postgres://root@127.0.0.1:%d/orderflow?sslmode=disable", p.port)
	p.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, p.AdminURL)
	if err != nil {
		t.Fatalf("private PostgreSQL: connect: %v", err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "CREATE DATABASE orderflow"); err != nil {
		t.Fatalf("private PostgreSQL: create database: %v", err)
	}
	return p
}

func (p *privatePG) data() string { return filepath.Join(p.dir, "data") }

// run runs a PostgreSQL tool, as the postgres OS user when we are root.
func (p *privatePG) run(name string, args ...string) ([]byte, error) {
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	} else {
		cmd = exec.Command(name, args...)
	}
	cmd.Dir = p.dir
	return cmd.CombinedOutput()
}

func (p *privatePG) pgctl(args ...string) error {
	all := append([]string{"-D", p.data(), "-w", "-t", "60"}, args...)
	out, err := p.run(filepath.Join(p.bin, "pg_ctl"), all...)
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Start starts the server and waits until it accepts connections.
func (p *privatePG) Start() {
	p.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=60 -c shared_buffers=32MB", p.port, p.dir)
	if err := p.pgctl("-l", filepath.Join(p.dir, "log"), "-o", opts, "start"); err != nil {
		b, _ := os.ReadFile(filepath.Join(p.dir, "log"))
		p.t.Fatalf("private PostgreSQL: %v\nserver log:\n%s", err, b)
	}
}

// Stop stops the server the hard way (-m immediate: every backend is
// killed, crash recovery at the next start), as a crash or failover would.
func (p *privatePG) Stop() {
	p.t.Helper()
	if err := p.pgctl("-m", "immediate", "stop"); err != nil {
		p.t.Fatalf("private PostgreSQL: %v", err)
	}
}

// Terminate ends every session of the orderflow database except its own
// (pg_terminate_backend), and returns how many it ended.
func (p *privatePG) Terminate() int64 {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, p.AdminURL)
	if err != nil {
		p.t.Fatalf("private PostgreSQL: connect: %v", err)
	}
	defer c.Close(context.Background())
	var n int64
	if err := c.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = 'orderflow' AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
		p.t.Fatalf("private PostgreSQL: terminate backends: %v", err)
	}
	return n
}
