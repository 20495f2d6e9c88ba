package catalog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/orderflow/orderflow/engine/internal/bytesutil"
	"github.com/orderflow/orderflow/engine/metrics"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var errSourceDown = errors.New("source down")

type fakeRow struct {
	price   int64
	active  bool
	updated time.Time
}

// fakeSource is an in-memory Source. Like pgx, it hands each sku to fn in a
// buffer it reuses (and scribbles over after the call), so a catalog that
// keeps the string it was given sees garbage.
type fakeSource struct {
	mu     sync.Mutex
	rows   map[string]fakeRow
	fail   bool // LoadProducts returns errSourceDown
	block  bool // LoadProducts waits for ctx to end
	sinces []time.Time
	called chan time.Time // if non-nil, receives since on every call (buffered)
	// hook, if set, runs in every LoadProducts call after the rows it will
	// return were read (it can hold a load in flight).
	hook func(since time.Time)
}

func newFakeSource() *fakeSource { return &fakeSource{rows: map[string]fakeRow{}} }

func (f *fakeSource) set(sku string, price int64, active bool, updated time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rows[sku] = fakeRow{price, active, updated}
}

func (f *fakeSource) del(sku string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.rows, sku)
}

func (f *fakeSource) setFail(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = v
}

func (f *fakeSource) setBlock(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.block = v
}

func (f *fakeSource) Sinces() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.sinces...)
}

func (f *fakeSource) LoadProducts(ctx context.Context, since time.Time, fn func(sku string, priceCents int64, active bool, updatedAt time.Time)) error {
	f.mu.Lock()
	f.sinces = append(f.sinces, since)
	fail, block, called, hook := f.fail, f.block, f.called, f.hook
	rows := make(map[string]fakeRow, len(f.rows))
	for k, v := range f.rows {
		rows[k] = v
	}
	f.mu.Unlock()
	if called != nil {
		called <- since
	}
	if hook != nil {
		hook(since)
	}
	if block {
		<-ctx.Done()
		return ctx.Err()
	}
	if fail {
		return errSourceDown
	}
	var buf []byte
	for sku, r := range rows {
		if r.updated.Before(since) {
			continue
		}
		buf = append(buf[:0], sku...)
		fn(bytesutil.String(buf), r.price, r.active, r.updated)
		for i := range buf {
			buf[i] = '#' // the row buffer is reused for the next row
		}
	}
	return nil
}

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestCatalog(t *testing.T, cfg Config, src Source) (*Catalog, *metrics.Metrics) {
	t.Helper()
	m := metrics.New()
	c, err := New(cfg, src, m, discardLogger())
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(c.Close)
	return c, m
}

// metricValue reads a counter or gauge from m's registry (0 when absent),
// optionally the child with label=value. It stands in for
// prometheus/testutil.ToFloat64, whose dependency
// github.com/kylelemons/godebug is not in go.sum.
func metricValue(t *testing.T, m *metrics.Metrics, name, label, value string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			match := label == ""
			for _, lp := range mt.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					match = true
				}
			}
			if !match {
				continue
			}
			if c := mt.GetCounter(); c != nil {
				return c.GetValue()
			}
			return mt.GetGauge().GetValue()
		}
	}
	return 0
}

// refreshes reads orderflow_catalog_refreshes_total{result=result}.
func refreshes(t *testing.T, m *metrics.Metrics, result string) float64 {
	t.Helper()
	return metricValue(t, m, "orderflow_catalog_refreshes_total", "result", result)
}

// mapID identifies a snapshot's map: equal ids mean the very same map.
func mapID(s *Snapshot) uintptr { return reflect.ValueOf(s.products).Pointer() }

func checkPrice(t *testing.T, c *Catalog, sku string, wantCents int64, wantOK bool) {
	t.Helper()
	cents, ok := c.Snapshot().Price(sku)
	if cents != wantCents || ok != wantOK {
		t.Fatalf("Price(%q) = %d, %v; want %d, %v", sku, cents, ok, wantCents, wantOK)
	}
	cents, ok = c.PriceBook().Price(sku)
	if cents != wantCents || ok != wantOK {
		t.Fatalf("PriceBook().Price(%q) = %d, %v; want %d, %v", sku, cents, ok, wantCents, wantOK)
	}
}

