package store

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/orderflow/orderflow/engine/order"
)

// TestWireParamsMatchPgx decodes every parameter wireParams encodes with
// pgx's own binary codecs and compares it with the orders: the hand-written
// array format is what PostgreSQL reads. Equal ids after the first are left
// out; a missing idempotency key is NULL; far quantities become 0.
func TestWireParamsMatchPgx(t *testing.T) {
	var set []*order.Order
	for i := range 5 {
		o := testOrder(fmt.Sprintf("ord_%03d", i/2*2), uint64(i)) // ids 0,0,2,2,4
		if i == 2 {
			o.IdempotencyKey = "key-2"
			tp, ok := order.ParseTraceParent([]byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
			if !ok {
				t.Fatal("ParseTraceParent refused a valid traceparent")
			}
			o.TraceParent, o.TraceState = tp, "congo=t61rcWkgMzE"
		}
		if i == 4 {
			o.Items = append(o.Items, order.Item{SKU: "ünïcode", Qty: 1 << 40, PriceCents: -5})
			o.CreatedAt = time.Date(1999, 12, 31, 23, 59, 59, 999_999_000, time.UTC) // before PostgreSQL's epoch
		}
		set = append(set, &o)
	}
	var p wireParams
	vals := p.fill(set, 7, 1<<40+3)
	if len(vals) != 18 {
		t.Fatalf("%d parameters; want 18", len(vals))
	}
	m := pgtype.NewMap()
	scan := func(i int, oid uint32, dst any) {
		t.Helper()
		if err := m.Scan(oid, pgtype.BinaryFormatCode, vals[i], dst); err != nil {
			t.Fatalf("parameter $%d: %v", i+1, err)
		}
	}
	var (
		ids, users, currencies, itemOrders, skus []string
		keys                                     []pgtype.Text
		totals, hashes, prices                   []int64
		created, received                        []time.Time
		lines, qtys                              []int32
		payloads                                 [][]byte
		parents, states                          []pgtype.Text
	)
	var pub int32
	var ticket int64
	scan(16, pgtype.Int4OID, &pub)
	scan(17, pgtype.Int8OID, &ticket)
	if pub != 7 || ticket != 1<<40+3 {
		t.Errorf("ticket = %d/%d; want 7/%d", pub, ticket, int64(1<<40+3))
	}
	scan(0, pgtype.TextArrayOID, &ids)
	scan(1, pgtype.TextArrayOID, &users)
	scan(2, pgtype.TextArrayOID, &currencies)
	scan(3, pgtype.Int8ArrayOID, &totals)
	scan(4, pgtype.TimestamptzArrayOID, &created)
	scan(5, pgtype.TimestamptzArrayOID, &received)
	scan(6, pgtype.TextArrayOID, &keys)
	scan(7, pgtype.Int8ArrayOID, &hashes)
	scan(8, pgtype.TextArrayOID, &itemOrders)
	scan(9, pgtype.Int4ArrayOID, &lines)
	scan(10, pgtype.TextArrayOID, &skus)
	scan(11, pgtype.Int4ArrayOID, &qtys)
	scan(12, pgtype.Int8ArrayOID, &prices)
	scan(13, pgtype.ByteaArrayOID, &payloads)
	scan(14, pgtype.TextArrayOID, &parents)
	scan(15, pgtype.TextArrayOID, &states)

	uniq := []*order.Order{set[0], set[2], set[4]}
	if want := []string{"ord_000", "ord_002", "ord_004"}; !slices.Equal(ids, want) {
		t.Fatalf("ids = %v; want %v (the first of each id)", ids, want)
	}
	var wantItemOrders, wantSKUs []string
	var wantLines, wantQtys []int32
	var wantPrices []int64
	for k, o := range uniq {
		if users[k] != o.UserID || currencies[k] != o.Currency || totals[k] != o.TotalCents || hashes[k] != int64(o.Hash) {
			t.Errorf("order %d: %q %q %d %d; want %q %q %d %d", k, users[k], currencies[k], totals[k], hashes[k], o.UserID, o.Currency, o.TotalCents, o.Hash)
		}
		if !created[k].Equal(o.CreatedAt) || !received[k].Equal(o.ReceivedAt) {
			t.Errorf("order %d: times %v %v; want %v %v", k, created[k], received[k], o.CreatedAt, o.ReceivedAt)
		}
		if keys[k].Valid != (o.IdempotencyKey != "") || keys[k].String != o.IdempotencyKey {
			t.Errorf("order %d: key %+v; want %q (NULL when empty)", k, keys[k], o.IdempotencyKey)
		}
		if string(payloads[k]) != string(o.Event) {
			t.Errorf("order %d: payload %q; want %q", k, payloads[k], o.Event)
		}
		if parents[k].Valid != o.TraceParent.Valid() || (o.TraceParent.Valid() && parents[k].String != string(o.TraceParent[:])) {
			t.Errorf("order %d: traceparent %+v; want %q (NULL when none)", k, parents[k], o.TraceParent[:])
		}
		if states[k].Valid != (o.TraceState != "") || states[k].String != o.TraceState {
			t.Errorf("order %d: tracestate %+v; want %q (NULL when none)", k, states[k], o.TraceState)
		}
		for line, it := range o.Items {
			wantItemOrders = append(wantItemOrders, o.ID)
			wantLines = append(wantLines, int32(line))
			wantSKUs = append(wantSKUs, it.SKU)
			wantQtys = append(wantQtys, qty32(it.Qty))
			wantPrices = append(wantPrices, it.PriceCents)
		}
	}
	if !slices.Equal(itemOrders, wantItemOrders) || !slices.Equal(lines, wantLines) || !slices.Equal(skus, wantSKUs) ||
		!slices.Equal(qtys, wantQtys) || !slices.Equal(prices, wantPrices) {
		t.Errorf("items = %v %v %v %v %v; want %v %v %v %v %v", itemOrders, lines, skus, qtys, prices,
			wantItemOrders, wantLines, wantSKUs, wantQtys, wantPrices)
	}
	if qtys[len(qtys)-1] != 0 {
		t.Errorf("a quantity beyond int32 encoded as %d; want 0 (refused by the CHECK)", qtys[len(qtys)-1])
	}

	// An empty set encodes empty arrays.
	vals = p.fill(nil, 0, 0)
	var empty []string
	if err := m.Scan(pgtype.TextArrayOID, pgtype.BinaryFormatCode, vals[0], &empty); err != nil || len(empty) != 0 {
		t.Fatalf("empty ids: %v %v", empty, err)
	}
}
