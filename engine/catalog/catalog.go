// Package catalog keeps the product catalog (sku → price, active) in memory
// for pricing orders on the request path. The catalog table belongs to
// another service; orderflow only reads it.
//
// Readers take the current Snapshot with one atomic load and look prices up
// without locks or allocation. A refresher goroutine re-reads the products
// changed since the last refresh (by updated_at, with an overlap window) and,
// only when something changed, builds a new map copy-on-write and swaps the
// pointer. Every FullReloadEvery it reloads everything, which also drops
// products deleted outright.
package catalog

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orderflow/orderflow/engine/metrics"
	"github.com/orderflow/orderflow/engine/order"
)

// Product is one catalog entry.
type Product struct {
	PriceCents int64
	Active     bool
}

// Snapshot is an immutable view of the catalog. It is safe for concurrent
// use; it never changes after it is published.
type Snapshot struct {
	products   map[string]Product
	maxUpdated time.Time
	loadedAt   time.Time
}

// Price returns the price of an active product in minor units. ok is false
// for an unknown or inactive sku. It does not allocate.
func (s *Snapshot) Price(sku string) (cents int64, ok bool) {
	p, found := s.products[sku]
	if !found || !p.Active {
		return 0, false
	}
	return p.PriceCents, true
}

// Len reports the number of products (active or not) in the snapshot.
func (s *Snapshot) Len() int { return len(s.products) }

var _ order.PriceBook = (*Snapshot)(nil)

// Source reads products from where the catalog lives (the store).
// LoadProducts calls fn for every product with updated_at ≥ since (all of
// them for the zero time); sku is valid only during the call.
type Source interface {
	LoadProducts(ctx context.Context, since time.Time, fn func(sku string, priceCents int64, active bool, updatedAt time.Time)) error
}

// Catalog holds the current snapshot and refreshes it. Safe for concurrent
// use. Load once before serving, then Start; Close stops the refresher.
type Catalog struct {
	cfg Config
	src Source
	m   *metrics.Metrics
	log *slog.Logger

	cur      atomic.Pointer[Snapshot]
	stop     chan struct{} // closed by Close
	stopOnce sync.Once
	wg       sync.WaitGroup

	// refreshMu serializes refreshes (Load, Refresh and the refresher), so
	// that one built from an older snapshot never replaces a newer one (a
	// late incremental refresh would bring back rows a full reload dropped).
	// Readers never take it.
	refreshMu sync.Mutex
	lastFull  time.Time // guarded by refreshMu
}

// New returns a catalog reading from src. It starts empty: call Load.
func New(cfg Config, src Source, m *metrics.Metrics, log *slog.Logger) (*Catalog, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Catalog{cfg: cfg, src: src, m: m, log: log, stop: make(chan struct{})}
	c.cur.Store(&Snapshot{products: map[string]Product{}})
	return c, nil
}

// Snapshot returns the current snapshot (never nil). It does not allocate.
func (c *Catalog) Snapshot() *Snapshot { return c.cur.Load() }

// PriceBook returns the current snapshot as an order.PriceBook.
func (c *Catalog) PriceBook() order.PriceBook { return c.cur.Load() }

// Load reads the whole catalog and swaps it in. It blocks.
func (c *Catalog) Load(ctx context.Context) error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	err := c.refresh(ctx, true)
	c.observe(err)
	return err
}

// Refresh reads the products changed since the last load and swaps in a new
// snapshot if any changed. It blocks.
func (c *Catalog) Refresh(ctx context.Context) error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	err := c.refresh(ctx, false)
	c.observe(err)
	return err
}

func (c *Catalog) observe(err error) {
	if err != nil {
		c.m.CatalogRefreshes.WithLabelValues("error").Inc()
		return
	}
	c.m.CatalogRefreshes.WithLabelValues("ok").Inc()
	s := c.cur.Load()
	c.m.CatalogProducts.Set(float64(len(s.products)))
	c.m.CatalogAgeSeconds.Set(float64(s.loadedAt.UnixNano()) / 1e9)
}

// refresh must be called with refreshMu held.
func (c *Catalog) refresh(ctx context.Context, full bool) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	old := c.cur.Load()
	var since time.Time
	if !full && !old.maxUpdated.IsZero() {
		since = old.maxUpdated.Add(-c.cfg.Overlap)
	}
	now := time.Now()
	var next map[string]Product // nil until the first change (copy-on-write)
	if full {
		next = make(map[string]Product, len(old.products))
	}
	maxUpdated := old.maxUpdated
	err := c.src.LoadProducts(ctx, since, func(sku string, price int64, active bool, updated time.Time) {
		if updated.After(maxUpdated) {
			maxUpdated = updated
		}
		p := Product{PriceCents: price, Active: active}
		if next == nil {
			if cur, ok := old.products[sku]; ok && cur == p {
				return
			}
			next = make(map[string]Product, len(old.products)+1)
			for k, v := range old.products {
				next[k] = v
			}
		}
		next[string([]byte(sku))] = p // copy: sku is valid only during the call
	})
	if err != nil {
		return fmt.Errorf("load catalog: %w", err)
	}
	if full {
		c.lastFull = now
	}
	if next == nil {
		next = old.products // nothing changed: keep the map, note the time
	}
	c.cur.Store(&Snapshot{products: next, maxUpdated: maxUpdated, loadedAt: now})
	return nil
}

// Start launches the refresher goroutine.
func (c *Catalog) Start() {
	// The context ends when Close closes stop, cancelling a load in
	// progress too; both goroutines are waited for by Close.
	ctx, cancel := context.WithCancel(context.Background())
	c.wg.Go(func() { <-c.stop; cancel() })
	c.wg.Go(func() { c.run(ctx) })
}

func (c *Catalog) run(ctx context.Context) {
	t := time.NewTicker(c.cfg.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.refreshMu.Lock()
		full := time.Since(c.lastFull) >= c.cfg.FullReloadEvery
		err := c.refresh(ctx, full)
		c.observe(err)
		c.refreshMu.Unlock()
		if err != nil && ctx.Err() == nil {
			c.log.Warn("catalog refresh failed; serving the previous snapshot", "err", err)
		}
	}
}

// Close stops the refresher and waits for it. Safe to call more than once.
func (c *Catalog) Close() {
	c.stopOnce.Do(func() { close(c.stop) })
	c.wg.Wait()
}
