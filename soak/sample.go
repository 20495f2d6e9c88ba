package soak

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/loadtest"
)

// RelSize is the on-disk size of a group of relations.
type RelSize struct {
	// TotalBytes is pg_total_relation_size: heap, indexes and TOAST.
	TotalBytes int64 `json:"total_bytes"`
	// HeapBytes is pg_relation_size (main fork); IndexBytes pg_indexes_size.
	HeapBytes  int64 `json:"heap_bytes"`
	IndexBytes int64 `json:"index_bytes"`
}

// Sample is what the soak reads at one instant; counters are cumulative,
// so the cost of a window is the difference of two samples.
type Sample struct {
	// T is seconds since the soak's load started.
	T float64 `json:"t"`
	// ServerCPUSeconds is the orderflow process's user + system time;
	// PostgresCPUSeconds the postmaster's and all its children's
	// (backends, autovacuum, checkpointer, WAL writer), exited ones
	// included; BrokerCPUSeconds the broker process's.
	ServerCPUSeconds   float64 `json:"server_cpu_seconds"`
	PostgresCPUSeconds float64 `json:"postgres_cpu_seconds"`
	BrokerCPUSeconds   float64 `json:"broker_cpu_seconds"`
	// SoakCPUSeconds is this process's: the load generator, the topic
	// reader and the sampler, which share the box with what they measure.
	SoakCPUSeconds float64 `json:"soak_cpu_seconds"`
	// MachineBusySeconds and MachineSeconds are the whole box's CPU time
	// (/proc/stat, every CPU): busy, and busy plus idle.
	MachineBusySeconds float64 `json:"machine_busy_seconds"`
	MachineSeconds     float64 `json:"machine_seconds"`
	// WALBytes is pg_current_wal_lsn() as a byte position.
	WALBytes int64 `json:"wal_bytes"`
	// Orders and OrderItems are those tables; Outbox sums every relation
	// whose name starts with "outbox" (the outbox, its partitions or
	// generations, the parked events).
	Orders     RelSize `json:"orders"`
	OrderItems RelSize `json:"order_items"`
	Outbox     RelSize `json:"outbox"`
	// OutboxPeakBytes is the largest Outbox.TotalBytes seen since the
	// previous sample (it is also read every few seconds in between).
	OutboxPeakBytes int64 `json:"outbox_peak_bytes"`
	// OutboxLiveRows and OutboxDeadRows are n_live_tup and n_dead_tup of
	// the outbox relations (pg_stat_user_tables: estimates, updated as
	// backends report); OutboxVacuums counts their vacuums and autovacuums.
	OutboxLiveRows int64 `json:"outbox_live_rows"`
	OutboxDeadRows int64 `json:"outbox_dead_rows"`
	OutboxVacuums  int64 `json:"outbox_vacuums"`
	// TopicRecords and TopicRepeats are the events read from the topic so
	// far, and how many of them repeated an event already read.
	TopicRecords int64 `json:"topic_records"`
	TopicRepeats int64 `json:"topic_repeats"`
}

// sizeQuery sums sizes by group over ordinary and partitioned tables
// outside the system schemas; a partitioned parent has size 0, so each
// partition counts once.
const sizeQuery = `
SELECT g,
       coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint,
       coalesce(sum(pg_relation_size(c.oid)), 0)::bigint,
       coalesce(sum(pg_indexes_size(c.oid)), 0)::bigint
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL (SELECT CASE WHEN c.relname LIKE 'outbox%' THEN 'outbox' ELSE c.relname END AS g) grp
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  AND (c.relname IN ('orders', 'order_items') OR c.relname LIKE 'outbox%')
GROUP BY g`

const outboxRowsQuery = `
SELECT coalesce(sum(n_live_tup), 0)::bigint, coalesce(sum(n_dead_tup), 0)::bigint,
       coalesce(sum(vacuum_count + autovacuum_count), 0)::bigint
FROM pg_stat_user_tables WHERE relname LIKE 'outbox%'`

// sampler reads samples; its connection is its own.
type sampler struct {
	conn                  *pgx.Conn
	server, broker, pgPID int
	topic                 *topicCounter
	start                 time.Time
	peak                  int64 // outbox peak since the last sample
}

func (s *sampler) outboxSize(ctx context.Context) (int64, error) {
	var n int64
	err := s.conn.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND c.relname LIKE 'outbox%'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'`).Scan(&n)
	return n, err
}

// peekOutbox records the outbox size for the peak between samples.
func (s *sampler) peekOutbox(ctx context.Context) error {
	n, err := s.outboxSize(ctx)
	if err != nil {
		return fmt.Errorf("outbox size: %w", err)
	}
	s.peak = max(s.peak, n)
	return nil
}

// sample reads everything once and resets the outbox peak.
func (s *sampler) sample(ctx context.Context) (Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	x := Sample{T: time.Since(s.start).Seconds()}
	srv, err := loadtest.ReadProcStat(s.server)
	if err != nil {
		return x, fmt.Errorf("server cpu: %w", err)
	}
	x.ServerCPUSeconds = srv.CPU.Seconds()
	if b, err := loadtest.ReadProcStat(s.broker); err == nil {
		x.BrokerCPUSeconds = b.CPU.Seconds()
	}
	pg, err := loadtest.ProcessTreeCPU(s.pgPID)
	if err != nil {
		return x, fmt.Errorf("postgres cpu: %w", err)
	}
	x.PostgresCPUSeconds = pg.Seconds()
	x.SoakCPUSeconds = loadtest.ProcessCPU().Seconds()
	if m, err := loadtest.ReadMachineCPU(); err == nil {
		x.MachineBusySeconds, x.MachineSeconds = m.Busy.Seconds(), m.Total.Seconds()
	}
	if err := s.conn.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint`).Scan(&x.WALBytes); err != nil {
		return x, fmt.Errorf("wal position: %w", err)
	}
	rows, _ := s.conn.Query(ctx, sizeQuery)
	var g string
	var sz RelSize
	if _, err := pgx.ForEachRow(rows, []any{&g, &sz.TotalBytes, &sz.HeapBytes, &sz.IndexBytes}, func() error {
		switch g {
		case "orders":
			x.Orders = sz
		case "order_items":
			x.OrderItems = sz
		case "outbox":
			x.Outbox = sz
		}
		return nil
	}); err != nil {
		return x, fmt.Errorf("table sizes: %w", err)
	}
	if err := s.conn.QueryRow(ctx, outboxRowsQuery).Scan(&x.OutboxLiveRows, &x.OutboxDeadRows, &x.OutboxVacuums); err != nil {
		return x, fmt.Errorf("outbox rows: %w", err)
	}
	x.OutboxPeakBytes = max(s.peak, x.Outbox.TotalBytes)
	s.peak = 0
	c := s.topic.counts()
	x.TopicRecords, x.TopicRepeats = c.Records, c.Repeats
	return x, nil
}
