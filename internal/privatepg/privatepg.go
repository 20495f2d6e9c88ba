// Package privatepg runs a throwaway PostgreSQL cluster of the caller's
// own: initdb into a temporary directory, pg_ctl start on a free loopback
// port, trust authentication, superuser role root. The chaos tests stop and
// restart it at will and the soak measures it alone; the shared server at
// 127.0.0.1:5432 is never touched.
//
// It needs the PostgreSQL server binaries (initdb, pg_ctl) under
// /usr/lib/postgresql/<version>/bin, which `make db` installs. Run as root,
// the cluster belongs to the postgres OS user (initdb refuses root) and the
// tools run through runuser.
package privatepg

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options choose the cluster's settings.
type Options struct {
	// Settings are passed to the server as -c name=value at every start,
	// e.g. {"autovacuum": "off"}; everything else keeps the defaults of
	// initdb, as a production installation would. listen_addresses and
	// port are the package's.
	Settings map[string]string
	// Database, when set, is created at start. Default: none.
	Database string
	// Files are written into the data directory after initdb, before the
	// first start, readable by the server alone (mode 0600, owned by its OS
	// user), e.g. a TLS certificate and key; Settings name them relative to
	// the data directory ({"ssl": "on", "ssl_cert_file": "server.crt"}).
	// Default: none.
	Files map[string][]byte
	// DirPrefix names the temporary directory (os.MkdirTemp pattern).
	// Default: "orderflow-pg-".
	DirPrefix string
}

// Server is one private cluster. Its methods are not safe for concurrent
// use.
type Server struct {
	opts Options
	bin  string // directory of initdb, pg_ctl
	dir  string // owned by the postgres OS user when run as root; also the socket dir
	port int
}

// BinDir finds the newest /usr/lib/postgresql/*/bin with initdb and pg_ctl.
func BinDir() (string, error) {
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

// Start initdbs a cluster in a new temporary directory, starts it on a free
// port of 127.0.0.1 and creates opts.Database if set. On error nothing is
// left behind. Close it when done.
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	if opts.DirPrefix == "" {
		opts.DirPrefix = "orderflow-pg-"
	}
	dir, err := os.MkdirTemp("", opts.DirPrefix)
	if err != nil {
		return nil, fmt.Errorf("private PostgreSQL: %w", err)
	}
	port, err := freePort()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	s := &Server{opts: opts, bin: bin, dir: dir, port: port}
	if err := s.init(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) init(ctx context.Context) error {
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("private PostgreSQL: running as root needs the postgres OS user to run initdb: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(s.dir, uid, gid); err != nil {
			return fmt.Errorf("private PostgreSQL: chown %s: %w", s.dir, err)
		}
	}
	if out, err := s.run(filepath.Join(s.bin, "initdb"), "-D", s.DataDir(), "-U", "root", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"); err != nil {
		return fmt.Errorf("private PostgreSQL: initdb: %w\n%s", err, out)
	}
	if err := s.writeFiles(); err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		return err
	}
	if s.opts.Database == "" {
		return nil
	}
	return s.CreateDatabase(ctx, s.opts.Database)
}