func TestLoadPrice(t *testing.T) {
	src := newFakeSource()
	src.set("SKU-1", 1999, true, t0)
	src.set("SKU-2", 500, false, t0)
	src.set("SKU-0", 0, true, t0)
	c, _ := newTestCatalog(t, Config{}, src)

	// Before Load: an empty snapshot, never nil.
	if s := c.Snapshot(); s == nil || s.Len() != 0 {
		t.Fatalf("Snapshot before Load: %+v; want empty", s)
	}
	checkPrice(t, c, "SKU-1", 0, false)

	if err := c.Load(context.Background()); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if n := c.Snapshot().Len(); n != 3 {
		t.Fatalf("Len = %d; want 3 (inactive products count)", n)
	}
	f := func(sku string, wantCents int64, wantOK bool) {
		t.Helper()
		checkPrice(t, c, sku, wantCents, wantOK)
	}
	f("SKU-1", 1999, true)
	f("SKU-0", 0, true)  // free, but active
	f("SKU-2", 0, false) // inactive
	f("SKU-3", 0, false) // unknown
	f("sku-1", 0, false) // case-sensitive
	f("", 0, false)
	// The keys were copied out of the source's reused buffer.
	f("#####", 0, false)
}

func TestRefreshIncremental(t *testing.T) {
	src := newFakeSource()
	src.set("A", 100, true, t0)
	src.set("B", 200, true, t0.Add(time.Second))
	c, m := newTestCatalog(t, Config{Overlap: 10 * time.Second}, src)
	ctx := context.Background()
	if err := c.Load(ctx); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if s := src.Sinces(); !s[0].IsZero() {
		t.Fatalf("Load read since %v; want the zero time (everything)", s[0])
	}
	maxSeen := t0.Add(time.Second)

	// Nothing changed: same map, no copy, but a fresh loadedAt.
	before := c.Snapshot()
	if err := c.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	after := c.Snapshot()
	if want := maxSeen.Add(-10 * time.Second); !src.Sinces()[1].Equal(want) {
		t.Fatalf("Refresh read since %v; want max updated_at - overlap = %v", src.Sinces()[1], want)
	}
	if mapID(after) != mapID(before) {
		t.Fatalf("an unchanged refresh copied the map")
	}
	if after.loadedAt.Before(before.loadedAt) {
		t.Fatalf("loadedAt went back: %v -> %v", before.loadedAt, after.loadedAt)
	}

	// One product changes: picked up, in a new map; the old snapshot is untouched.
	src.set("A", 150, true, t0.Add(5*time.Second))
	if err := c.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	checkPrice(t, c, "A", 150, true)
	checkPrice(t, c, "B", 200, true)
	if mapID(c.Snapshot()) == mapID(after) {
		t.Fatalf("a changed refresh modified the published map in place")
	}
	if cents, _ := after.Price("A"); cents != 100 {
		t.Fatalf("old snapshot Price(A) = %d after a refresh; snapshots must be immutable", cents)
	}
	if got := c.Snapshot().maxUpdated; !got.Equal(t0.Add(5 * time.Second)) {
		t.Fatalf("maxUpdated = %v; want %v", got, t0.Add(5*time.Second))
	}

	// Overlap window: a row committed late with an updated_at older than
	// the newest one seen (but within Overlap) is still picked up.
	src.set("C", 300, true, t0.Add(-3*time.Second))
	src.set("B", 250, false, t0.Add(-4*time.Second))
	if err := c.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	checkPrice(t, c, "C", 300, true)
	checkPrice(t, c, "B", 0, false) // deactivated
	// Older than the overlap window: missed until the next full reload.
	src.set("D", 400, true, t0.Add(-time.Minute))
	if err := c.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	checkPrice(t, c, "D", 0, false)
	if err := c.Load(ctx); err != nil {
		t.Fatalf("Load: %v", err)
	}
	checkPrice(t, c, "D", 400, true)

	if got := refreshes(t, m, "ok"); got != 6 {
		t.Fatalf("refreshes{ok} = %v; want 6", got)
	}
	if got := metricValue(t, m, "orderflow_catalog_products", "", ""); got != 4 {
		t.Fatalf("catalog products gauge = %v; want 4", got)
	}
	if got, want := metricValue(t, m, "orderflow_catalog_last_refresh_timestamp_seconds", "", ""), float64(c.Snapshot().loadedAt.UnixNano())/1e9; got != want {
		t.Fatalf("last refresh gauge = %v; want %v", got, want)
	}
}

