package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/enginetest"
	"github.com/orderflow/orderflow/internal/pgtest"
)

func TestOutboxSubcommandArgs(t *testing.T) {
	sub, own, flags, err := splitOutboxArgs([]string{"requeue", "ord_1/2", "--all", "-database.url", "x"})
	if err != nil || sub != "requeue" || strings.Join(own, " ") != "ord_1/2 --all" || strings.Join(flags, " ") != "-database.url x" {
		t.Errorf("split = %q %q %q %v", sub, own, flags, err)
	}
	for _, bad := range [][]string{nil, {"--all", "ord_1/2"}, {"ord_1"}, {"ord_1/0"}, {"/3"}, {"ord_1/x"}} {
		if _, _, err := parseRequeue(bad); err == nil {
			t.Errorf("parseRequeue(%q): no error", bad)
		}
	}
	if _, refs, err := parseRequeue([]string{"ord/a/3"}); err != nil || refs[0].OrderID != "ord/a" || refs[0].Version != 3 {
		t.Errorf("parseRequeue(ord/a/3) = %v, %v", refs, err)
	}
}

// `orderflow outbox dead` lists parked events; `orderflow outbox requeue
// ID/VERSION` puts that version (and later parked ones) back into the
// outbox. Requeueing an earlier version afterwards takes the later one,
// still unpublished, along behind it, so the outbox holds them in version
// order.
func TestOutboxDeadAndRequeue(t *testing.T) {
	url := enginetest.NewDatabase(t)
	pgtest.Exec(t, url, `INSERT INTO outbox_dead (order_id, version, seq, ce_type, ce_time, payload, enqueued_at, error, attempts)
SELECT 'ord_p', v, 100 + v, 'order.status_changed', now(), '{}', now(), 'MESSAGE_TOO_LARGE', 2 FROM generate_series(2, 3) v`)
	cfg := engine.DefaultConfig()
	cfg.DatabaseURL = url
	cfg.Logger = enginetest.Logger()
	ctx := context.Background()
	var out bytes.Buffer
	if err := outboxCommand(ctx, cfg, "dead", nil, &out); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "ord_p/2") || !strings.Contains(s, "ord_p/3") || !strings.Contains(s, "MESSAGE_TOO_LARGE") {
		t.Errorf("outbox dead printed:\n%s", s)
	}
	out.Reset()
	if err := outboxCommand(ctx, cfg, "requeue", []string{"ord_p/3"}, &out); err != nil || out.String() != "requeued 1 events\n" {
		t.Fatalf("requeue ord_p/3: %q, %v", out.String(), err)
	}
	out.Reset()
	if err := outboxCommand(ctx, cfg, "requeue", []string{"--all"}, &out); err != nil || out.String() != "requeued 2 events\n" {
		t.Fatalf("requeue --all: %q, %v", out.String(), err)
	}
	if n := pgtest.Int64(t, url, `SELECT count(*) FROM outbox_dead`); n != 0 {
		t.Errorf("outbox_dead keeps %d rows after requeue --all", n)
	}
	if n := pgtest.Int64(t, url, `SELECT count(*) FROM outbox WHERE order_id = 'ord_p'`); n != 2 {
		t.Errorf("outbox holds %d events of ord_p; want 2", n)
	}
	if n := pgtest.Int64(t, url, `SELECT count(*) FROM outbox_events a JOIN outbox_events b USING (order_id)
WHERE order_id = 'ord_p' AND a.version = 2 AND b.version = 3 AND a.seq < b.seq AND a.seq >= (SELECT low_seq FROM outbox_ring)`); n != 1 {
		t.Errorf("ord_p's versions 2 and 3 are not in the outbox in version order")
	}
}
