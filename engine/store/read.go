package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/orderflow/orderflow/engine/internal/bytesutil"
	"github.com/orderflow/orderflow/engine/order"
)

const getOrderSQL = `SELECT o.id, o.user_id, o.status, o.currency, o.total_cents, o.version, o.created_at, o.updated_at,
       i.sku, i.qty, i.price_cents
FROM orders o LEFT JOIN order_items i ON i.order_id = o.id
WHERE o.id = $1
ORDER BY i.line`

// GetOrder reads the order id with its items (in line order) into dst, which
// it overwrites: ID, UserID, Status, Currency, TotalCents, Version,
// CreatedAt, UpdatedAt and Items (SKU, Qty, PriceCents). found is false, with
// a nil error, when there is no such order. dst's strings and Items are
// newly allocated (GET is not the hot path) and owned by the caller. Safe for
// concurrent use.
func (s *Store) GetOrder(ctx context.Context, id string, dst *order.Order) (found bool, err error) {
	rows, err := s.pool.Query(ctx, getOrderSQL, id)
	if err != nil {
		return false, fmt.Errorf("get order: %w", err)
	}
	defer rows.Close()
	var (
		o      order.Order
		status string
		sku    pgtype.Text
		qty    pgtype.Int4
		price  pgtype.Int8
	)
	for rows.Next() {
		if !found {
			if err := rows.Scan(&o.ID, &o.UserID, &status, &o.Currency, &o.TotalCents, &o.Version,
				&o.CreatedAt, &o.UpdatedAt, &sku, &qty, &price); err != nil {
				return false, fmt.Errorf("get order: %w", err)
			}
			found = true
			st, ok := order.ParseStatus(status)
			if !ok {
				return false, fmt.Errorf("get order %q: unknown status %q in the database", id, status)
			}
			o.Status = st
		} else if err := rows.Scan(nil, nil, nil, nil, nil, nil, nil, nil, &sku, &qty, &price); err != nil {
			return false, fmt.Errorf("get order: %w", err)
		}
		if sku.Valid { // LEFT JOIN: an order without items has one row of NULLs
			o.Items = append(o.Items, order.Item{SKU: sku.String, Qty: int64(qty.Int32), PriceCents: price.Int64})
		}
	}
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("get order: %w", err)
	}
	if found {
		*dst = o
	}
	return found, nil
}

const (
	loadProductsSQL      = `SELECT sku, price_cents, active, updated_at FROM products`
	loadProductsSinceSQL = loadProductsSQL + ` WHERE updated_at >= $1`
)

// LoadProducts calls fn for every product with updated_at ≥ since (every
// product when since is zero), in no particular order. The sku passed to fn
// is a view into the driver's row buffer, valid only during that fn call:
// copy it to keep it. An incremental refresh should pass the largest
// updatedAt it saw (≥ includes rows committed with that same timestamp, so a
// few rows may be seen twice). Safe for concurrent use; it does not allocate
// per row.
func (s *Store) LoadProducts(ctx context.Context, since time.Time, fn func(sku string, priceCents int64, active bool, updatedAt time.Time)) error {
	sql, args := loadProductsSQL, []any(nil)
	if !since.IsZero() {
		sql, args = loadProductsSinceSQL, []any{since}
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("load products: %w", err)
	}
	defer rows.Close()
	var (
		price     int64
		active    bool
		updatedAt time.Time
	)
	for rows.Next() {
		if err := rows.Scan(nil, &price, &active, &updatedAt); err != nil {
			return fmt.Errorf("load products: %w", err)
		}
		fn(bytesutil.String(rows.RawValues()[0]), price, active, updatedAt)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load products: %w", err)
	}
	return nil
}