func TestFullReloadDropsDeleted(t *testing.T) {
	src := newFakeSource()
	src.set("A", 100, true, t0)
	src.set("B", 200, true, t0)
	c, _ := newTestCatalog(t, Config{}, src)
	ctx := context.Background()
	if err := c.Load(ctx); err != nil {
		t.Fatalf("Load: %v", err)
	}
	src.del("B")
	if err := c.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	checkPrice(t, c, "B", 200, true) // an incremental refresh cannot see a delete
	if err := c.Load(ctx); err != nil {
		t.Fatalf("Load: %v", err)
	}
	checkPrice(t, c, "B", 0, false)
	checkPrice(t, c, "A", 100, true)
	if n := c.Snapshot().Len(); n != 1 {
		t.Fatalf("Len after full reload = %d; want 1", n)
	}
}

func TestRefreshErrorKeepsSnapshot(t *testing.T) {
	src := newFakeSource()
	src.set("A", 100, true, t0)
	c, m := newTestCatalog(t, Config{}, src)
	ctx := context.Background()
	if err := c.Load(ctx); err != nil {
		t.Fatalf("Load: %v", err)
	}
	before := c.Snapshot()
	src.set("A", 999, true, t0.Add(time.Second))
	src.setFail(true)
	for _, op := range []struct {
		name string
		fn   func(context.Context) error
	}{{"Refresh", c.Refresh}, {"Load", c.Load}} {
		err := op.fn(ctx)
		if !errors.Is(err, errSourceDown) {
			t.Fatalf("%s with a failing source: %v; want it to wrap %v", op.name, err, errSourceDown)
		}
		if c.Snapshot() != before {
			t.Fatalf("%s error replaced the snapshot", op.name)
		}
		checkPrice(t, c, "A", 100, true)
	}
	if got := refreshes(t, m, "error"); got != 2 {
		t.Fatalf("refreshes{error} = %v; want 2", got)
	}
	if got := refreshes(t, m, "ok"); got != 1 {
		t.Fatalf("refreshes{ok} = %v; want 1", got)
	}
	src.setFail(false)
	if err := c.Refresh(ctx); err != nil {
		t.Fatalf("Refresh after recovery: %v", err)
	}
	checkPrice(t, c, "A", 999, true)
}

func TestRefreshTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newFakeSource()
		src.setBlock(true)
		c, _ := newTestCatalog(t, Config{Timeout: 3 * time.Second}, src)
		start := time.Now()
		err := c.Refresh(context.Background())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Refresh with a hung source: %v; want context.DeadlineExceeded", err)
		}
		if took := time.Since(start); took != 3*time.Second {
			t.Fatalf("Refresh gave up after %v; want Timeout = 3s", took)
		}
	})
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"defaults", DefaultConfig(), true},
		{"negative interval", Config{RefreshInterval: -1}, false},
		{"negative overlap", Config{Overlap: -1}, false},
		{"negative full reload", Config{FullReloadEvery: -1}, false},
		{"negative timeout", Config{Timeout: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate(%+v) = %v; want ok=%v", tt.cfg, err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "-catalog.") {
				t.Fatalf("Validate(%+v) = %q; want it to name the flag", tt.cfg, err)
			}
			if _, nerr := New(tt.cfg, newFakeSource(), metrics.New(), discardLogger()); (nerr == nil) != tt.ok {
				t.Fatalf("New(%+v) = %v; want ok=%v", tt.cfg, nerr, tt.ok)
			}
		})
	}
	c, err := New(Config{}, newFakeSource(), metrics.New(), discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg != DefaultConfig() {
		t.Fatalf("New(Config{}) uses %+v; want %+v", c.cfg, DefaultConfig())
	}
}

