package catalog

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderflow/orderflow/engine/metrics"
)

const (
	benchProducts     = 10_000
	benchRefreshEvery = 10 * time.Millisecond // one changed product per refresh
)

// benchSource serves benchProducts rows plus the recently changed ones,
// without the per-call copying of fakeSource, so that the refresher's cost
// is the catalog's own.
type benchSource struct {
	mu     sync.Mutex
	base   map[string]fakeRow
	recent map[string]fakeRow // changed rows, newer than base
}

func (s *benchSource) change(sku string, r fakeRow) {
	s.mu.Lock()
	s.recent[sku] = r
	s.mu.Unlock()
}

func (s *benchSource) LoadProducts(_ context.Context, since time.Time, fn func(string, int64, bool, time.Time)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if since.IsZero() {
		for sku, r := range s.base {
			if _, ok := s.recent[sku]; !ok {
				fn(sku, r.price, r.active, r.updated)
			}
		}
	}
	for sku, r := range s.recent {
		if !r.updated.Before(since) {
			fn(sku, r.price, r.active, r.updated)
		}
	}
	return nil
}

// priceImpl is one way to serve prices while a refresher changes them.
type priceImpl struct {
	name string
	// setup loads skus (price i for skus[i]) and returns the lookup and a
	// func that changes skus[i]'s price to price and publishes it.
	setup func(b *testing.B, skus []string) (lookup func(string) (int64, bool), update func(i int, price int64))
}

var priceImpls = []priceImpl{
	{"atomic_snapshot", func(b *testing.B, skus []string) (func(string) (int64, bool), func(int, int64)) {
		src := &benchSource{base: make(map[string]fakeRow, len(skus)), recent: map[string]fakeRow{}}
		for i, sku := range skus {
			src.base[sku] = fakeRow{int64(i), true, t0}
		}
		c, err := New(Config{}, src, metrics.New(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Load(context.Background()); err != nil {
			b.Fatal(err)
		}
		var version atomic.Int64
		update := func(i int, price int64) {
			v := version.Add(1)
			src.change(skus[i], fakeRow{price, true, t0.Add(time.Duration(v) * time.Millisecond)})
			if err := c.Refresh(context.Background()); err != nil {
				panic(err)
			}
		}
		return func(sku string) (int64, bool) { return c.Snapshot().Price(sku) }, update
	}},
	{"rwmutex_map", func(b *testing.B, skus []string) (func(string) (int64, bool), func(int, int64)) {
		var mu sync.RWMutex
		m := make(map[string]Product, len(skus))
		for i, sku := range skus {
			m[sku] = Product{PriceCents: int64(i), Active: true}
		}
		lookup := func(sku string) (int64, bool) {
			mu.RLock()
			p, ok := m[sku]
			mu.RUnlock()
			if !ok || !p.Active {
				return 0, false
			}
			return p.PriceCents, true
		}
		update := func(i int, price int64) {
			mu.RLock()
			next := make(map[string]Product, len(m)) // copy outside the write lock
			for k, v := range m {
				next[k] = v
			}
			mu.RUnlock()
			next[skus[i]] = Product{PriceCents: price, Active: true}
			mu.Lock()
			m = next
			mu.Unlock()
		}
		return lookup, update
	}},
	{"sync_map", func(b *testing.B, skus []string) (func(string) (int64, bool), func(int, int64)) {
		var m sync.Map
		for i, sku := range skus {
			m.Store(sku, Product{PriceCents: int64(i), Active: true})
		}
		lookup := func(sku string) (int64, bool) {
			v, ok := m.Load(sku)
			if !ok {
				return 0, false
			}
			p := v.(Product)
			if !p.Active {
				return 0, false
			}
			return p.PriceCents, true
		}
		update := func(i int, price int64) {
			m.Store(skus[i], Product{PriceCents: price, Active: true})
		}
		return lookup, update
	}},
}

// BenchmarkPrice measures read-heavy lookups over benchProducts products
// while a refresher changes one product every benchRefreshEvery.
func BenchmarkPrice(b *testing.B) {
	skus := make([]string, benchProducts)
	for i := range skus {
		skus[i] = fmt.Sprintf("SKU-%06d", i)
	}
	for _, impl := range priceImpls {
		b.Run("impl="+impl.name, func(b *testing.B) {
			lookup, update := impl.setup(b, skus)
			stop := make(chan struct{})
			var refreshes atomic.Int64
			var wg sync.WaitGroup
			wg.Go(func() {
				t := time.NewTicker(benchRefreshEvery)
				defer t.Stop()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-t.C:
					}
					k := (i * 7919) % len(skus)
					update(k, int64(k)) // same price: readers can check it
					refreshes.Add(1)
				}
			})
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(1)) * 104729
				for pb.Next() {
					i++
					k := i % len(skus)
					if cents, ok := lookup(skus[k]); !ok || cents != int64(k) {
						panic(fmt.Sprintf("Price(%q) = %d, %v", skus[k], cents, ok))
					}
				}
			})
			b.StopTimer()
			close(stop)
			wg.Wait()
			b.ReportMetric(float64(refreshes.Load()), "refreshes")
		})
	}
}
