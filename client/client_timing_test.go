package client_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderflow/orderflow/client"
	"github.com/orderflow/orderflow/internal/enginetest"
)

// BenchmarkCreateOrder64Callers: 64 goroutines create b.N orders in all
// against a real server (own database, in-process broker), each call
// waiting for its commit, with CreateOrder (batcher=off) or through a
// Batcher (batcher=on). Reports orders/s and the callers' p99 latency.
//
//	go test -run XXX -bench CreateOrder64Callers -benchtime 20000x -count 10 ./client/
func BenchmarkCreateOrder64Callers(b *testing.B) {
	s := enginetest.Start(b)
	run := 0
	for _, batched := range []bool{false, true} {
		name := "batcher=off"
		if batched {
			name = "batcher=on"
		}
		b.Run(name, func(b *testing.B) {
			run++
			c := newBenchClient(b, s)
			var bt *client.Batcher
			if batched {
				bt = c.NewBatcher(client.BatcherConfig{})
				defer bt.Close(context.Background())
			}
			const callers = 64
			var next atomic.Int64
			lat := make([][]time.Duration, callers)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for g := range callers {
				wg.Go(func() {
					for {
						n := next.Add(1)
						if n > int64(b.N) {
							return
						}
						o := order(fmt.Sprintf("bench_%d_%d_%d", run, b.N, n))
						t0 := time.Now()
						var err error
						if bt != nil {
							_, err = bt.CreateOrder(context.Background(), o)
						} else {
							_, err = c.CreateOrder(context.Background(), o)
						}
						if err != nil {
							b.Error(err)
							return
						}
						lat[g] = append(lat[g], time.Since(t0))
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			all := slices.Concat(lat...)
			slices.Sort(all)
			if len(all) > 0 {
				b.ReportMetric(float64(len(all))/elapsed.Seconds(), "orders/s")
				b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}

// newBenchClient is a client of s without the spec checks (they would
// dominate the measurement).
func newBenchClient(b *testing.B, s *enginetest.Instance) *client.Client {
	c, err := client.New(client.Config{BaseURL: s.URL})
	if err != nil {
		b.Fatal(err)
	}
	return c
}
