package engine_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/engine/store"
	"github.com/orderflow/orderflow/internal/enginetest"
)

// An event the broker refuses for good (larger than the topic's
// max.message.bytes) is parked in outbox_dead with its order's later
// versions, while every other order is published exactly once (records
// refused in the same batch as it, or in batches over the limit, are
// retried alone and go through); after the limit is raised, a requeue
// publishes the parked order's versions in order.
func TestPoisonEventParked(t *testing.T) {
	// Uncompressed, so that the broker measures the records' own size.
	env := newEnv(t, func(c *engine.Config) { c.Publish.Compression = "none" })
	enginetest.SetTopicConfig(t, env.Brokers, "max.message.bytes", "2500")
	items := make([]string, 100)
	for i := range items {
		items[i] = fmt.Sprintf(`{"sku":"milk-1l","qty":%d}`, i+1)
	}
	const big = "ord_dl_big"
	if r := env.post(orderJSON(big, items...)); r.code != http.StatusCreated {
		t.Fatalf("POST %s: %s", big, r)
	}
	const orders = 40
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < orders; i += 4 {
				id := fmt.Sprintf("ord_dl%03d", i)
				if r := env.post(orderJSON(id)); r.code != http.StatusCreated {
					t.Errorf("POST %s: %s", id, r)
					return
				}
				if r := env.setStatus(id, "paid"); r.code != http.StatusOK {
					t.Errorf("status %s: %s", id, r)
				}
				if i == 7 {
					for _, st := range []string{"paid", "assembling"} {
						if r := env.setStatus(big, st); r.code != http.StatusOK {
							t.Errorf("status %s: %s", big, r)
						}
					}
				}
			}
		})
	}
	wg.Wait()
	waitFor(t, 60*time.Second, "big order's 3 events parked, the rest published", func() bool {
		return env.count(`SELECT count(*) FROM outbox_dead WHERE order_id = $1`, big) == 3 &&
			env.count(`SELECT count(*) FROM outbox`) == 0
	})
	if n := env.count(`SELECT count(*) FROM outbox_dead WHERE order_id = $1 AND version = 1 AND attempts >= 2 AND error LIKE '%MESSAGE_TOO_LARGE%'`, big); n != 1 {
		t.Errorf("parked version 1 with its error and attempts: %d rows; want 1", n)
	}
	if n := env.count(`SELECT count(*) FROM outbox_dead WHERE order_id <> $1`, big); n != 0 {
		t.Errorf("%d events of other orders parked; want 0", n)
	}
	recs := env.ConsumeAll(t, "ord_dl", time.Minute) // the outbox is empty: all there is
	seen := map[string]int{}
	for _, r := range recs {
		if string(r.Key) == big {
			t.Errorf("%s published while parked", enginetest.Header(r, "ce_id"))
		}
		seen[enginetest.Header(r, "ce_id")]++
	}
	if len(seen) != 2*orders {
		t.Errorf("topic holds %d distinct events of the other orders; want %d", len(seen), 2*orders)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s on the topic %d times; want once", id, n)
		}
	}
	waitFor(t, 10*time.Second, "dead gauges on /metrics", func() bool {
		m := string(do(t, http.MethodGet, env.AdminURL+"/metrics", "", nil).body)
		return strings.Contains(m, "orderflow_outbox_dead 3\n") && strings.Contains(m, "orderflow_outbox_dead_lettered_total 1\n")
	})

	enginetest.SetTopicConfig(t, env.Brokers, "max.message.bytes", "1048576")
	st := openStore(t, env.DatabaseURL)
	dead, err := st.DeadEvents(context.Background())
	if err != nil || len(dead) != 3 {
		t.Fatalf("DeadEvents = %d events, %v; want 3", len(dead), err)
	}
	n, err := st.RequeueDead(context.Background(), false, []store.DeadRef{{OrderID: big, Version: 1}})
	if err != nil || n != 3 {
		t.Fatalf("RequeueDead = %d, %v; want 3", n, err)
	}
	got := env.Consume(t, big, 3, 30*time.Second)
	var versions []string
	for _, r := range got {
		versions = append(versions, enginetest.Header(r, "ce_id"))
	}
	if want := []string{big + "/1", big + "/2", big + "/3"}; strings.Join(versions, " ") != strings.Join(want, " ") {
		t.Errorf("after requeue the topic holds %v; want %v", versions, want)
	}
	waitFor(t, 10*time.Second, "outbox and outbox_dead empty", func() bool {
		return env.count(`SELECT count(*) FROM outbox_dead`) == 0 && env.count(`SELECT count(*) FROM outbox`) == 0
	})
}

// openStore opens a store on url for the operator's calls a test makes.
func openStore(t *testing.T, url string) *store.Store {
	t.Helper()
	st, err := store.New(context.Background(), store.Config{URL: url}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}
