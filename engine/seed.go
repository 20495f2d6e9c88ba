package engine

import (
	"context"

	"github.com/orderflow/orderflow/engine/metrics"
	"github.com/orderflow/orderflow/engine/store"
)

// DemoProducts is the development catalog seeded by `orderflow
// seed-demo-catalog` (and so by `make run`): a handful of groceries with
// prices in euro cents.
var DemoProducts = []store.Product{
	{SKU: "milk-1l", Name: "Milk 1 l", PriceCents: 119},
	{SKU: "bread-rye", Name: "Rye bread", PriceCents: 249},
	{SKU: "eggs-10", Name: "Eggs, 10", PriceCents: 329},
	{SKU: "apples-1kg", Name: "Apples 1 kg", PriceCents: 299},
	{SKU: "butter-250g", Name: "Butter 250 g", PriceCents: 239},
	{SKU: "coffee-500g", Name: "Coffee beans 500 g", PriceCents: 899},
	{SKU: "bananas-1kg", Name: "Bananas 1 kg", PriceCents: 179},
	{SKU: "cheese-gouda", Name: "Gouda 400 g", PriceCents: 449},
}

// SeedDemoCatalog connects to cfg.DatabaseURL, applies the migrations and
// upserts DemoProducts. It returns the number of products written.
func SeedDemoCatalog(ctx context.Context, cfg Config) (int, error) {
	cfg.fill()
	st, err := store.New(ctx, cfg.Store, metrics.New(), cfg.Logger)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return 0, err
	}
	if err := st.UpsertProducts(ctx, DemoProducts); err != nil {
		return 0, err
	}
	return len(DemoProducts), nil
}
