package engine_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/enginetest"
	"github.com/orderflow/orderflow/internal/pgtest"
)

// With nothing failing, every committed event reaches the topic exactly
// once: the sweeper never republishes an event whose acknowledgement is
// recorded, however long its row stays, while generations of 32 events
// rotate through the outbox ring and are truncated.
func TestNoRepublishWithoutFaults(t *testing.T) {
	env := newEnv(t, nil)
	pgtest.Exec(t, env.DatabaseURL, `UPDATE outbox_ring SET gen_rows = 32`)
	const orders = 120
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < orders; i += 4 {
				id := fmt.Sprintf("ord_nr%03d", i)
				if r := env.post(orderJSON(id)); r.code != http.StatusCreated {
					t.Errorf("POST %s: %s", id, r)
					return
				}
				if i%2 == 0 {
					if r := env.setStatus(id, "paid"); r.code != http.StatusOK {
						t.Errorf("status %s: %s", id, r)
					}
				}
			}
		})
	}
	wg.Wait()
	events := env.count(`SELECT coalesce(sum(version), 0)::int8 FROM orders WHERE id LIKE 'ord_nr%'`)
	if events != orders+orders/2 {
		t.Fatalf("committed events = %d; want %d", events, orders+orders/2)
	}
	waitFor(t, 20*time.Second, "outbox empty", func() bool { return env.count(`SELECT count(*) FROM outbox`) == 0 })
	// Past the sweep grace (2s) and many sweeps: a sweeper that republished
	// acknowledged events would have done so by now.
	time.Sleep(4 * time.Second)
	recs := env.ConsumeAll(t, "ord_nr", time.Minute)
	seen := map[string]int{}
	for _, r := range recs {
		seen[enginetest.Header(r, "ce_id")]++
	}
	if len(recs) != int(events) || len(seen) != int(events) {
		t.Errorf("topic holds %d records, %d distinct; want exactly the %d committed events", len(recs), len(seen), events)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s on the topic %d times", id, n)
		}
	}
	m := string(do(t, http.MethodGet, env.AdminURL+"/metrics", "", nil).body)
	if !strings.Contains(m, "orderflow_outbox_oldest_age_seconds 0\n") || !strings.Contains(m, "orderflow_outbox_backlog 0\n") {
		t.Errorf("/metrics: want orderflow_outbox_oldest_age_seconds 0 and orderflow_outbox_backlog 0 once drained")
	}
	if strings.Contains(m, "orderflow_outbox_slots_truncated_total 0\n") {
		t.Errorf("/metrics: no outbox slot truncated over %d events in generations of 32", events)
	}
	if rows := env.count(`SELECT count(*) FROM outbox_events`); rows >= events {
		t.Errorf("outbox_events keeps %d rows of %d events; want the published slots truncated", rows, events)
	}
	if env.count(`SELECT (current_setting('autovacuum') = 'off')::int::int8`) == 1 &&
		!strings.Contains(m, `orderflow_postgres_setting_unsafe{setting="autovacuum",value="off"} 1`) {
		t.Errorf("/metrics: autovacuum is off but orderflow_postgres_setting_unsafe does not say so")
	}
}
