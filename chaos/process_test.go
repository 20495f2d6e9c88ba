package chaos

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/enginetest"
)

// serverProc is the orderflow binary run as a child process on fixed
// loopback ports, so it can be SIGKILLed and restarted at the same address.
type serverProc struct {
	t           *testing.T
	bin         string
	args        []string
	logPath     string
	base, admin string
	hc          *http.Client

	cmd  *exec.Cmd
	done chan struct{}
	runs int
}

func newServerProc(t *testing.T, dbURL string, brokers []string, extra ...string) *serverProc {
	t.Helper()
	port, aport := freePort(t), freePort(t)
	s := &serverProc{
		t:       t,
		bin:     serverBinary(t),
		logPath: t.TempDir() + "/orderflow.log",
		base:    fmt.Sprintf("http://127.0.0.1:%d", port),
		admin:   fmt.Sprintf("http://127.0.0.1:%d", aport),
		hc:      newHTTPClient(2),
	}
	s.hc.Timeout = 2 * time.Second
	s.args = []string{
		"-listen", fmt.Sprintf("127.0.0.1:%d", port),
		"-admin-listen", fmt.Sprintf("127.0.0.1:%d", aport),
		"-database-url", dbURL,
		"-kafka-brokers", brokers[0],
		"-kafka-topic", enginetest.Topic,
		// The timers of the in-process engines (enginetest.TestTimers).
		"-kafka.sweep-grace", enginetest.TestTimers.SweepGrace.String(),
		"-kafka.delivery-timeout", enginetest.TestTimers.DeliveryTimeout.String(),
		"-kafka.sweep-interval", enginetest.TestTimers.SweepInterval.String(),
		"-catalog.refresh-interval", enginetest.TestTimers.CatalogRefresh.String(),
		"-shutdown-timeout", "10s",
		"-log-level", "warn",
	}
	s.args = append(s.args, extra...)
	s.args = append(s.args, extraServerFlags()...)
	t.Cleanup(func() {
		if s.running() {
			s.kill()
		}
		if t.Failed() {
			s.dumpLog()
		}
	})
	return s
}

func (s *serverProc) running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// start runs the binary and waits until /readyz answers 200.
func (s *serverProc) start() {
	s.t.Helper()
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		s.t.Fatalf("server log: %v", err)
	}
	s.runs++
	fmt.Fprintf(logf, "=== run %d at %s\n", s.runs, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.t.Fatalf("start %s: %v", s.bin, err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(s.done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !ready(s.hc, s.admin) {
		select {
		case <-s.done:
			s.t.Fatalf("orderflow exited during start-up (%v); log:\n%s", cmd.ProcessState, s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("orderflow not ready after 30s; log:\n%s", s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *serverProc) kill() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil && s.running() {
		s.t.Fatalf("SIGKILL: %v", err)
	}
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.t.Fatalf("orderflow still running 10s after SIGKILL")
	}
}

func (s *serverProc) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 8<<10 {
		b = b[len(b)-8<<10:]
	}
	return string(bytes.TrimSpace(b))
}

func (s *serverProc) dumpLog() { s.t.Logf("orderflow log (tail):\n%s", s.logTail()) }