// TestStartRefreshesOnInterval runs the refresher on a fake clock.
func TestStartRefreshesOnInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newFakeSource()
		src.set("A", 100, true, time.Now())
		c, m := newTestCatalog(t, Config{RefreshInterval: 2 * time.Second, FullReloadEvery: 5 * time.Second, Overlap: time.Second}, src)
		if err := c.Load(context.Background()); err != nil {
			t.Fatalf("Load: %v", err)
		}
		start := time.Now()
		c.Start()
		synctest.Wait()
		if n := len(src.Sinces()); n != 1 {
			t.Fatalf("%d loads right after Start; want 1 (Load only)", n)
		}

		src.set("A", 150, true, time.Now())
		time.Sleep(2*time.Second - time.Nanosecond)
		synctest.Wait()
		if n := len(src.Sinces()); n != 1 {
			t.Fatalf("%d loads before RefreshInterval; want 1", n)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		checkPrice(t, c, "A", 150, true)

		// 4s: incremental; 6s: FullReloadEvery (5s) has passed since Load.
		time.Sleep(4 * time.Second)
		synctest.Wait()
		sinces := src.Sinces()
		if len(sinces) != 4 {
			t.Fatalf("%d loads after 6s; want 4", len(sinces))
		}
		want := []bool{true, false, false, true} // zero since = full load
		for i, s := range sinces {
			if s.IsZero() != want[i] {
				t.Fatalf("load %d (at %v) since %v: full=%v; want full=%v", i, time.Duration(2*i)*time.Second, s, s.IsZero(), want[i])
			}
		}
		if !sinces[1].Equal(start.Add(-time.Second)) {
			t.Fatalf("incremental load since %v; want max updated_at - Overlap = %v", sinces[1], start.Add(-time.Second))
		}
		if got := refreshes(t, m, "ok"); got != 4 {
			t.Fatalf("refreshes{ok} = %v; want 4", got)
		}

		c.Close()
		c.Close() // idempotent
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := len(src.Sinces()); n != 4 {
			t.Fatalf("%d loads after Close; want 4 (no refresh once closed)", n)
		}
	})
}

// TestRefresherErrorIsLogged: a failing periodic refresh keeps the snapshot,
// is counted, logged as a warning, and retried as a full reload if one was due.
func TestRefresherErrorIsLogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newFakeSource()
		src.set("A", 100, true, time.Now())
		var logBuf bytes.Buffer
		var logMu sync.Mutex
		m := metrics.New()
		c, err := New(Config{RefreshInterval: time.Second, FullReloadEvery: time.Second}, src, m,
			slog.New(slog.NewTextHandler(&lockedWriter{w: &logBuf, mu: &logMu}, nil)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		before := c.Snapshot()
		src.setFail(true)
		c.Start()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got := refreshes(t, m, "error"); got != 2 {
			t.Fatalf("refreshes{error} = %v; want 2", got)
		}
		if c.Snapshot() != before {
			t.Fatalf("a failed refresh replaced the snapshot")
		}
		logMu.Lock()
		log := logBuf.String()
		logMu.Unlock()
		if !strings.Contains(log, "level=WARN") || !strings.Contains(log, errSourceDown.Error()) {
			t.Fatalf("log %q; want a warning with the source error", log)
		}
		for i, s := range src.Sinces() {
			if !s.IsZero() {
				t.Fatalf("load %d since %v; want full reloads (the failed one is retried)", i, s)
			}
		}
	})
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestCloseCancelsRefresh: Close does not wait for a hung source's Timeout.
func TestCloseCancelsRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newFakeSource()
		src.called = make(chan time.Time, 10)
		var logBuf bytes.Buffer
		var logMu sync.Mutex
		c, err := New(Config{RefreshInterval: time.Second, Timeout: time.Hour}, src, metrics.New(),
			slog.New(slog.NewTextHandler(&lockedWriter{w: &logBuf, mu: &logMu}, nil)))
		if err != nil {
			t.Fatal(err)
		}
		src.setBlock(true)
		c.Start()
		<-src.called // the refresher is stuck in LoadProducts
		start := time.Now()
		c.Close()
		if took := time.Since(start); took != 0 {
			t.Fatalf("Close took %v with a hung source; want at once", took)
		}
		logMu.Lock()
		defer logMu.Unlock()
		if logBuf.Len() != 0 {
			t.Fatalf("Close logged %q; a cancelled refresh is not a failure", logBuf.String())
		}
	})
}

func TestCloseWithoutStart(t *testing.T) {
	c, _ := newTestCatalog(t, Config{}, newFakeSource())
	c.Close()
	c.Close()
}

