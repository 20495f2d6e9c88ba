package store

import (
	"context"
	"fmt"
)

// Product is one catalog row for UpsertProducts.
type Product struct {
	SKU        string
	Name       string
	PriceCents int64
	Inactive   bool
}

// UpsertProducts inserts or updates catalog rows (setting updated_at to
// now(), so running catalogs pick the change up on their next refresh).
// The catalog belongs to another service in production; this serves
// development seeding and tests. It blocks.
func (s *Store) UpsertProducts(ctx context.Context, products []Product) error {
	skus := make([]string, len(products))
	names := make([]string, len(products))
	prices := make([]int64, len(products))
	active := make([]bool, len(products))
	for i, p := range products {
		skus[i], names[i], prices[i], active[i] = p.SKU, p.Name, p.PriceCents, !p.Inactive
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO products (sku, name, price_cents, active, updated_at)
SELECT sku, name, price, active, now() FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bool[]) AS p(sku, name, price, active)
ON CONFLICT (sku) DO UPDATE SET name = excluded.name, price_cents = excluded.price_cents,
  active = excluded.active, updated_at = excluded.updated_at`, skus, names, prices, active)
	if err != nil {
		return fmt.Errorf("upsert %d products: %w", len(products), err)
	}
	return nil
}
