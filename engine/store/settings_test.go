package store

import (
	"bytes"
	"context"
	"fmt"
	"github.com/jackc/pgx/v5/pgxpool"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/orderflow/orderflow/engine/metrics"
	"github.com/orderflow/orderflow/internal/pgtest"
)

// lockedBuffer is a log sink safe for the pool's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The start-up check reports what orderflow's sessions see: a setting turned
// off for the database (track_counts) and the server's autovacuum when it is
// off (as on the test machine), each logged and exposed as a metric, while
// synchronous_commit, forced on per session, is never reported even when the
// URL asks for off.
func TestCheckSettings(t *testing.T) {
	dbURL := pgtest.New(t)
	setForDatabase(t, dbURL, "track_counts = off")
	autovacuumOff := pgtest.Int64(t, dbURL, `SELECT (current_setting('autovacuum') = 'off')::int`) == 1
	t.Logf("this server's autovacuum is off: %v", autovacuumOff)

	var logs lockedBuffer
	m := metrics.New()
	s, err := New(context.Background(), Config{URL: dbURL + "&options=-c%20synchronous_commit%3Doff"}, m, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	problems, err := s.CheckSettings(context.Background())
	if err != nil {
		t.Fatalf("CheckSettings: %v", err)
	}
	got := map[string]SettingProblem{}
	for _, p := range problems {
		got[p.Name] = p
	}
	want := map[string]bool{"track_counts": true, "autovacuum": autovacuumOff}
	// fsync and full_page_writes are server-wide: whatever this machine
	// says, they are checked below only when reported.
	for _, name := range []string{"synchronous_commit", "autovacuum", "track_counts"} {
		p, reported := got[name]
		if reported != want[name] {
			t.Errorf("%s reported = %v (%+v); want %v (problems %+v)", name, reported, p, want[name], problems)
		}
	}
	for _, p := range problems {
		if p.Value != "off" || p.Why == "" {
			t.Errorf("problem %+v: want value off and a reason", p)
		}
		if !strings.Contains(logs.String(), "setting="+p.Name) {
			t.Errorf("no warning logged for %s; logs:\n%s", p.Name, logs.String())
		}
		if v := gaugeValue(t, m, p.Name, p.Value); v != 1 {
			t.Errorf("orderflow_postgres_setting_unsafe{setting=%q,value=%q} = %v; want 1", p.Name, p.Value, v)
		}
	}
	if v := gaugeValue(t, m, "synchronous_commit", "off"); v != 0 {
		t.Errorf("synchronous_commit reported off although the store forces it on")
	}
}

func gaugeValue(t *testing.T, m *metrics.Metrics, setting, value string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "orderflow_postgres_setting_unsafe" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range mt.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["setting"] == setting && labels["value"] == value {
				return mt.GetGauge().GetValue()
			}
		}
	}
	return 0
}

// The store's sessions run without JIT compilation whatever the server, the
// database or the URL say: the relay's outbox queries are estimated above
// jit_above_cost and were compiled at every run (~190 ms of CPU each, once a
// second), for queries that take a few milliseconds.
func TestSessionsRunWithoutJIT(t *testing.T) {
	dbURL := pgtest.New(t)
	setForDatabase(t, dbURL, "jit = on")
	if got := pgtest.Int64(t, dbURL, `SELECT (current_setting('jit') = 'on')::int`); got != 1 {
		t.Fatalf("a plain session of the test database has jit %d; want on (1), or this test proves nothing", got)
	}
	s, err := New(context.Background(), Config{URL: dbURL + "&options=-c%20jit%3Don"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Every connection of both pools (the writers' and the sweeper's), held
	// at once, not one reused.
	for _, p := range []*pgxpool.Pool{s.pool, s.sweep} {
		for range min(3, int(p.Config().MaxConns)) {
			c, err := p.Acquire(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Release()
			var jit string
			if err := c.QueryRow(context.Background(), `SELECT current_setting('jit')`).Scan(&jit); err != nil {
				t.Fatal(err)
			}
			if jit != "off" {
				t.Fatalf("store session %d has jit = %s; want off", c.Conn().PgConn().PID(), jit)
			}
		}
	}
}

// setForDatabase makes setting ("name = value") the default of every new
// session of dbURL's database, as an operator's ALTER DATABASE would.
func setForDatabase(t *testing.T, dbURL, setting string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	pgtest.Exec(t, pgtest.AdminURL(), fmt.Sprintf(`ALTER DATABASE %q SET %s`, strings.TrimPrefix(u.Path, "/"), setting))
}