func TestNoGoroutineLeftAfterClose(t *testing.T) {
	defer goleak.VerifyNone(t)
	src := newFakeSource()
	src.set("A", 1, true, t0)
	c, _ := newTestCatalog(t, Config{RefreshInterval: time.Millisecond}, src)
	if err := c.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Start()
	time.Sleep(5 * time.Millisecond)
	c.Close()
}

// TestConcurrentReadsDuringRefresh runs readers against snapshots being
// swapped by both the refresher and explicit refreshes (run with -race).
func TestConcurrentReadsDuringRefresh(t *testing.T) {
	const n = 200
	src := newFakeSource()
	skus := make([]string, n)
	for i := range skus {
		skus[i] = fmt.Sprintf("SKU-%04d", i)
		src.set(skus[i], int64(i)*1000, true, t0)
	}
	c, _ := newTestCatalog(t, Config{RefreshInterval: time.Millisecond, FullReloadEvery: 3 * time.Millisecond}, src)
	if err := c.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Start()

	var stop atomic.Bool
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Go(func() {
			for i := r; !stop.Load(); i++ {
				sku := skus[i%n]
				cents, ok := c.PriceBook().Price(sku)
				// Prices only ever move within [i*1000, i*1000+999].
				if !ok || cents/1000 != int64(i%n) {
					t.Errorf("Price(%q) = %d, %v; want ok with a price in [%d, %d]", sku, cents, ok, (i%n)*1000, (i%n)*1000+999)
					return
				}
			}
		})
	}
	for v := 1; v <= 100; v++ {
		i := v % n
		src.set(skus[i], int64(i)*1000+int64(v%1000), true, t0.Add(time.Duration(v)*time.Millisecond))
		if err := c.Refresh(context.Background()); err != nil {
			t.Fatalf("Refresh: %v", err)
		}
	}
	stop.Store(true)
	wg.Wait()
	c.Close()
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	checkPrice(t, c, skus[100], 100*1000+100, true)
}

// TestLoadDuringRefresher calls Load and Refresh while the refresher runs
// (under -race this checks that they share its state safely).
func TestLoadDuringRefresher(t *testing.T) {
	src := newFakeSource()
	src.set("A", 100, true, t0)
	c, _ := newTestCatalog(t, Config{RefreshInterval: time.Millisecond, FullReloadEvery: 2 * time.Millisecond}, src)
	c.Start()
	deadline := time.Now().Add(30 * time.Millisecond)
	for i := 0; time.Now().Before(deadline); i++ {
		var err error
		if i%2 == 0 {
			err = c.Load(context.Background())
		} else {
			err = c.Refresh(context.Background())
		}
		if err != nil {
			t.Fatalf("load %d: %v", i, err)
		}
		time.Sleep(100 * time.Microsecond)
	}
	c.Close()
	checkPrice(t, c, "A", 100, true)
}

// TestSlowRefreshDoesNotUndoFullReload: an incremental refresh that began
// before a full reload must not publish its (older) map after the reload,
// which would bring back a deleted product.
func TestSlowRefreshDoesNotUndoFullReload(t *testing.T) {
	src := newFakeSource()
	src.set("A", 100, true, t0)
	src.set("D", 200, true, t0)
	c, _ := newTestCatalog(t, Config{}, src)
	ctx := context.Background()
	if err := c.Load(ctx); err != nil {
		t.Fatal(err)
	}
	src.del("D")
	inRefresh, release := make(chan struct{}), make(chan struct{})
	src.mu.Lock()
	src.hook = func(since time.Time) {
		if !since.IsZero() { // the incremental refresh waits
			close(inRefresh)
			<-release
		}
	}
	src.mu.Unlock()

	refreshed := make(chan error, 1)
	go func() { refreshed <- c.Refresh(ctx) }()
	<-inRefresh
	loaded := make(chan error, 1)
	go func() { loaded <- c.Load(ctx) }() // drops D
	time.Sleep(20 * time.Millisecond)     // let the Load finish (or wait its turn)
	close(release)
	if err := <-refreshed; err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if err := <-loaded; err != nil {
		t.Fatalf("Load: %v", err)
	}
	checkPrice(t, c, "D", 0, false)
	checkPrice(t, c, "A", 100, true)
}
