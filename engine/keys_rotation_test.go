package engine_test

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/engine/ingest"
	"github.com/orderflow/orderflow/internal/enginetest"
)

// keyResult is one request of the rotation test: which key, when it was
// sent and answered, and the status.
type keyResult struct {
	worker      int
	key         string
	sent, ended time.Time
	code        int
}

// API keys rotate under load: once SetAPIKeys returns, the removed key gets
// 401 on every request sent after it and the added key works; a key kept
// across the rotation never sees a 401; requests admitted before the
// rotation (waiting for their commit during it) still get 201.
func TestAPIKeyRotationUnderLoad(t *testing.T) {
	const (
		removed = "removed-key-0123456789abcdef"
		kept    = "kept-key-0123456789abcdef"
		added   = "added-key-0123456789abcdef"
	)
	in := enginetest.Start(t,
		enginetest.WithTimers(enginetest.Timers{Linger: 50 * time.Millisecond, SweepInterval: 100 * time.Millisecond,
			SweepGrace: 2 * time.Second, DeliveryTimeout: time.Second, MetadataMinAge: 100 * time.Millisecond}),
		enginetest.WithConfig(func(c *engine.Config) {
			c.Ingest.APIKeys = []ingest.APIKey{{Name: "removed", Key: removed}, {Name: "kept", Key: kept}}
			// The commits are held (below) across the rotation: nothing may
			// give up on them meanwhile.
			c.Store.TxTimeout = 2 * time.Minute
			c.Pipeline.WriteTimeout = 3 * time.Minute
			c.Ingest.AckTimeout = 3 * time.Minute
		}))

	var (
		mu      sync.Mutex
		results []keyResult
		stop    atomic.Bool
		seq     atomic.Int64
		wg      sync.WaitGroup
	)
	load := func(worker int, key string) {
		for !stop.Load() {
			id := fmt.Sprintf("ord_rot%06d", seq.Add(1))
			sent := time.Now()
			r, err := tryDo(http.MethodPost, in.URL+"/v1/orders", "application/json", []byte(orderJSON(id)), "Authorization", "Bearer "+key)
			if err != nil {
				t.Errorf("POST %s: %v", id, err)
				return
			}
			mu.Lock()
			results = append(results, keyResult{worker: worker, key: key, sent: sent, ended: time.Now(), code: r.code})
			mu.Unlock()
		}
	}
	// The added key's worker starts at the rotation: before it, it would
	// only spin on 401s.
	keys := []string{removed, removed, kept, kept, kept, added}
	before := len(keys) - 1
	for i, k := range keys[:before] {
		wg.Go(func() { load(i, k) })
	}
	defer func() { stop.Store(true); wg.Wait() }()
	// everyWorker reports whether each of the first n workers has a result
	// for which ok holds. Conditions, not sleeps, frame the rotation: on a
	// busy machine a second could hold no request of some worker.
	everyWorker := func(n int, ok func(keyResult) bool) bool {
		mu.Lock()
		defer mu.Unlock()
		seen := make([]bool, len(keys))
		left := n
		for _, r := range results {
			if r.worker < n && !seen[r.worker] && ok(r) {
				seen[r.worker] = true
				left--
			}
		}
		return left == 0
	}
	waitFor(t, time.Minute, "every worker answered once before the rotation", func() bool {
		return everyWorker(before, func(keyResult) bool { return true })
	})
	// Hold the commits until every worker has a request admitted and
	// waiting for its commit, rotate, then let them go: the removed key's
	// requests in flight are admitted before the rotation and answered
	// after it, on events rather than on where a sleep happens to fall.
	release := lockOrders(t, in.DatabaseURL)
	hc := &http.Client{Timeout: 10 * time.Second}
	waitFor(t, time.Minute, "every worker's request admitted and held", func() bool {
		n, _ := metricValue(hc, in.AdminURL, "orderflow_inflight_requests")
		return n == float64(before)
	})
	if err := in.Engine.SetAPIKeys([]ingest.APIKey{{Name: "kept", Key: kept}, {Name: "added", Key: added}}); err != nil {
		t.Fatalf("SetAPIKeys: %v", err)
	}
	rotated := time.Now()
	wg.Go(func() { load(before, added) })
	release()
	// Once every worker has sent a request after the rotation, each one
	// that was in flight at the rotation has been answered.
	waitFor(t, time.Minute, "every worker answered a request sent after the rotation", func() bool {
		return everyWorker(len(keys), func(r keyResult) bool { return r.sent.After(rotated) })
	})
	stop.Store(true)
	wg.Wait()

	var removedAfter, addedAfter, inFlight int
	for _, r := range results {
		switch after := r.sent.After(rotated); {
		case r.key == kept && r.code != http.StatusCreated:
			t.Errorf("kept key: %d (sent %v after the rotation: %t); want 201 throughout", r.code, r.sent.Sub(rotated), after)
		case r.key == removed && after:
			removedAfter++
			if r.code != http.StatusUnauthorized {
				t.Errorf("removed key sent %v after the rotation: %d; want 401", r.sent.Sub(rotated), r.code)
			}
		case r.key == added && after:
			addedAfter++
			if r.code != http.StatusCreated {
				t.Errorf("added key sent %v after the rotation: %d; want 201", r.sent.Sub(rotated), r.code)
			}
		case r.key == removed && r.ended.After(rotated) && r.code == http.StatusCreated:
			inFlight++ // admitted before, answered after the rotation
		}
	}
	if removedAfter == 0 || addedAfter == 0 {
		t.Fatalf("after the rotation: %d requests with the removed key, %d with the added one; want some of each", removedAfter, addedAfter)
	}
	if inFlight != 2 {
		t.Errorf("%d requests with the removed key were admitted before the rotation and answered 201 after it; want 2, one per worker (%d results)", inFlight, len(results))
	}

	// A reload that would turn authentication off, or holds a bad key, is
	// refused and changes nothing.
	if err := in.Engine.SetAPIKeys(nil); err == nil {
		t.Errorf("SetAPIKeys(nil) accepted; want authentication to stay on")
	}
	if err := in.Engine.SetAPIKeys([]ingest.APIKey{{Name: "short", Key: "short"}}); err == nil {
		t.Errorf("SetAPIKeys with a too short key: accepted; want an error")
	}
	if r := do(t, http.MethodGet, in.URL+"/v1/orders/ord_rot000001", "", nil, "Authorization", "Bearer "+added); r.code == http.StatusUnauthorized {
		t.Errorf("after refused reloads the added key gets 401")
	}
}
