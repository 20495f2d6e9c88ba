package privatepg

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestStartSettingsStopStart starts a cluster with autovacuum off, checks
// that the setting and the database are there and the postmaster pid is a
// live process, then stops it hard, starts it again and closes it, which
// must remove its directory.
func TestStartSettingsStopStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{Settings: map[string]string{"autovacuum": "off", "shared_buffers": "16MB"}, Database: "probe"})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(s.DataDir())
	t.Cleanup(s.Close)
	if v, err := s.Setting(ctx, "autovacuum"); err != nil || v != "off" {
		t.Fatalf("autovacuum = %q, %v; want off", v, err)
	}
	pid, err := s.PID()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err != nil {
		t.Fatalf("postmaster pid %d: %v", pid, err)
	}
	ping := func() error {
		c, err := pgx.Connect(ctx, s.URL("probe"))
		if err != nil {
			return err
		}
		return c.Close(ctx)
	}
	if err := ping(); err != nil {
		t.Fatalf("connect to the created database: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := ping(); err == nil {
		t.Fatal("connected to a stopped server")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := ping(); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if v, err := s.Setting(ctx, "autovacuum"); err != nil || v != "off" {
		t.Fatalf("after restart autovacuum = %q, %v; want off", v, err)
	}
	s.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("directory %s left after Close: %v", dir, err)
	}
}