// writeFiles writes Options.Files into the data directory, owned by the
// data directory's owner.
func (s *Server) writeFiles() error {
	fi, err := os.Stat(s.DataDir())
	if err != nil {
		return fmt.Errorf("private PostgreSQL: %w", err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	for name, data := range s.opts.Files {
		path := filepath.Join(s.DataDir(), name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return fmt.Errorf("private PostgreSQL: %w", err)
		}
		if st != nil && os.Geteuid() == 0 {
			if err := os.Chown(path, int(st.Uid), int(st.Gid)); err != nil {
				return fmt.Errorf("private PostgreSQL: chown %s: %w", path, err)
			}
		}
	}
	return nil
}

// freePort returns a TCP port free on 127.0.0.1 right now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("private PostgreSQL: free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Port is the TCP port the server listens on (127.0.0.1).
func (s *Server) Port() int { return s.port }

// DataDir is the cluster's data directory.
func (s *Server) DataDir() string { return filepath.Join(s.dir, "data") }

// LogFile is the server's log.
func (s *Server) LogFile() string { return filepath.Join(s.dir, "log") }

// URL returns the connection URL of database db as role root.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://root@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// AdminURL is URL("postgres").
func (s *Server) AdminURL() string { return s.URL("postgres") }

// run runs a PostgreSQL tool, as the postgres OS user when we are root.
func (s *Server) run(name string, args ...string) ([]byte, error) {
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	} else {
		cmd = exec.Command(name, args...)
	}
	cmd.Dir = s.dir
	// Its own process group, inherited by the postmaster pg_ctl starts: a
	// Ctrl-C meant for the caller does not stop the server under it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd.CombinedOutput()
}

func (s *Server) pgctl(args ...string) error {
	all := append([]string{"-D", s.DataDir(), "-w", "-t", "60"}, args...)
	out, err := s.run(filepath.Join(s.bin, "pg_ctl"), all...)
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Start starts the (stopped) server with its Options.Settings and waits
// until it accepts connections.
func (s *Server) Start() error {
	opts := []string{"-p", strconv.Itoa(s.port), "-k", s.dir, "-c", "listen_addresses=127.0.0.1"}
	keys := make([]string, 0, len(s.opts.Settings))
	for k := range s.opts.Settings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		opts = append(opts, "-c", k+"="+s.opts.Settings[k])
	}
	if err := s.pgctl("-l", s.LogFile(), "-o", strings.Join(opts, " "), "start"); err != nil {
		b, _ := os.ReadFile(s.LogFile())
		return fmt.Errorf("private PostgreSQL: %w\nserver log:\n%s", err, b)
	}
	return nil
}

// Stop stops the server the hard way (-m immediate: every backend is
// killed, crash recovery at the next start), as a crash or failover would.
func (s *Server) Stop() error {
	if err := s.pgctl("-m", "immediate", "stop"); err != nil {
		return fmt.Errorf("private PostgreSQL: %w", err)
	}
	return nil
}

// Close stops the server (immediately) if it runs and removes its
// directory.
func (s *Server) Close() {
	if _, err := os.Stat(filepath.Join(s.DataDir(), "postmaster.pid")); err == nil {
		_ = s.pgctl("-m", "immediate", "stop")
	}
	_ = os.RemoveAll(s.dir)
}

// PID returns the postmaster's process id, from postmaster.pid.
func (s *Server) PID() (int, error) {
	b, err := os.ReadFile(filepath.Join(s.DataDir(), "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("private PostgreSQL: not running: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0, fmt.Errorf("private PostgreSQL: postmaster.pid: %w", err)
	}
	return pid, nil
}

// connect opens a connection to the postgres database, bounded by 10s.
func (s *Server) connect(ctx context.Context) (*pgx.Conn, context.Context, context.CancelFunc, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, err := pgx.Connect(ctx, s.AdminURL())
	if err != nil {
		cancel()
		return nil, nil, nil, fmt.Errorf("private PostgreSQL: connect: %w", err)
	}
	return c, ctx, cancel, nil
}

// CreateDatabase creates database name.
func (s *Server) CreateDatabase(ctx context.Context, name string) error {
	c, ctx, cancel, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	defer c.Close(context.WithoutCancel(ctx))
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("private PostgreSQL: create database %s: %w", name, err)
	}
	return nil
}

// Terminate ends every session of database db except its own
// (pg_terminate_backend) and returns how many it ended.
func (s *Server) Terminate(ctx context.Context, db string) (int64, error) {
	c, ctx, cancel, err := s.connect(ctx)
	if err != nil {
		return 0, err
	}
	defer cancel()
	defer c.Close(context.WithoutCancel(ctx))
	var n int64
	if err := c.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = $1 AND pid <> pg_backend_pid()`, db).Scan(&n); err != nil {
		return 0, fmt.Errorf("private PostgreSQL: terminate backends: %w", err)
	}
	return n, nil
}

// Setting returns the running server's value of a setting (SHOW name).
func (s *Server) Setting(ctx context.Context, name string) (string, error) {
	c, ctx, cancel, err := s.connect(ctx)
	if err != nil {
		return "", err
	}
	defer cancel()
	defer c.Close(context.WithoutCancel(ctx))
	var v string
	if err := c.QueryRow(ctx, `SELECT current_setting($1)`, name).Scan(&v); err != nil {
		return "", fmt.Errorf("private PostgreSQL: setting %s: %w", name, err)
	}
	return v, nil
}
