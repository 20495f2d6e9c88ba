package chaos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/enginetest"
	"github.com/orderflow/orderflow/internal/pgtest"
)

// pgFault makes an engine's transactions give up quickly, so that a
// database that is away turns into 503s within a second or two.
func pgFault(cfg *engine.Config) {
	cfg.Store.TxTimeout = 2 * time.Second
	cfg.Store.MaxRetries = 3
	cfg.Store.RetryBackoff = 20 * time.Millisecond
	cfg.Pipeline.WriteTimeout = 6 * time.Second
	cfg.StatusPipeline.WriteTimeout = 6 * time.Second
	cfg.Ingest.AckTimeout = 10 * time.Second
}

// TestPostgresFaultsUnderLoad runs an engine on a private PostgreSQL under
// load (orders and status changes) and, in turn: terminates every backend
// of its database mid-batch several times, then stops PostgreSQL with -m
// immediate (a crash: backends killed mid-transaction, some at COMMIT) and
// starts it again, several times. It checks that while PostgreSQL is away a
// new order gets 503 with Retry-After fast and /readyz says 503; that
// /readyz comes back and the pool commits again after the restart; that
// connection losses before COMMIT were retried by the server (with backoff);
// that no valid request was ever answered 4xx (an unknown outcome is a 503);
// and, after every unknown outcome was retried with the same id/key to a
// 2xx, that reconciliation finds 0 acknowledged orders or versions lost, 0
// duplicated, every committed version on the topic.
//
// To see it fail: force synchronous_commit=off in store.New (the immediate
// stops then may lose acknowledged orders), or answer OutcomeFailed with a
// 4xx in ingest ("valid requests were refused with a 4xx"). Not run as a
// mutation yet; TestAmbiguousCommitStatusBatch is the failure this suite
// found for item 2.
func TestPostgresFaultsUnderLoad(t *testing.T) {
	pg := startPrivatePG(t)
	in := enginetest.Start(t, enginetest.WithDatabase(pg.URL), enginetest.WithCatalog(engine.DemoProducts), enginetest.WithConfig(pgFault))
	cluster, base, admin := in.Broker, in.URL, in.AdminURL
	hc := newHTTPClient(4)
	hc.Timeout = 20 * time.Second

	ld := newLoader(func() string { return base }, "pg_", 6, 0.35)
	ld.start()
	stopped := false
	defer func() {
		if !stopped {
			ld.stop()
		}
	}()
	waitFor(t, 20*time.Second, "first acknowledgements", func() bool { return ld.acks.Load() >= 50 })

	// Phase 1: sessions terminated mid-batch. The writers lose their
	// connection before COMMIT (retry is safe: nothing committed) or at it
	// (outcome unknown: 503, the client retries).
	retriesBefore, _ := series(hc, admin, `orderflow_store_retries_total{op="orders"}`)
	terminations := pick(6, 20)
	var terminated int64
	for range terminations {
		time.Sleep(300 * time.Millisecond)
		from := ld.acks.Load()
		waitFor(t, 20*time.Second, "acknowledgements between terminations", func() bool { return ld.acks.Load() > from })
		terminated += pg.Terminate()
	}
	retriesAfter, _ := series(hc, admin, `orderflow_store_retries_total{op="orders"}`)

	// Phase 2: PostgreSQL stopped and started under load.
	cycles := pick(2, 6)
	var probes []string
	var slowProbe, slowRecovery time.Duration
	for c := range cycles {
		time.Sleep(time.Second)
		pg.Stop()
		start := time.Now()
		id := fmt.Sprintf("pg_probe_%d", c)
		probes = append(probes, id)
		a := postOrder(hc, base, id, false)
		if a.code != http.StatusServiceUnavailable || a.hdr.Get("Retry-After") == "" {
			t.Errorf("cycle %d: POST with PostgreSQL stopped: got %s; want 503 with Retry-After", c, a)
		}
		slowProbe = max(slowProbe, a.took)
		if a.took > 5*time.Second {
			t.Errorf("cycle %d: 503 took %v with PostgreSQL stopped; want it fast", c, a.took)
		}
		waitFor(t, 10*time.Second, "/readyz 503 with PostgreSQL stopped", func() bool {
			r := send(hc, http.MethodGet, admin+"/readyz", nil)
			return r.code == http.StatusServiceUnavailable
		})
		if r := send(hc, http.MethodGet, admin+"/healthz", nil); r.code != http.StatusOK {
			t.Errorf("cycle %d: /healthz with PostgreSQL stopped: %s; want 200 (the process is alive)", c, r)
		}
		time.Sleep(max(0, pick(time.Second, 2*time.Second)-time.Since(start)))
		pg.Start()
		up := time.Now()
		waitFor(t, 30*time.Second, "/readyz 200 after PostgreSQL restarted", func() bool { return ready(hc, admin) })
		from := ld.acks.Load()
		waitFor(t, 30*time.Second, "commits again after PostgreSQL restarted (the pool recovered)", func() bool { return ld.acks.Load() >= from+50 })
		slowRecovery = max(slowRecovery, time.Since(up))
	}
	ld.stop()
	stopped = true

	retried := ld.resolve(t, 60*time.Second)
	acked := ld.ackedCopy()
	for _, id := range probes {
		a := postOrder(hc, base, id, false)
		if !a.ok() {
			t.Errorf("retry of %s (503 while PostgreSQL was stopped): %s; want 201", id, a)
		}
		acked[id] = 1
	}
	drain := waitFor(t, 60*time.Second, "outbox empty", func() bool {
		n, ok := outboxCount(pg.URL)
		return ok && n == 0
	})
	res := reconcile(t, pg.URL, cluster.ListenAddrs(), "pg_", acked, 60*time.Second, false)
	ld.checkNoBad(t)
	appendResult(t, "TestPostgresFaultsUnderLoad", fmt.Sprintf(
		"%d termination rounds (%d sessions ended, %v batch retries), %d immediate stop/start cycles, slowest 503 with PostgreSQL down %v (probe %v), slowest recovery %v; requests %d (%s), unknown outcomes %d, retried to 2xx %d; %s; outbox drained in %v",
		terminations, terminated, retriesAfter-retriesBefore, cycles, time.Duration(ld.slow503.Load()).Round(time.Millisecond),
		slowProbe.Round(time.Millisecond), slowRecovery.Round(time.Millisecond), ld.requests.Load(), ld.codesString(), ld.unknown.Load(),
		retried, res, drain.Round(10*time.Millisecond)))
	if retriesAfter <= retriesBefore {
		t.Errorf("orderflow_store_retries_total did not grow while sessions were terminated mid-batch (%v → %v): nothing was retried", retriesBefore, retriesAfter)
	}
	if res.Lost != 0 || res.VersionLost != 0 || res.Duplicated != 0 || res.Unpublished != 0 || res.Outbox != 0 {
		t.Errorf("reconciliation failed: %s; examples: %q", res, res.examples)
	}
}

