package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderflow/orderflow/engine/metrics"
)

// Store is orderflow's PostgreSQL access: the group commit of new orders
// (WriteOrders), reads (GetOrder, LoadProducts) and the outbox (AckEvents,
// SweepEvents, OutboxStats, ReclaimOutbox). All methods are safe for concurrent use; each
// call holds at most one pooled connection.
type Store struct {
	pool *pgxpool.Pool
	// sweep is the outbox sweeper's own connections, for SweepEvents and
	// ReclaimOutbox: one in use, the second only so that a call made while
	// another runs in this process finds the advisory lock taken and
	// returns at once, as across instances, instead of queueing. A sweep holds its connection while the
	// broker acknowledges its page (up to -kafka.delivery-timeout when
	// Kafka is slow), and a truncation while it waits for its locks; on the
	// shared pool that left the group commits and the acker one connection
	// short for as long as a backlog drained (BenchmarkBacklogDrain: the
	// order writers spent a fifth of their time waiting to acquire one).
	// Sweeps are serialised by an advisory lock anyway, so a pool of their
	// own costs them nothing.
	sweep *pgxpool.Pool
	cfg   Config
	log   *slog.Logger

	// Metric children for op="orders" and op="status", resolved once.
	orders, status opMetrics
	settingBad     *prometheus.GaugeVec // see CheckSettings
}

// opMetrics are one operation's store metrics.
type opMetrics struct {
	commitSeconds prometheus.Observer
	errRetryable  prometheus.Counter
	errData       prometheus.Counter
	errOther      prometheus.Counter
	retries       prometheus.Counter
	bisections    prometheus.Counter
}

func newOpMetrics(m *metrics.Metrics, op string) opMetrics {
	return opMetrics{
		commitSeconds: m.CommitSeconds.WithLabelValues(op),
		errRetryable:  m.CommitErrors.WithLabelValues(op, "retryable"),
		errData:       m.CommitErrors.WithLabelValues(op, "data"),
		errOther:      m.CommitErrors.WithLabelValues(op, "other"),
		retries:       m.DBRetries.WithLabelValues(op),
		bisections:    m.DBBisections.WithLabelValues(op),
	}
}

// stageTable is the per-connection temporary table WriteOrders copies a
// batch's orders into before INSERT … ON CONFLICT moves the new ones into
// orders. It is created once per connection (AfterConnect), never per batch:
// CREATE/DROP per batch bloats the system catalogs. ON COMMIT DELETE ROWS
// empties it at the end of every transaction that touched it.
const stageTableDDL = `CREATE TEMP TABLE IF NOT EXISTS orderflow_stage (
    seq int4 NOT NULL,
    id text,
    user_id text,
    currency text,
    total_cents int8,
    created_at timestamptz,
    received_at timestamptz,
    idempotency_key text,
    content_hash int8
) ON COMMIT DELETE ROWS`

// New builds the connection pool described by cfg. It does not connect
// (connections are opened on first use) and does not migrate: call Migrate.
// m receives the store metrics (op "orders"); nil means a private, unexported
// set. log nil means discard. Follow with Close.
func New(ctx context.Context, cfg Config, m *metrics.Metrics, log *slog.Logger) (*Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pcfg, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("-%s: %w", FlagDatabaseURL, err)
	}
	pcfg.MaxConns = cfg.MaxConns
	// Acknowledged orders must survive a crash: never inherit
	// synchronous_commit=off from the role, the database or the URL. A
	// startup parameter overrides role and database settings.
	pcfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	// No JIT compilation: PostgreSQL compiles a query whose estimated cost
	// passes jit_above_cost (100,000 by default), and the relay's outbox
	// queries (over eight partitions, unnest of acknowledgement arrays:
	// estimates in the hundreds of thousands) passed it at every run, once
	// a second: ~190 ms of LLVM code generation each time for a query that
	// then ran in a few ms, about a tenth of this 2-core box's CPU under
	// load (soak, 4,000 orders/s). Every query here is short; none gains.
	pcfg.ConnConfig.RuntimeParams["jit"] = "off"
	pcfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		if _, err := c.Exec(ctx, stageTableDDL); err != nil {
			return fmt.Errorf("create staging table: %w", err)
		}
		return nil
	}
	// pgxpool pings a connection on acquire only after 1s idle, so after a
	// PostgreSQL restart every idle connection fails once. A retry asks for a
	// ping (pingOnAcquire) so it never lands on another dead connection.
	pcfg.ShouldPing = func(ctx context.Context, p pgxpool.ShouldPingParams) bool {
		return p.IdleDuration > time.Second || ctx.Value(pingOnAcquire{}) != nil
	}
	scfg := pcfg.Copy()
	scfg.MaxConns, scfg.MinConns = 2, 0
	scfg.AfterConnect = nil // the sweeper writes no orders: no staging table
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	sweep, err := pgxpool.NewWithConfig(ctx, scfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("create sweeper pool: %w", err)
	}
	if m == nil {
		m = metrics.New()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{
		pool:       pool,
		sweep:      sweep,
		cfg:        cfg,
		log:        log,
		orders:     newOpMetrics(m, "orders"),
		status:     newOpMetrics(m, "status"),
		settingBad: m.PostgresSettingBad,
	}, nil
}

// Close closes every connection, waiting for the ones in use to be released.
// Call it after the last WriteOrders has returned.
func (s *Store) Close() {
	s.sweep.Close()
	s.pool.Close()
}

// Ping reports whether PostgreSQL answers (for /readyz). It blocks until ctx
// ends at the latest.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationLockID is the pg_advisory_lock key Migrate holds, so that several
// instances starting at once apply each migration exactly once ("orderflo").
const migrationLockID int64 = 0x6f72646572666c6f

type migration struct {
	version int
	name    string
	sql     string
}

// migrations lists the embedded files migrations/NNNN_name.sql in version order.
func migrations() ([]migration, error) {
	ents, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range ents {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", e.Name())
		}
		b, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", ms[i-1].name, ms[i].name, ms[i].version)
		}
	}
	return ms, nil
}

// Migrate applies the embedded migrations that schema_migrations does not
// list yet, each in its own transaction, while holding a session advisory
// lock: concurrent callers (several instances starting together) wait for
// each other and the schema is created once. It blocks until ctx ends at the
// latest. Call it once before serving.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("read migrations: %w", err)
	}
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: acquire connection: %w", err)
	}
	defer c.Release()
	if _, err := c.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLockID); err != nil {
		return fmt.Errorf("migrate: take advisory lock: %w", err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := c.Exec(uctx, "SELECT pg_advisory_unlock($1)", migrationLockID); err != nil {
			// A session lock must not go back to the pool with the connection.
			_ = c.Conn().Close(uctx)
		}
	}()
	if _, err := c.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
    version int PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	applied := map[int]bool{}
	rows, err := c.Query(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	var v int
	_, err = pgx.ForEachRow(rows, []any{&v}, func() error { applied[v] = true; return nil })
	if err != nil {
		return fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, now())", m.version)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s: %w", m.name, err)
		}
		s.log.Info("applied migration", "version", m.version, "name", m.name)
	}
	return nil
}

// pingOnAcquire is a context key: an acquire under a ctx carrying it pings
// the connection first and replaces it if it is dead.
type pingOnAcquire struct{}

// errBug marks a broken invariant of the store itself.
var errBug = errors.New("BUG")
