package enginetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/engine/metrics"
	"github.com/orderflow/orderflow/engine/store"
	"github.com/orderflow/orderflow/internal/pgtest"
)

// NewDatabase creates a fresh database (pgtest.New: dropped when the test
// ends), applies the engine's migrations and seeds the demo catalog
// (engine.DemoProducts) the way `orderflow seed-demo-catalog` does. It
// returns the database URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	url := pgtest.New(t)
	seedDemo(t, url)
	return url
}

// seedDemo runs engine.SeedDemoCatalog on the database at url.
func seedDemo(t testing.TB, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := engine.DefaultConfig()
	cfg.DatabaseURL = url
	cfg.Logger = Logger()
	if _, err := engine.SeedDemoCatalog(ctx, cfg); err != nil {
		t.Fatalf("enginetest: seed the demo catalog into %s: %v", url, err)
	}
}

// Seed applies the engine's migrations to the database at url (as the
// engine does at start-up) and upserts products into its catalog; with no
// products it only migrates. It fails the test on any error.
func Seed(t testing.TB, url string, products []store.Product) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := engine.DefaultConfig().Store
	cfg.URL = url
	st, err := store.New(ctx, cfg, metrics.New(), Logger())
	if err != nil {
		t.Fatalf("enginetest: connect to %s: %v", url, err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("enginetest: migrate %s: %v", url, err)
	}
	if len(products) == 0 {
		return
	}
	if err := st.UpsertProducts(ctx, products); err != nil {
		t.Fatalf("enginetest: seed %d products into %s: %v", len(products), url, err)
	}
}

// GeneratedProducts returns n active products for tests that need a
// catalog larger than the demo one: the i-th (from 1) has SKU
// GeneratedSKU(i) and costs 100 + i%1000 cents.
func GeneratedProducts(n int) []store.Product {
	ps := make([]store.Product, n)
	for i := range ps {
		ps[i] = store.Product{SKU: GeneratedSKU(i + 1), Name: fmt.Sprintf("Product %d", i+1), PriceCents: int64(100 + (i+1)%1000)}
	}
	return ps
}

// GeneratedSKU is the SKU of the i-th (from 1) of [GeneratedProducts].
func GeneratedSKU(i int) string { return fmt.Sprintf("sku-%06d", i) }