// TestAmbiguousCommit cuts the database connection exactly at COMMIT (a
// proxy that reads the PostgreSQL protocol), once after the server
// committed and once before, for an order with and without Idempotency-Key,
// for a status change, and for a bulk status request that changes one order
// twice in one transaction (TestAmbiguousCommitStatusBatch). The client may get 503 (outcome unknown) or the
// 2xx of a server-side retry, but never a 4xx; a retry with the same
// id/key/target must end as exactly one row (one version) and a 2xx; the
// committed events reach the topic (through the sweeper when the fast path
// never saw them).
//
// A group commit of orders below store.Config.CopyMinRows is one statement
// in an implicit transaction, committed at its Sync message, which is where
// the proxy cuts it. The server retries it itself when the connection is
// lost, on purpose: writing orders is idempotent, so after a cut after the
// commit the retry finds the order (200, the stored order), after a cut
// before it creates it (201). Status changes are never retried after an
// ambiguous COMMIT: a retry of a committed status batch would re-apply it
// (see TestAmbiguousCommitStatusBatch); they answer 503.
func TestAmbiguousCommit(t *testing.T) {
	dbURL, proxy, cluster, base, admin := ambiguousEnv(t)
	hc := newHTTPClient(2)
	acked := map[string]int32{}
	rows := func(id string) int64 {
		return pgtest.Int64(t, dbURL, `SELECT count(*) FROM orders WHERE id = $1`, id)
	}
	unknownOrOK := func(a answer) bool {
		return a.code == http.StatusServiceUnavailable || a.ok()
	}

	f := func(name string, mode cutMode, id string, keyed bool) {
		t.Helper()
		retries, _ := series(hc, admin, `orderflow_store_retries_total{op="orders"}`)
		proxy.arm("INSERT INTO orders", mode)
		a := postOrder(hc, base, id, keyed)
		if proxy.armed() {
			t.Fatalf("%s: the proxy never saw the order's COMMIT (answer %s)", name, a)
		}
		r, _ := series(hc, admin, `orderflow_store_retries_total{op="orders"}`)
		t.Logf("%s: first answer %s (server retries %v)", name, a, r-retries)
		if !unknownOrOK(a) {
			t.Errorf("%s: POST %s: got %s; want 503 or a 2xx, never a 4xx", name, id, a)
		}
		if a.code == http.StatusServiceUnavailable && a.hdr.Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", name)
		}
		if mode == cutAfterCommit && rows(id) != 1 {
			t.Errorf("%s: %s rows after a cut after COMMIT = %d; want 1", name, id, rows(id))
		}
		if a.ok() && rows(id) != 1 {
			t.Errorf("%s: answered %d but %s rows = %d", name, a.code, id, rows(id))
		}
		want := http.StatusCreated
		if rows(id) == 1 {
			want = http.StatusOK
		}
		if r := postOrder(hc, base, id, keyed); r.code != want {
			t.Errorf("%s: retry of %s: got %s; want %d", name, id, r, want)
		}
		if n := rows(id); n != 1 {
			t.Errorf("%s: %s rows after the retry = %d; want 1", name, id, n)
		}
		acked[id] = 1
	}
	f("order, cut after commit", cutAfterCommit, "amb_after", false)
	f("order, cut before commit", cutBeforeCommit, "amb_before", false)
	f("keyed order, cut after commit", cutAfterCommit, "amb_after_k", true)
	f("keyed order, cut before commit", cutBeforeCommit, "amb_before_k", true)

	// One status change cut at its COMMIT: the retry of an applied change
	// is the 200 no-op that reports the version it made.
	g := func(name string, mode cutMode, id string) {
		t.Helper()
		if r := postOrder(hc, base, id, false); r.code != http.StatusCreated {
			t.Fatalf("%s: create %s: %s", name, id, r)
		}
		proxy.arm("UPDATE orders", mode)
		a := postStatus(hc, base, id, "paid")
		if proxy.armed() {
			t.Fatalf("%s: the proxy never saw the status change's COMMIT (answer %s)", name, a)
		}
		t.Logf("%s: first answer %s", name, a)
		if !unknownOrOK(a) {
			t.Errorf("%s: POST status: got %s; want 503 or 200, never a 4xx", name, a)
		}
		r := postStatus(hc, base, id, "paid")
		if r.code != http.StatusOK || !bytes.Contains(r.body, []byte(`"version":2`)) {
			t.Errorf("%s: retry: got %s; want 200 with version 2", name, r)
		}
		acked[id] = 2
	}
	g("status, cut after commit", cutAfterCommit, "amb_st_after")
	g("status, cut before commit", cutBeforeCommit, "amb_st_before")

	waitFor(t, 30*time.Second, "outbox empty (the sweeper published what the fast path never saw)", func() bool {
		n, ok := outboxCount(dbURL)
		return ok && n == 0
	})
	res := reconcile(t, dbURL, cluster.ListenAddrs(), "amb_", acked, 30*time.Second, true)
	if res.Lost != 0 || res.VersionLost != 0 || res.Duplicated != 0 || res.Unpublished != 0 || res.OutOfOrder != 0 || res.Stored != len(acked) {
		t.Errorf("reconciliation failed: %s; examples: %q", res, res.examples)
	}
	if c := proxy.cuts.Load(); c != 6 {
		t.Errorf("proxy cuts = %d; want 6", c)
	}
	t.Logf("%s", res)
}

