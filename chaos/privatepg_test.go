package chaos

import (
	"context"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/privatepg"
)

// privatePG is a throwaway PostgreSQL cluster of the test's own
// (internal/privatepg), which the test may stop and start at will: the
// shared server at 127.0.0.1:5432 is never touched. Trust auth on loopback,
// superuser role root, one database "orderflow" (migrated and seeded by the
// caller).
type privatePG struct {
	t        *testing.T
	srv      *privatepg.Server
	URL      string // the orderflow database
	AdminURL string // the postgres database
}

// startPrivatePG starts a private cluster with a small footprint and
// creates the orderflow database. A machine without the binaries fails the
// test; it never skips.
func startPrivatePG(t *testing.T) *privatePG {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := privatepg.Start(ctx, privatepg.Options{
		Settings:  map[string]string{"max_connections": "60", "shared_buffers": "32MB"},
		Database:  "orderflow",
		DirPrefix: "orderflow-chaos-pg-",
	})
	if err != nil {
		t.Fatalf("private PostgreSQL: %v", err)
	}
	t.Cleanup(srv.Close)
	return &privatePG{t: t, srv: srv, URL: srv.URL("orderflow"), AdminURL: srv.AdminURL()}
}

// Start starts the server and waits until it accepts connections.
func (p *privatePG) Start() {
	p.t.Helper()
	if err := p.srv.Start(); err != nil {
		p.t.Fatal(err)
	}
}

// Stop stops the server the hard way (-m immediate: every backend is
// killed, crash recovery at the next start), as a crash or failover would.
func (p *privatePG) Stop() {
	p.t.Helper()
	if err := p.srv.Stop(); err != nil {
		p.t.Fatal(err)
	}
}

// Terminate ends every session of the orderflow database except its own
// (pg_terminate_backend), and returns how many it ended.
func (p *privatePG) Terminate() int64 {
	p.t.Helper()
	n, err := p.srv.Terminate(context.Background(), "orderflow")
	if err != nil {
		p.t.Fatal(err)
	}
	return n
}
