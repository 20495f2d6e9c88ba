package store

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/orderflow/orderflow/engine/order"
	"github.com/orderflow/orderflow/internal/pgtest"
)

// BenchmarkWriteOrders measures the group commit against the real database
// (pgtest): each iteration commits rows new orders of 3 items and a ~300-byte
// event each, in one WriteOrders call. rows/s is orders committed per second.
//
// method=copy sends the orders through COPY into the staging table,
// method=unnest as arrays (Config.CopyMinRows picks between them by batch
// size; these runs are what its default rests on).
func BenchmarkWriteOrders(b *testing.B) {
	for _, m := range []struct {
		name        string
		copyMinRows int
	}{{"copy", 1}, {"unnest", 1 << 30}} {
		for _, rows := range []int{1, 10, 100, 1000, 2000} {
			b.Run(fmt.Sprintf("method=%s/rows=%d", m.name, rows), func(b *testing.B) {
				benchWriteOrders(b, m.copyMinRows, rows)
			})
		}
	}
}

func benchWriteOrders(b *testing.B, copyMinRows, rows int) {
	{
		{
			s := newBenchStore(b, copyMinRows)
			event := make([]byte, 300)
			for i := range event {
				event[i] = 'a' + byte(i%26)
			}
			items := []order.Item{
				{SKU: "milk-1l", Qty: 2, PriceCents: 119},
				{SKU: "bread-rye", Qty: 1, PriceCents: 249},
				{SKU: "eggs-10", Qty: 1, PriceCents: 329},
			}
			batch := order.GetBatch()
			now := time.Now().UTC().Truncate(time.Microsecond)
			for range rows {
				batch.Orders = append(batch.Orders, order.Order{
					UserID: "u_42", Currency: "EUR", Items: items, CreatedAt: now, ReceivedAt: now,
					TotalCents: 816, Event: event,
				})
			}
			batches := []*order.Batch{batch}
			ctx := context.Background()
			var (
				seq   uint64
				idBuf []byte
				n     int
			)
			b.ReportAllocs()
			for b.Loop() {
				arena := batch.Arena()
				arena.Reset(order.MaxRetainedArena)
				for i := range batch.Orders {
					seq++
					idBuf = strconv.AppendUint(append(idBuf[:0], "ord_"...), seq, 36)
					batch.Orders[i].ID = arena.CopyString(idBuf)
					batch.Orders[i].Hash = seq
				}
				s.WriteOrders(ctx, batches)
				if r := batch.Orders[0].Result; r.Outcome != order.OutcomeCreated {
					b.Fatalf("outcome %v: %v", r.Outcome, r.Err)
				}
				n++
			}
			b.ReportMetric(float64(n*rows)/b.Elapsed().Seconds(), "rows/s")
		}
	}
}

func newBenchStore(b *testing.B, copyMinRows int) *Store {
	b.Helper()
	url := pgtest.New(b)
	s, err := New(context.Background(), Config{URL: url, CopyMinRows: copyMinRows}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	if err := s.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	return s
}
