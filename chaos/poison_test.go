package chaos

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/engine/store"
	"github.com/orderflow/orderflow/internal/enginetest"
)

// TestKafkaPoisonParked loads an engine (orders and status changes) while
// the topic's max.message.bytes is below a few large orders' events (the
// broker refuses them for good with MESSAGE_TOO_LARGE; batches of good
// records over the limit are refused too). The load must reconcile with 0
// lost, duplicated, unpublished or out of order; the large orders' versions
// are parked, none published; once the limit is raised, a requeue publishes
// each one's versions exactly once, in order.
func TestKafkaPoisonParked(t *testing.T) {
	in := enginetest.Start(t, enginetest.WithConfig(func(c *engine.Config) {
		c.Publish.Compression = "none" // the broker measures the records themselves
		c.Publish.SweepGrace = 2 * time.Second
		c.Publish.SweepInterval = 100 * time.Millisecond
	}))
	dbURL, brokers, base, admin := in.DatabaseURL, in.Brokers, in.URL, in.AdminURL
	enginetest.SetTopicConfig(t, brokers, "max.message.bytes", "3000")

	ld := newLoader(func() string { return base }, "kp_", 4, 0.3)
	ld.start()
	hc := newHTTPClient(2)
	items := make([]string, 100)
	for i := range items {
		items[i] = fmt.Sprintf(`{"sku":"milk-1l","qty":%d}`, i+1)
	}
	const big = 5
	for i := range big {
		id := fmt.Sprintf("kq_%d", i)
		body := fmt.Appendf(nil, `{"id":%q,"user_id":"u_chaos","currency":"EUR","created_at":"2026-11-25T10:00:00Z","items":[%s]}`, id, strings.Join(items, ","))
		if a := send(hc, http.MethodPost, base+"/v1/orders", body); !a.ok() {
			t.Fatalf("POST %s: %s", id, a)
		}
		for _, st := range []string{"paid", "assembling"} {
			if a := postStatus(hc, base, id, st); !a.ok() {
				t.Fatalf("status %s %s: %s", id, st, a)
			}
		}
		time.Sleep(pick(300*time.Millisecond, 3*time.Second))
	}
	time.Sleep(pick(2*time.Second, 15*time.Second))
	ld.stop()
	retried := ld.resolve(t, 3*time.Minute)
	waitFor(t, 60*time.Second, "the large orders parked and the outbox empty", func() bool {
		n, ok := outboxCount(dbURL)
		return ok && n == 0 && parkedCount(dbURL) == 3*big
	})
	dl, _ := series(&http.Client{Timeout: 5 * time.Second}, admin, "orderflow_outbox_dead_lettered_total")
	res := reconcile(t, dbURL, brokers, "kp_", ld.ackedCopy(), 60*time.Second, true)
	ld.checkNoBad(t)
	if res.Lost != 0 || res.VersionLost != 0 || res.Duplicated != 0 || res.Unpublished != 0 || res.Outbox != 0 || res.OutOfOrder != 0 {
		t.Errorf("reconciliation of the other orders failed: %s; examples: %q", res, res.examples)
	}

	enginetest.SetTopicConfig(t, brokers, "max.message.bytes", "1048576")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := store.New(ctx, store.Config{URL: dbURL}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n, err := st.RequeueDead(ctx, true, nil)
	if err != nil || n != 3*big {
		t.Fatalf("requeue --all: %d, %v; want %d", n, err, 3*big)
	}
	want := map[string]struct{}{}
	for i := range big {
		for v := 1; v <= 3; v++ {
			want[fmt.Sprintf("kq_%d/%d", i, v)] = struct{}{}
		}
	}
	seen := readTopic(t, brokers, "kq_", want, 60*time.Second)
	bad := 0
	for i := range big {
		id := fmt.Sprintf("kq_%d", i)
		if !slices.Equal(seen[id], []int32{1, 2, 3}) {
			bad++
			t.Errorf("%s on the topic as versions %v; want [1 2 3] exactly once, after the requeue", id, seen[id])
		}
	}
	appendResult(t, "TestKafkaPoisonParked", fmt.Sprintf("requests %d (%s), retried %d; %s; %d large orders: %d events parked (%v refused), after requeue %d of %d published once in order",
		ld.requests.Load(), ld.codesString(), retried, res, big, 3*big, dl, big-bad, big))
}

// parkedCount counts the rows of outbox_dead (-1 on error).
func parkedCount(dbURL string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return -1
	}
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM outbox_dead`).Scan(&n); err != nil {
		return -1
	}
	return n
}