// ambiguousEnv is an engine whose PostgreSQL connections go through a
// pgProxy, on a database of its own.
func ambiguousEnv(t *testing.T) (dbURL string, proxy *pgProxy, cluster *kfake.Cluster, base, admin string) {
	t.Helper()
	dbURL = enginetest.NewDatabase(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy = newPGProxy(t, u.Host)
	u.Host = proxy.Addr()
	in := enginetest.Start(t, enginetest.WithDatabase(u.String()), enginetest.WithConfig(pgFault))
	return dbURL, proxy, in.Broker, in.URL, in.AdminURL
}

// TestAmbiguousCommitStatusBatch changes one order twice (paid, then
// assembling) in one bulk request, which is one transaction, and cuts the
// connection after that transaction committed. Neither change may be
// answered 4xx: both committed.
//
// FAILS on the current server (found by this suite): store.classify retries
// a commit error when pgconn.SafeToRetry says nothing was sent, but pgx
// v5.12 answers "conn closed" (SafeToRetry true) for a connection lost while
// waiting for COMMIT's answer (MultiResultReader.NextResult ignores
// peekMessage's error, which closed the conn, and receiveMessage then
// reports connLockError). The retry re-applies "paid" to an order already
// "assembling": item 0 is answered 409 invalid_transition for a change that
// is committed. Fix (engine/store/write.go, classify): never retry a
// *commitError, answer 503 (OutcomeFailed) and let the client's retry
// converge. The same happens to two single status requests for one order
// that the pipeline groups into one batch.
func TestAmbiguousCommitStatusBatch(t *testing.T) {
	dbURL, proxy, cluster, base, _ := ambiguousEnv(t)
	hc := newHTTPClient(2)
	const id = "amb_bulk"
	if r := postOrder(hc, base, id, false); r.code != http.StatusCreated {
		t.Fatalf("create %s: %s", id, r)
	}
	proxy.arm("UPDATE orders", cutAfterCommit)
	bulk := send(hc, http.MethodPost, base+"/v1/status-updates",
		[]byte(`[{"id":"amb_bulk","status":"paid"},{"id":"amb_bulk","status":"assembling"}]`))
	if proxy.armed() {
		t.Fatalf("bulk status: the proxy never saw the COMMIT (answer %s)", bulk)
	}
	t.Logf("bulk status, cut after commit: %s", bulk)
	var br struct {
		Results []struct {
			Status int `json:"status"`
		} `json:"results"`
	}
	if bulk.code != http.StatusOK || json.Unmarshal(bulk.body, &br) != nil || len(br.Results) != 2 {
		t.Errorf("bulk status: got %s; want 200 with two results", bulk)
	}
	for i, res := range br.Results {
		if res.Status >= 400 && res.Status < 500 {
			t.Errorf("bulk status item %d: %d for a change whose commit was cut after it committed (the outcome is unknown to the server: 503 or 200, never a 4xx); body %s",
				i, res.Status, bulk.body)
		}
	}
	if v := pgtest.Int64(t, dbURL, `SELECT version FROM orders WHERE id = $1`, id); v != 3 {
		t.Errorf("%s version = %d; want 3 (both changes committed once)", id, v)
	}

	waitFor(t, 30*time.Second, "outbox empty", func() bool {
		n, ok := outboxCount(dbURL)
		return ok && n == 0
	})
	res := reconcile(t, dbURL, cluster.ListenAddrs(), "amb_", map[string]int32{id: 3}, 30*time.Second, true)
	if res.Lost != 0 || res.VersionLost != 0 || res.Duplicated != 0 || res.Unpublished != 0 || res.OutOfOrder != 0 {
		t.Errorf("reconciliation failed: %s; examples: %q", res, res.examples)
	}
}
