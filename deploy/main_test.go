package deploy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/pgtest"
)

// repo is the repository root, relative to this package.
const repo = ".."

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// serverBinary builds ./cmd/orderflow once per test run and returns its path.
func serverBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "orderflow-deploy-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "orderflow")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/orderflow")
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/orderflow: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// flagTable returns every environment variable orderflow -h names: the
// variable of each flag and those without a flag (API keys).
func flagTable(t *testing.T) map[string]bool {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(serverBinary(t), "-h")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("orderflow -h: %v\n%s", err, out.Bytes())
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b`).FindAllString(out.String(), -1) {
		names[m] = true
	}
	if !names["DATABASE_URL"] || !names["ORDERFLOW_DRAIN_DELAY"] {
		t.Fatalf("orderflow -h names neither DATABASE_URL nor ORDERFLOW_DRAIN_DELAY; output:\n%s", out.Bytes())
	}
	return names
}

// testDB returns a fresh database (pgtest) with the demo catalog, seeded by
// the binary itself, as a URL that names its user (the image has no
// /etc/passwd to default it from).
func testDB(t *testing.T) string {
	t.Helper()
	raw := pgtest.New(t)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("parse %s: %v", raw, err)
	}
	if u.User == nil || u.User.Username() == "" {
		me, err := user.Current()
		if err != nil {
			t.Fatalf("current user: %v", err)
		}
		u.User = url.User(me.Username)
	}
	db := u.String()
	out, err := exec.Command(serverBinary(t), "seed-demo-catalog", "-database-url", db).CombinedOutput()
	if err != nil {
		t.Fatalf("orderflow seed-demo-catalog: %v\n%s", err, out)
	}
	return db
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// server is the orderflow binary (or the image) run as a child process.
type server struct {
	t           *testing.T
	base, admin string
	cmd         *exec.Cmd
	done        chan struct{}
	mu          sync.Mutex
	log         bytes.Buffer
}

func (s *server) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.Write(p)
}

func (s *server) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.log.Bytes()
	if len(b) > 8<<10 {
		b = b[len(b)-8<<10:]
	}
	return string(b)
}

// serverEnv is the environment of a server on free loopback ports with the
// embedded broker on a free port, on database db, plus extra (KEY=VALUE).
// Nothing is inherited from the test's environment but PATH and HOME.
func serverEnv(t *testing.T, db string, extra ...string) (env []string, base, admin string) {
	port, aport := freePort(t), freePort(t)
	env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"DATABASE_URL=" + db,
		fmt.Sprintf("ORDERFLOW_LISTEN=127.0.0.1:%d", port),
		fmt.Sprintf("ORDERFLOW_ADMIN_LISTEN=127.0.0.1:%d", aport),
		"ORDERFLOW_EMBEDDED_KAFKA_ADDR=127.0.0.1:0",
	}
	return append(env, extra...), fmt.Sprintf("http://127.0.0.1:%d", port), fmt.Sprintf("http://127.0.0.1:%d", aport)
}

// startProcess runs cmd (stdout and stderr kept for failure messages) and
// waits until admin/readyz answers 200. The process is stopped with SIGTERM
// (SIGKILL after 30 s) in t.Cleanup.
func startProcess(t *testing.T, cmd *exec.Cmd, base, admin string) *server {
	t.Helper()
	s := &server{t: t, base: base, admin: admin, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s, s
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	go func() { _ = cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("server log (tail):\n%s", s.logText())
		}
	})
	deadline := time.Now().Add(90 * time.Second)
	for {
		if code, _ := get(admin + "/readyz"); code == http.StatusOK {
			return s
		}
		select {
		case <-s.done:
			t.Fatalf("%s exited during start-up (%v); log:\n%s", cmd.Path, cmd.ProcessState, s.logText())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 90s; log:\n%s", cmd.Path, s.logText())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startServer runs the orderflow binary with env.
func startServer(t *testing.T, env []string, base, admin string) *server {
	t.Helper()
	cmd := exec.Command(serverBinary(t))
	cmd.Env = env
	return startProcess(t, cmd, base, admin)
}

// stop sends SIGTERM and waits for the exit (SIGKILL after 30 s).
func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

var hc = &http.Client{Timeout: 20 * time.Second}

func get(url string) (int, []byte) { return do(http.MethodGet, url, "", nil) }

// do sends one request and returns the status (0 when no response came).
func do(method, url, contentType string, body []byte, hdr ...string) (int, []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, []byte(err.Error())
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// orderJSON is a valid order under the demo catalog.
func orderJSON(id string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"user_id":"u_deploy","items":[{"sku":"milk-1l","qty":2},{"sku":"bread-rye","qty":1}]}`, id)
}

// readFile reads a file relative to the repository root.
func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// lines splits s into trimmed non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
