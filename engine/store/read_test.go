package store

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/orderflow/orderflow/engine/order"
	"github.com/orderflow/orderflow/internal/pgtest"
)

func TestGetOrder(t *testing.T) {
	s, url, _ := newTestStore(t)
	ctx := context.Background()
	o := testOrder("ord_get", 5)
	s.WriteOrders(ctx, []*order.Batch{batchOf(o)})

	var got order.Order
	found, err := s.GetOrder(ctx, "ord_get", &got)
	if err != nil || !found {
		t.Fatalf("GetOrder(ord_get) = %v, %v; want found", found, err)
	}
	want := order.Order{
		ID: "ord_get", UserID: "u_42", Status: order.StatusCreated, Currency: "EUR", TotalCents: 487, Version: 1,
		Items: []order.Item{{SKU: "milk-1l", Qty: 2, PriceCents: 119}, {SKU: "bread-rye", Qty: 1, PriceCents: 249}},
	}
	if !got.CreatedAt.Equal(testCreated) || !got.UpdatedAt.Equal(testReceived) {
		t.Fatalf("GetOrder times: created %v updated %v; want %v %v", got.CreatedAt, got.UpdatedAt, testCreated, testReceived)
	}
	got.CreatedAt, got.UpdatedAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("GetOrder(ord_get) = %+v; want %+v", got, want)
	}

	// Items come back in line order whatever order the rows are stored in.
	pgtest.Exec(t, url, "UPDATE order_items SET line = 5 - line WHERE order_id = 'ord_get'")
	if _, err := s.GetOrder(ctx, "ord_get", &got); err != nil {
		t.Fatal(err)
	}
	if got.Items[0].SKU != "bread-rye" {
		t.Fatalf("items not in line order: %+v", got.Items)
	}

	dst := order.Order{ID: "keep"}
	found, err = s.GetOrder(ctx, "nope", &dst)
	if err != nil || found {
		t.Fatalf("GetOrder(nope) = %v, %v; want not found, nil", found, err)
	}
	if dst.ID != "keep" {
		t.Fatalf("GetOrder(nope) modified dst: %+v", dst)
	}
}

func TestLoadProducts(t *testing.T) {
	s, url, _ := newTestStore(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pgtest.SeedProducts(t, url,
		pgtest.Product{SKU: "milk-1l", PriceCents: 119, UpdatedAt: t0},
		pgtest.Product{SKU: "bread-rye", PriceCents: 249, UpdatedAt: t0.Add(time.Hour)},
		pgtest.Product{SKU: "old-cheese", PriceCents: 999, Inactive: true, UpdatedAt: t0.Add(2 * time.Hour)},
	)
	type row struct {
		sku    string
		price  int64
		active bool
		at     time.Time
	}
	load := func(since time.Time) []row {
		t.Helper()
		var rows []row
		err := s.LoadProducts(context.Background(), since, func(sku string, price int64, active bool, at time.Time) {
			rows = append(rows, row{string([]byte(sku)), price, active, at.UTC()})
		})
		if err != nil {
			t.Fatalf("LoadProducts(%v): %v", since, err)
		}
		slices.SortFunc(rows, func(a, b row) int { return a.at.Compare(b.at) })
		return rows
	}
	all := load(time.Time{})
	want := []row{
		{"milk-1l", 119, true, t0},
		{"bread-rye", 249, true, t0.Add(time.Hour)},
		{"old-cheese", 999, false, t0.Add(2 * time.Hour)},
	}
	if !reflect.DeepEqual(all, want) {
		t.Fatalf("LoadProducts(zero) = %+v; want %+v", all, want)
	}
	if got := load(t0.Add(time.Hour)); !reflect.DeepEqual(got, want[1:]) {
		t.Fatalf("LoadProducts(t0+1h) = %+v; want %+v", got, want[1:])
	}
	if got := load(t0.Add(3 * time.Hour)); len(got) != 0 {
		t.Fatalf("LoadProducts(t0+3h) = %+v; want none", got)
	}
}

func TestUpsertProducts(t *testing.T) {
	s, _, _ := newTestStore(t)
	ctx := context.Background()
	if err := s.UpsertProducts(ctx, []Product{{SKU: "a", PriceCents: 100}, {SKU: "b", PriceCents: 200, Inactive: true}}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertProducts(ctx, []Product{{SKU: "a", PriceCents: 150}}); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	err := s.LoadProducts(ctx, time.Time{}, func(sku string, price int64, active bool, _ time.Time) {
		if active {
			got[string([]byte(sku))] = price
		}
	})
	if err != nil || len(got) != 1 || got["a"] != 150 {
		t.Fatalf("after upserts: active products %v, %v; want map[a:150]", got, err)
	}
}
