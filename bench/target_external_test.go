package bench

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/engine/ingest"
	"github.com/orderflow/orderflow/internal/enginetest"
	"github.com/orderflow/orderflow/internal/testcert"
)

const testKey = "bench-test-key-0123456789"

// startExternal starts an orderflow that serves HTTPS with a certificate
// of a CA made here and accepts only testKey: a stand-in for a staging
// deployment.
func startExternal(t *testing.T) (*enginetest.Instance, *testcert.CA) {
	t.Helper()
	ca := testcert.NewCA(t, "bench")
	pair := ca.Issue(t, "orderflow", "127.0.0.1")
	in := enginetest.Start(t, enginetest.WithConfig(func(c *engine.Config) {
		c.Ingest.TLS.CertFile, c.Ingest.TLS.KeyFile = pair.CertFile, pair.KeyFile
		c.Ingest.APIKeys = []ingest.APIKey{{Name: "bench", Key: testKey}}
	}))
	if !strings.HasPrefix(in.URL, "https://") {
		t.Fatalf("engine URL %s; want https", in.URL)
	}
	return in, ca
}

// dbCounts returns, for the orders whose id starts with prefix: how many,
// their items, the status changes applied (Σ version-1), and the SKUs used.
func dbCounts(t *testing.T, dbURL, prefix string) (orders, items, changes int64, skus []string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	like := prefix + "%"
	if err := conn.QueryRow(ctx, `SELECT count(*), coalesce(sum(version - 1), 0) FROM orders WHERE id LIKE $1`, like).Scan(&orders, &changes); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*), coalesce(array_agg(DISTINCT sku ORDER BY sku), '{}') FROM order_items WHERE order_id LIKE $1`, like).Scan(&items, &skus); err != nil {
		t.Fatal(err)
	}
	return orders, items, changes, skus
}

// The benchmarks' load code, pointed at a running orderflow as -target
// (https with -ca-file, an API key, -skus), sends what it counts: every
// order created and every status change it acknowledges is in the
// database under this run's id prefix, three items each, from the given
// SKUs only. Without the key every answer is a 401 and the run's error
// says so; without the CA every request fails its TLS handshake.
func TestE2ELoadAgainstExternalTarget(t *testing.T) {
	in, ca := startExternal(t)
	skus := []string{"eggs-10", "milk-1l"}
	tg, err := newTarget(settings{URL: in.URL + "/", APIKey: testKey, CAFile: ca.File, SKUs: skus})
	if err != nil {
		t.Fatal(err)
	}
	hc := tg.client(4, 30*time.Second)
	defer hc.CloseIdleConnections()

	const creates, batches, per, changes = 120, 3, 40, 90
	if tl := tg.createOrders(hc, 4, creates); tl.err() != nil || tl.acked.Load() != creates || tl.requests.Load() != creates {
		t.Fatalf("createOrders(%d): acked %d of %d requests, err %v; want every one 201", creates, tl.acked.Load(), tl.requests.Load(), tl.err())
	}
	if tl := tg.orderBatches(hc, 2, batches, per); tl.err() != nil || tl.acked.Load() != batches*per {
		t.Fatalf("orderBatches(%d×%d): acked %d, err %v; want every order 201", batches, per, tl.acked.Load(), tl.err())
	}
	prepared := statusOrdersFor(changes, 4)
	first, err := tg.prepareOrders(hc, prepared)
	if err != nil {
		t.Fatal(err)
	}
	if tl := tg.statusChanges(hc, 4, changes, first, prepared); tl.err() != nil || tl.acked.Load() != changes {
		t.Fatalf("statusChanges(%d): acked %d, err %v; want every change 200", changes, tl.acked.Load(), tl.err())
	}

	wantOrders := int64(creates + batches*per + prepared)
	orders, items, applied, used := dbCounts(t, in.DatabaseURL, orderPrefix())
	if orders != wantOrders || items != 3*wantOrders || applied != changes || !slices.Equal(used, skus) {
		t.Fatalf("database under %s: %d orders, %d items, %d status changes, SKUs %v; want %d, %d, %d, %v",
			orderPrefix(), orders, items, applied, used, wantOrders, 3*wantOrders, changes, skus)
	}

	// Refusals are counted and fail the run, by kind.
	noKey, err := newTarget(settings{URL: in.URL, CAFile: ca.File, SKUs: skus})
	if err != nil {
		t.Fatal(err)
	}
	tl := noKey.createOrders(noKey.client(1, 10*time.Second), 1, 5)
	if e := tl.err(); tl.acked.Load() != 0 || e == nil || !strings.Contains(e.Error(), "401 ×5") {
		t.Fatalf("without the API key: acked %d, err %v; want 0 and an error counting 401 ×5", tl.acked.Load(), e)
	}
	noCA, err := newTarget(settings{URL: in.URL, APIKey: testKey, SKUs: skus})
	if err != nil {
		t.Fatal(err)
	}
	tl = noCA.orderBatches(noCA.client(1, 10*time.Second), 1, 2, 10)
	if e := tl.err(); tl.acked.Load() != 0 || e == nil || !strings.Contains(e.Error(), "transport error ×20") {
		t.Fatalf("without the CA: acked %d, err %v; want 0 and transport error ×20 (2 requests of 10 orders)", tl.acked.Load(), e)
	}
	if o, _, _, _ := dbCounts(t, in.DatabaseURL, orderPrefix()); o != wantOrders {
		t.Fatalf("after the refused runs: %d orders under the prefix; want still %d", o, wantOrders)
	}
}

// An unknown SKU is a 422 per order, counted and named in the error.
func TestE2ELoadCountsRejectedItems(t *testing.T) {
	in := enginetest.Start(t)
	tg, err := newTarget(settings{URL: in.URL, SKUs: []string{"milk-1l", "no-such-sku"}})
	if err != nil {
		t.Fatal(err)
	}
	tl := tg.orderBatches(tg.client(1, 10*time.Second), 1, 1, 4)
	// Orders n…n+3 each hold both SKUs: every one is refused.
	if e := tl.err(); tl.acked.Load() != 0 || e == nil || !strings.Contains(e.Error(), "item 422 ×4") || !strings.Contains(e.Error(), "-skus") {
		t.Fatalf("unknown SKU: acked %d, err %v; want 0 and item 422 ×4 with the -skus hint", tl.acked.Load(), e)
	}
}

// `go test -bench … -args -target URL` (here the test binary itself, as go
// test runs it) loads the given deployment: the end-to-end benchmarks run
// against it, with the key from ORDERFLOW_BENCH_API_KEY and the CA from
// -ca-file, and their orders land in its database under the printed id
// prefix; the database benchmarks skip, saying why.
func TestBenchmarksRunAgainstTarget(t *testing.T) {
	in, ca := startExternal(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run", "^$",
		"-test.bench", "^(BenchmarkOrderInsert|BenchmarkE2ECreateOrder|BenchmarkE2EStatusChange)$/^conns=1$", "-test.benchtime", "5x",
		"-target", in.URL, "-ca-file", ca.File)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ORDERFLOW_BENCH_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, envAPIKey+"="+testKey)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	s := string(out)
	for _, want := range []string{"BenchmarkE2ECreateOrder/conns=1", "BenchmarkE2EStatusChange/conns=1", "orders/s", "changes/s",
		"BenchmarkOrderInsert skipped under -target", "\nPASS"} {
		if !strings.Contains(s, want) {
			t.Fatalf("benchmark output lacks %q:\n%s", want, s)
		}
	}
	m := regexp.MustCompile(`order ids (bench_\S+_)<n>`).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("benchmark output names no order id prefix:\n%s", s)
	}
	// Each benchmark runs once with b.N = 1, then with 5; the status
	// benchmark first creates the orders it changes.
	orders, items, changes, _ := dbCounts(t, in.DatabaseURL, m[1])
	if orders < 6 || items != 3*orders || changes != 6 {
		t.Fatalf("database under %s: %d orders, %d items, %d status changes; want ≥ 6 orders (1+5 created), 3 items each, 6 changes (1+5)\n%s", m[1], orders, items, changes, s)
	}
}

// A flag wins over its environment variable, which is read when the flag
// is empty; -skus is split at commas.
func TestSettingsFlagsBeforeEnvironment(t *testing.T) {
	env := map[string]string{envTarget: "https://env.example/", envAPIKey: "env-key", envCAFile: "/env/ca.pem", envSKUs: " a, b ,,c"}
	getenv := func(k string) string { return env[k] }
	got := settingsOf(getenv)
	want := settings{URL: "https://env.example/", APIKey: "env-key", CAFile: "/env/ca.pem", SKUs: []string{"a", "b", "c"}}
	if !equalSettings(got, want) {
		t.Fatalf("settingsOf(env %v): got %+v; want %+v", env, got, want)
	}
	flags := []*string{flagTarget, flagAPIKey, flagCAFile, flagSKUs}
	saved := make([]string, len(flags))
	for i, f := range flags {
		saved[i] = *f
	}
	t.Cleanup(func() {
		for i, f := range flags {
			*f = saved[i]
		}
	})
	*flagTarget, *flagAPIKey, *flagCAFile, *flagSKUs = "http://flag.example:8080", "flag-key", "/flag/ca.pem", "x"
	got = settingsOf(getenv)
	want = settings{URL: "http://flag.example:8080", APIKey: "flag-key", CAFile: "/flag/ca.pem", SKUs: []string{"x"}}
	if !equalSettings(got, want) {
		t.Fatalf("settingsOf(flags and env): got %+v; want %+v", got, want)
	}
}

func equalSettings(a, b settings) bool {
	return a.URL == b.URL && a.APIKey == b.APIKey && a.CAFile == b.CAFile && slices.Equal(a.SKUs, b.SKUs)
}

func TestNewTarget(t *testing.T) {
	ok := func(s settings, base, addr string, skus []string) {
		t.Helper()
		tg, err := newTarget(s)
		if err != nil {
			t.Fatalf("newTarget(%+v): %v", s, err)
		}
		if tg.base != base || tg.addr != addr || !slices.Equal(tg.skus, skus) || string(tg.uriOrders) != base+"/v1/orders" {
			t.Fatalf("newTarget(%+v): base %q addr %q skus %v orders %q; want %q, %q, %v", s, tg.base, tg.addr, tg.skus, tg.uriOrders, base, addr, skus)
		}
	}
	ok(settings{URL: "https://staging.example/"}, "https://staging.example", "staging.example:443", demoSKUs())
	ok(settings{URL: "http://10.0.0.5"}, "http://10.0.0.5", "10.0.0.5:80", demoSKUs())
	ok(settings{URL: "http://lb:8080/orderflow/", SKUs: []string{"a"}}, "http://lb:8080/orderflow", "lb:8080", []string{"a"})
	bad := func(s settings, want string) {
		t.Helper()
		if _, err := newTarget(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("newTarget(%+v): got %v; want an error containing %q", s, err, want)
		}
	}
	bad(settings{URL: "staging.example"}, "want http[s]://")
	bad(settings{URL: "ftp://staging.example"}, "want http[s]://")
	bad(settings{URL: "http://staging.example/?x=1"}, "want http[s]://")
	bad(settings{URL: "http://staging.example", CAFile: "ca.pem"}, "needs an https -target")
	bad(settings{URL: "https://staging.example", CAFile: "/nonexistent/ca.pem"}, "-ca-file")
	bad(settings{URL: "https://staging.example", SKUs: []string{"milk 1l"}}, "-skus")
}
