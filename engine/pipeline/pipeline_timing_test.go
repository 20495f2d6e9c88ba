package pipeline

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// benchParallelism × GOMAXPROCS submitters wait for their item at once, like
// handlers waiting for their commit. With only GOMAXPROCS submitters there
// would be at most 2 items in flight and nothing to batch.
const benchParallelism = 16

// benchItem is reused by one submitter: Complete signals done (size 1: one
// item in flight per submitter).
type benchItem struct {
	result int
	done   chan struct{}
}

func newBenchItem() *benchItem   { return &benchItem{done: make(chan struct{}, 1)} }
func (it *benchItem) Len() int   { return 1 }
func (it *benchItem) Bytes() int { return 256 }
func (it *benchItem) Complete()  { it.done <- struct{}{} }
func (it *benchItem) submitAndWait(sub func(*benchItem) bool) {
	for !sub(it) {
		runtime.Gosched() // overloaded: retry, as a load generator would
	}
	<-it.done
}

// noopSink sets a result and commits nothing: the benchmarks measure the
// hand-off cost, not a database.
type noopSink struct{}

func (noopSink) Write(_ context.Context, batch []*benchItem) {
	for _, it := range batch {
		it.result = 1
	}
}

const benchWriteTimeout = 10 * time.Second

// BenchmarkSubmit measures TrySubmit + wait for Complete through a no-op
// sink, against two designs without batching:
//   - impl=goroutine_per_item: a goroutine per item calls the sink with a
//     1-item batch;
//   - impl=worker_pool: N workers read a buffered channel, 1 item at a time.
//
// Every impl gives each Write a ctx with a WriteTimeout, as the real sink needs.
func BenchmarkSubmit(b *testing.B) {
	sink := noopSink{}
	for _, w := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("impl=pipeline/writers=%d", w), func(b *testing.B) {
			p, err := New[*benchItem](Config{Writers: w, WriteTimeout: benchWriteTimeout}, sink)
			if err != nil {
				b.Fatal(err)
			}
			p.Start()
			submit := func(it *benchItem) bool { return p.TrySubmit(it) == nil }
			b.ReportAllocs()
			b.SetParallelism(benchParallelism)
			b.RunParallel(func(pb *testing.PB) {
				it := newBenchItem()
				for pb.Next() {
					it.submitAndWait(submit)
				}
			})
			b.StopTimer()
			if err := p.Close(context.Background()); err != nil {
				b.Fatal(err)
			}
		})
	}

	b.Run("impl=goroutine_per_item", func(b *testing.B) {
		var wg sync.WaitGroup
		submit := func(it *benchItem) bool {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), benchWriteTimeout)
				sink.Write(ctx, []*benchItem{it})
				cancel()
				it.Complete()
			})
			return true
		}
		b.ReportAllocs()
		b.SetParallelism(benchParallelism)
		b.RunParallel(func(pb *testing.PB) {
			it := newBenchItem()
			for pb.Next() {
				it.submitAndWait(submit)
			}
		})
		b.StopTimer()
		wg.Wait()
	})

	for _, w := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("impl=worker_pool/writers=%d", w), func(b *testing.B) {
			// Buffered like the pipeline's queue; a full channel is "overloaded".
			ch := make(chan *benchItem, 1024)
			var wg sync.WaitGroup
			for range w {
				wg.Go(func() {
					one := make([]*benchItem, 1)
					for it := range ch {
						one[0] = it
						ctx, cancel := context.WithTimeout(context.Background(), benchWriteTimeout)
						sink.Write(ctx, one)
						cancel()
						it.Complete()
					}
				})
			}
			submit := func(it *benchItem) bool {
				select {
				case ch <- it:
					return true
				default:
					return false
				}
			}
			b.ReportAllocs()
			b.SetParallelism(benchParallelism)
			b.RunParallel(func(pb *testing.PB) {
				it := newBenchItem()
				for pb.Next() {
					it.submitAndWait(submit)
				}
			})
			b.StopTimer()
			close(ch)
			wg.Wait()
		})
	}
}
