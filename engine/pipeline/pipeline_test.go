package pipeline

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testItem is an Item whose size is configurable and whose Complete is
// counted and signalled through done.
type testItem struct {
	id, rows, bytes int

	result    int          // set by testSink.Write; read after done
	completes atomic.Int32 // Complete calls
	done      chan struct{}
}

func newItem(id, rows, bytes int) *testItem {
	return &testItem{id: id, rows: rows, bytes: bytes, done: make(chan struct{})}
}

func (it *testItem) Len() int   { return it.rows }
func (it *testItem) Bytes() int { return it.bytes }
func (it *testItem) Complete() {
	if it.completes.Add(1) == 1 {
		close(it.done)
	}
}

// resultFor is the result testSink sets on an item.
func resultFor(id int) int { return id*10 + 7 }

// testSink records every batch (as item ids), sets a result on each item and,
// while gate is open (not closed), blocks every Write on it.
type testSink struct {
	gate    chan struct{} // nil: never block; else Write waits until closed
	entered chan struct{} // if non-nil, receives one value per Write (buffered)

	openOnce sync.Once

	mu        sync.Mutex
	batches   [][]int
	at        []time.Time     // time.Now() at each Write
	deadlines []time.Duration // ctx deadline - time.Now() at each Write
}

func (s *testSink) Write(ctx context.Context, batch []*testItem) {
	now := time.Now()
	dl, ok := ctx.Deadline()
	ids := make([]int, len(batch))
	for i, it := range batch {
		ids[i] = it.id
	}
	s.mu.Lock()
	s.batches = append(s.batches, ids)
	s.at = append(s.at, now)
	if ok {
		s.deadlines = append(s.deadlines, dl.Sub(now))
	} else {
		s.deadlines = append(s.deadlines, -1)
	}
	s.mu.Unlock()
	if s.entered != nil {
		s.entered <- struct{}{}
	}
	if s.gate != nil {
		<-s.gate
	}
	for _, it := range batch {
		it.result = resultFor(it.id)
	}
}

// open releases every blocked and future Write. Idempotent.
func (s *testSink) open() {
	s.openOnce.Do(func() {
		if s.gate != nil {
			close(s.gate)
		}
	})
}

func (s *testSink) Batches() [][]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.batches)
}

func (s *testSink) At(i int) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.at[i]
}

func (s *testSink) Deadline(i int) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deadlines[i]
}

func newTestPipeline(t *testing.T, cfg Config, s *testSink) *Pipeline[*testItem] {
	t.Helper()
	p, err := New[*testItem](cfg, s)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	// On failure, unblock and drain so that the test (or its synctest
	// bubble) does not leave writers behind. Close is idempotent.
	t.Cleanup(func() {
		s.open()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

func mustSubmit(t *testing.T, p *Pipeline[*testItem], it *testItem) {
	t.Helper()
	if err := p.TrySubmit(it); err != nil {
		t.Fatalf("TrySubmit(item %d, rows=%d): %v", it.id, it.rows, err)
	}
}

func waitDone(t *testing.T, it *testItem) {
	t.Helper()
	select {
	case <-it.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("item %d never completed", it.id)
	}
	if it.result != resultFor(it.id) {
		t.Fatalf("item %d: result %d; want %d (set by the sink before Complete)", it.id, it.result, resultFor(it.id))
	}
}

func closeNow(t *testing.T, p *Pipeline[*testItem]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestSubmitConcurrentCompletesEachItemOnce(t *testing.T) {
	const submitters, perSubmitter = 16, 300
	s := &testSink{}
	p := newTestPipeline(t, Config{Writers: 3, QueueRows: 256, MaxBatchRows: 32, MaxBatchBytes: 1000}, s)
	p.Start()

	items := make([]*testItem, submitters*perSubmitter)
	for i := range items {
		items[i] = newItem(i, 1+i%4, 10+i%50)
	}
	var overloaded atomic.Int64
	var wg sync.WaitGroup
	for g := range submitters {
		wg.Go(func() {
			for i := g * perSubmitter; i < (g+1)*perSubmitter; i++ {
				it := items[i]
				for {
					err := p.TrySubmit(it)
					if err == nil {
						break
					}
					if !errors.Is(err, ErrOverloaded) {
						t.Errorf("TrySubmit(item %d): %v", it.id, err)
						return
					}
					overloaded.Add(1)
					time.Sleep(10 * time.Microsecond)
				}
				if i%3 == 0 { // some submitters wait like handlers, some pile up
					<-it.done
				}
			}
		})
	}
	wg.Wait()
	closeNow(t, p)

	seen := make([]int, len(items))
	for _, b := range s.Batches() {
		for _, id := range b {
			seen[id]++
		}
	}
	for i, it := range items {
		if n := it.completes.Load(); n != 1 {
			t.Fatalf("item %d: Complete called %d times; want 1", i, n)
		}
		if it.result != resultFor(i) {
			t.Fatalf("item %d: result %d; want %d", i, it.result, resultFor(i))
		}
		if seen[i] != 1 {
			t.Fatalf("item %d: written %d times; want 1", i, seen[i])
		}
	}
	if d := p.Depth(); d != 0 {
		t.Fatalf("Depth after Close = %d; want 0", d)
	}
	t.Logf("%d items in %d batches, %d overloaded retries", len(items), len(s.Batches()), overloaded.Load())
}

// TestBatchLimits queues items behind a blocked plug so that one writer sees
// them all at once, then checks how they are cut into batches.
func TestBatchLimits(t *testing.T) {
	type sz struct{ rows, bytes int }
	f := func(maxRows, maxBytes int, items []sz, want [][]int) {
		t.Helper()
		s := &testSink{gate: make(chan struct{}), entered: make(chan struct{}, 100)}
		p := newTestPipeline(t, Config{Writers: 1, QueueRows: 1000, MaxBatchRows: maxRows, MaxBatchBytes: maxBytes}, s)
		p.Start()
		plug := newItem(-1, 1, 1)
		mustSubmit(t, p, plug)
		<-s.entered // the writer holds the plug alone
		var its []*testItem
		for i, z := range items {
			it := newItem(i, z.rows, z.bytes)
			its = append(its, it)
			mustSubmit(t, p, it)
		}
		s.open()
		for _, it := range its {
			waitDone(t, it)
		}
		closeNow(t, p)
		got := s.Batches()[1:]
		if !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("maxRows=%d maxBytes=%d items=%v: batches %v; want %v", maxRows, maxBytes, items, got, want)
		}
		// Independent of want: limits hold except for a lone item, FIFO kept.
		var order []int
		for _, b := range got {
			rows, bytes := 0, 0
			for _, id := range b {
				rows += items[id].rows
				bytes += items[id].bytes
			}
			if len(b) > 1 && (rows > maxRows || bytes > maxBytes) {
				t.Fatalf("items=%v: batch %v has %d rows, %d bytes; limits %d, %d", items, b, rows, bytes, maxRows, maxBytes)
			}
			order = append(order, b...)
		}
		if !slices.IsSorted(order) || len(order) != len(items) {
			t.Fatalf("items=%v: batches %v do not keep FIFO order", items, got)
		}
	}
	// Everything fits: natural batching takes all queued items at once.
	f(10, 1000, []sz{{1, 10}, {1, 10}, {1, 10}}, [][]int{{0, 1, 2}})
	// Row limit, exactly reached then exceeded.
	f(3, 1000, []sz{{1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}}, [][]int{{0, 1, 2}, {3, 4}})
	f(4, 1000, []sz{{2, 1}, {3, 1}, {1, 1}, {2, 1}}, [][]int{{0}, {1, 2}, {3}})
	// Byte limit.
	f(100, 100, []sz{{1, 40}, {1, 60}, {1, 1}}, [][]int{{0, 1}, {2}})
	f(100, 100, []sz{{1, 60}, {1, 60}, {1, 60}}, [][]int{{0}, {1}, {2}})
	// An oversized item goes alone, by rows or by bytes; FIFO is kept, so a
	// small item behind it is not pulled forward.
	f(5, 100, []sz{{1, 1}, {9, 1}, {1, 1}}, [][]int{{0}, {1}, {2}})
	f(5, 100, []sz{{1, 1}, {1, 500}, {1, 1}, {1, 1}}, [][]int{{0}, {1}, {2, 3}})
	f(5, 100, []sz{{9, 500}}, [][]int{{0}})
}

func TestNaturalBatching(t *testing.T) {
	s := &testSink{gate: make(chan struct{}), entered: make(chan struct{}, 100)}
	p := newTestPipeline(t, Config{Writers: 1, MaxBatchRows: 100}, s)
	p.Start()
	first := newItem(0, 1, 1)
	mustSubmit(t, p, first)
	<-s.entered
	var its []*testItem
	for i := 1; i <= 50; i++ {
		it := newItem(i, 1, 1)
		its = append(its, it)
		mustSubmit(t, p, it)
	}
	if d := p.Depth(); d != 50 {
		t.Fatalf("Depth with the sink blocked = %d; want 50", d)
	}
	s.open()
	for _, it := range its {
		waitDone(t, it)
	}
	closeNow(t, p)
	got := s.Batches()
	if len(got) != 2 || len(got[0]) != 1 || len(got[1]) != 50 {
		t.Fatalf("batch sizes: %v; want [[0] [1..50]]", got)
	}
}

func TestOverload(t *testing.T) {
	s := &testSink{gate: make(chan struct{}), entered: make(chan struct{}, 100)}
	p := newTestPipeline(t, Config{Writers: 1, QueueRows: 10, MaxBatchRows: 10}, s)
	p.Start()
	plug := newItem(-1, 1, 1)
	mustSubmit(t, p, plug)
	<-s.entered // the only writer is stuck; the queue is empty

	// Into an empty queue, an item larger than QueueRows is admitted...
	big := newItem(100, 25, 1)
	mustSubmit(t, p, big)
	// ...and then nothing else fits.
	small := newItem(101, 1, 1)
	if err := p.TrySubmit(small); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("TrySubmit(1 row) behind a 25-row item, QueueRows=10: %v; want ErrOverloaded", err)
	}
	s.open() // now the sink never blocks again
	waitDone(t, plug)
	waitDone(t, big)
	closeNow(t, p)
	if small.completes.Load() != 0 {
		t.Fatalf("a refused item was completed")
	}
}

func TestOverloadFailsFast(t *testing.T) {
	s := &testSink{gate: make(chan struct{}), entered: make(chan struct{}, 100)}
	p := newTestPipeline(t, Config{Writers: 1, QueueRows: 10, MaxBatchRows: 5}, s)
	p.Start()
	plug := newItem(-1, 1, 1)
	mustSubmit(t, p, plug)
	<-s.entered

	var queued []*testItem
	for i := range 4 {
		it := newItem(i, 2, 1)
		mustSubmit(t, p, it)
		queued = append(queued, it)
	}
	// 8 rows queued: 2 more fit, 3 do not.
	f := func(rows int, wantErr error) {
		t.Helper()
		it := newItem(50+rows, rows, 1)
		before := p.Depth()
		// The writer is held until s.open, so a TrySubmit that waited for
		// room would never return: a deadline catches it without timing it.
		done := make(chan error, 1)
		go func() { done <- p.TrySubmit(it) }()
		var err error
		select {
		case err = <-done:
		case <-time.After(30 * time.Second):
			s.open()
			t.Fatalf("TrySubmit(rows=%d) at depth %d/10 still blocked after 30s with the writer held; want it to fail fast", rows, before)
		}
		if !errors.Is(err, wantErr) {
			t.Fatalf("TrySubmit(rows=%d) at depth %d/10: %v; want %v", rows, before, err, wantErr)
		}
		if err != nil && p.Depth() != before {
			t.Fatalf("TrySubmit(rows=%d) failed but depth went %d -> %d", rows, before, p.Depth())
		}
		if err == nil {
			queued = append(queued, it)
		}
	}
	f(3, ErrOverloaded)
	f(11, ErrOverloaded) // larger than QueueRows, queue not empty
	f(2, nil)            // exactly full
	f(1, ErrOverloaded)
	if err := p.TrySubmit(newItem(99, 1, 1)); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("TrySubmit on a full queue: %v", err)
	}
	if d := p.Depth(); d != 10 {
		t.Fatalf("Depth = %d; want 10", d)
	}
	s.open()
	for _, it := range queued {
		waitDone(t, it)
	}
	closeNow(t, p)
}

// A queue holding only zero-row items is not empty: an item larger than
// QueueRows must wait until it is.
func TestOversizedItemOnlyIntoEmptyQueue(t *testing.T) {
	s := &testSink{gate: make(chan struct{}), entered: make(chan struct{}, 100)}
	p := newTestPipeline(t, Config{Writers: 1, QueueRows: 10, MaxBatchRows: 10}, s)
	p.Start()
	plug := newItem(-1, 1, 1)
	mustSubmit(t, p, plug)
	<-s.entered
	empty := newItem(0, 0, 1)
	mustSubmit(t, p, empty)
	if err := p.TrySubmit(newItem(1, 11, 1)); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("TrySubmit(11 rows > QueueRows) behind a queued 0-row item: %v; want ErrOverloaded", err)
	}
	s.open()
	waitDone(t, empty)
	closeNow(t, p)
}

func TestCloseFlushesQueued(t *testing.T) {
	s := &testSink{gate: make(chan struct{}), entered: make(chan struct{}, 100)}
	p := newTestPipeline(t, Config{Writers: 2, MaxBatchRows: 7}, s)
	p.Start()
	var its []*testItem
	for i := range 40 {
		it := newItem(i, 1, 1)
		its = append(its, it)
		mustSubmit(t, p, it)
	}
	<-s.entered
	<-s.entered // both writers are stuck with a batch each

	closed := make(chan error, 1)
	go func() { closed <- p.Close(context.Background()) }()
	// Intake stops as soon as Close begins.
	for i := 1000; ; i++ {
		it := newItem(i, 1, 1)
		err := p.TrySubmit(it)
		if errors.Is(err, ErrClosed) {
			break
		}
		if err != nil {
			t.Fatalf("TrySubmit during Close: %v", err)
		}
		its = append(its, it) // accepted before Close began: must be flushed too
		runtime.Gosched()
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v while the sink was blocked", err)
	case <-time.After(20 * time.Millisecond):
	}
	s.open()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, it := range its {
		if it.completes.Load() != 1 {
			t.Fatalf("item %d not completed when Close returned", it.id)
		}
		waitDone(t, it)
	}
	if err := p.TrySubmit(newItem(1001, 1, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("TrySubmit after Close: %v; want ErrClosed", err)
	}
	// Double Close: nothing left to do.
	closeNow(t, p)
}

func TestCloseContextExpired(t *testing.T) {
	s := &testSink{gate: make(chan struct{}), entered: make(chan struct{}, 100)}
	p := newTestPipeline(t, Config{Writers: 1, MaxBatchRows: 4}, s)
	p.Start()
	var its []*testItem
	for i := range 10 {
		it := newItem(i, 1, 1)
		its = append(its, it)
		mustSubmit(t, p, it)
	}
	<-s.entered

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	err := p.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close(expiring ctx) with the sink blocked: %v; want context.DeadlineExceeded", err)
	}
	if err := p.TrySubmit(newItem(99, 1, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("TrySubmit after a timed-out Close: %v; want ErrClosed", err)
	}
	s.open()
	for _, it := range its {
		waitDone(t, it) // the writers kept draining in the background
	}
	closeNow(t, p) // waits for the writers: no goroutine leak
	if got := len(s.Batches()); got != 3 {
		t.Fatalf("%d batches; want 3 (4+4+2 rows)", got)
	}
}

func TestCloseBeforeStart(t *testing.T) {
	s := &testSink{}
	p := newTestPipeline(t, Config{}, s)
	closeNow(t, p)
	closeNow(t, p)
	if err := p.TrySubmit(newItem(0, 1, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("TrySubmit after Close before Start: %v; want ErrClosed", err)
	}
	if len(s.Batches()) != 0 {
		t.Fatalf("sink called: %v", s.Batches())
	}
}

func TestStartTwicePanics(t *testing.T) {
	p := newTestPipeline(t, Config{Writers: 1}, &testSink{})
	p.Start()
	defer closeNow(t, p)
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "BUG") {
			t.Fatalf("second Start: recovered %v; want a BUG panic", r)
		}
	}()
	p.Start()
}

func TestLinger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &testSink{}
		p := newTestPipeline(t, Config{Writers: 1, MaxBatchRows: 10, Linger: 5 * time.Millisecond}, s)
		p.Start()
		start := time.Now()
		var its []*testItem
		for i := range 3 {
			it := newItem(i, 1, 1)
			its = append(its, it)
			mustSubmit(t, p, it)
		}
		synctest.Wait()
		if b := s.Batches(); len(b) != 0 {
			t.Fatalf("committed %v at once; want a 5ms linger", b)
		}
		time.Sleep(4 * time.Millisecond)
		mustSubmit(t, p, newItem(3, 1, 1)) // does not restart the linger
		synctest.Wait()
		if b := s.Batches(); len(b) != 0 {
			t.Fatalf("committed %v after 4ms; want 5ms", b)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if b := s.Batches(); len(b) != 1 || len(b[0]) != 4 {
			t.Fatalf("after 5ms: batches %v; want one of 4 items", b)
		}
		if at := s.At(0).Sub(start); at != 5*time.Millisecond {
			t.Fatalf("committed after %v; want 5ms", at)
		}
		for _, it := range its {
			waitDone(t, it)
		}
		closeNow(t, p)
	})
}

func TestLingerFullBatchCommitsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &testSink{}
		p := newTestPipeline(t, Config{Writers: 1, MaxBatchRows: 10, Linger: 5 * time.Millisecond}, s)
		p.Start()
		start := time.Now()
		mustSubmit(t, p, newItem(0, 3, 1))
		synctest.Wait() // the writer lingers
		mustSubmit(t, p, newItem(1, 7, 1))
		synctest.Wait()
		b := s.Batches()
		if len(b) != 1 || len(b[0]) != 2 {
			t.Fatalf("batches %v; want [[0 1]] as soon as 10 rows are queued", b)
		}
		if at := s.At(0).Sub(start); at != 0 {
			t.Fatalf("a full batch committed after %v; want at once", at)
		}
		closeNow(t, p)
	})
}

func TestLingerFullBytesCommitsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &testSink{}
		p := newTestPipeline(t, Config{Writers: 1, MaxBatchRows: 10, MaxBatchBytes: 100, Linger: 5 * time.Millisecond}, s)
		p.Start()
		start := time.Now()
		mustSubmit(t, p, newItem(0, 1, 40))
		synctest.Wait() // the writer lingers
		mustSubmit(t, p, newItem(1, 1, 60))
		synctest.Wait()
		b := s.Batches()
		if len(b) != 1 || len(b[0]) != 2 {
			t.Fatalf("batches %v; want [[0 1]] as soon as MaxBatchBytes is queued", b)
		}
		if at := s.At(0).Sub(start); at != 0 {
			t.Fatalf("a batch at MaxBatchBytes committed after %v; want at once", at)
		}
		closeNow(t, p)
	})
}

func TestLingerClosedCommitsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &testSink{}
		p := newTestPipeline(t, Config{Writers: 2, MaxBatchRows: 10, Linger: time.Hour}, s)
		p.Start()
		start := time.Now()
		it := newItem(0, 1, 1)
		mustSubmit(t, p, it)
		synctest.Wait()
		closeNow(t, p)
		waitDone(t, it)
		if at := s.At(0).Sub(start); at != 0 {
			t.Fatalf("Close flushed after %v; want at once", at)
		}
	})
}

func TestNoLingerCommitsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &testSink{}
		p := newTestPipeline(t, Config{Writers: 1, MaxBatchRows: 10}, s)
		p.Start()
		start := time.Now()
		it := newItem(0, 1, 1)
		mustSubmit(t, p, it)
		synctest.Wait()
		if b := s.Batches(); len(b) != 1 {
			t.Fatalf("batches %v; want one at once with Linger=0", b)
		}
		if at := s.At(0).Sub(start); at != 0 {
			t.Fatalf("committed after %v; want at once", at)
		}
		waitDone(t, it)
		closeNow(t, p)
	})
}

func TestWriteTimeout(t *testing.T) {
	f := func(cfg Config, want time.Duration) {
		t.Helper()
		synctest.Test(t, func(t *testing.T) {
			s := &testSink{}
			p := newTestPipeline(t, cfg, s)
			p.Start()
			it := newItem(0, 1, 1)
			mustSubmit(t, p, it)
			waitDone(t, it)
			closeNow(t, p)
			if got := s.Deadline(0); got != want {
				t.Fatalf("WriteTimeout=%v: sink ctx deadline %v away; want %v", cfg.WriteTimeout, got, want)
			}
		})
	}
	f(Config{WriteTimeout: 3 * time.Second}, 3*time.Second)
	f(Config{WriteTimeout: 250 * time.Millisecond, Linger: time.Millisecond}, 250*time.Millisecond)
	f(Config{}, 10*time.Second)
}

// recorder collects OnDepth/OnBatch calls.
type recorder struct {
	mu      sync.Mutex
	depths  []int
	batches [][2]int
}

func (r *recorder) depth(n int) {
	r.mu.Lock()
	r.depths = append(r.depths, n)
	r.mu.Unlock()
}

func (r *recorder) batch(rows, bytes int) {
	r.mu.Lock()
	r.batches = append(r.batches, [2]int{rows, bytes})
	r.mu.Unlock()
}

func TestHooks(t *testing.T) {
	r := &recorder{}
	s := &testSink{gate: make(chan struct{}), entered: make(chan struct{}, 100)}
	p := newTestPipeline(t, Config{Writers: 1, MaxBatchRows: 100, OnDepth: r.depth, OnBatch: r.batch}, s)
	p.Start()
	plug := newItem(-1, 2, 7)
	mustSubmit(t, p, plug)
	<-s.entered
	var its []*testItem
	for i, z := range [][2]int{{1, 10}, {2, 20}, {3, 30}} {
		it := newItem(i, z[0], z[1])
		its = append(its, it)
		mustSubmit(t, p, it)
	}
	s.open()
	for _, it := range its {
		waitDone(t, it)
	}
	closeNow(t, p)
	r.mu.Lock()
	defer r.mu.Unlock()
	if want := []int{2, 0, 1, 3, 6, 0}; !slices.Equal(r.depths, want) {
		t.Fatalf("OnDepth calls %v; want %v", r.depths, want)
	}
	if want := [][2]int{{2, 7}, {6, 60}}; !slices.Equal(r.batches, want) {
		t.Fatalf("OnBatch calls %v; want %v", r.batches, want)
	}
}

// TestOnDepthOrdered makes a submitter slow inside OnDepth while a second
// submit lets the writer take everything: the depth the slow submitter
// reports must not overwrite the newer depth the writer reported meanwhile,
// or the gauge stays stale (non-zero on an idle pipeline).
func TestOnDepthOrdered(t *testing.T) {
	s := &testSink{entered: make(chan struct{}, 100)}
	var (
		mu     sync.Mutex
		last   = -1
		calls  atomic.Int32
		inHook = make(chan struct{})
	)
	onDepth := func(n int) {
		if calls.Add(1) == 1 { // first submitter: give the writer a chance to overtake it
			close(inHook)
			select {
			case <-s.entered:
			case <-time.After(50 * time.Millisecond):
			}
		}
		mu.Lock()
		last = n
		mu.Unlock()
	}
	p := newTestPipeline(t, Config{Writers: 1, OnDepth: onDepth}, s)
	p.Start()
	a, b := newItem(0, 1, 1), newItem(1, 1, 1)
	go func() { mustSubmit(t, p, a) }()
	<-inHook
	mustSubmit(t, p, b)
	waitDone(t, a)
	waitDone(t, b)
	closeNow(t, p)
	mu.Lock()
	defer mu.Unlock()
	if d := p.Depth(); last != d {
		t.Fatalf("last OnDepth(%d); Depth() = %d: the gauge is stale", last, d)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for nil
	}{
		{"zero", Config{}, ""},
		{"defaults", DefaultConfig(), ""},
		{"negative writers", Config{Writers: -1}, "-pipeline.writers"},
		{"negative queue", Config{QueueRows: -1}, "-pipeline.queue-rows"},
		{"negative batch rows", Config{MaxBatchRows: -1}, "-pipeline.batch-max-rows"},
		{"negative batch bytes", Config{MaxBatchBytes: -1}, "-pipeline.batch-max-bytes"},
		{"negative linger", Config{Linger: -time.Millisecond}, "-pipeline.linger"},
		{"negative write timeout", Config{WriteTimeout: -time.Second}, "-pipeline.write-timeout"},
		{"batch rows above queue rows", Config{QueueRows: 10, MaxBatchRows: 11}, "-pipeline.batch-max-rows (11) must not exceed -pipeline.queue-rows (10)"},
		{"batch rows equal queue rows", Config{QueueRows: 10, MaxBatchRows: 10}, ""},
		{"batch rows above default queue rows", Config{MaxBatchRows: 20001}, "-pipeline.queue-rows (20000)"},
		{"default batch rows above queue rows", Config{QueueRows: 100}, "-pipeline.batch-max-rows (2000) must not exceed -pipeline.queue-rows (100)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate(%+v): %v; want nil", tt.cfg, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate(%+v): %v; want an error containing %q", tt.cfg, err, tt.want)
			}
			if _, nerr := New[*testItem](tt.cfg, &testSink{}); nerr == nil {
				t.Fatalf("New(%+v) accepted a config Validate rejects", tt.cfg)
			}
		})
	}
}

func TestZeroConfigTakesDefaults(t *testing.T) {
	p := newTestPipeline(t, Config{Name: "orders"}, &testSink{})
	want := DefaultConfig()
	want.Name = "orders"
	got := p.cfg
	if got.Writers != want.Writers || got.QueueRows != want.QueueRows || got.MaxBatchRows != want.MaxBatchRows ||
		got.MaxBatchBytes != want.MaxBatchBytes || got.Linger != want.Linger || got.WriteTimeout != want.WriteTimeout {
		t.Fatalf("New(Config{}) uses %+v; want %+v", got, want)
	}
	if c := p.Capacity(); c != 20000 {
		t.Fatalf("Capacity() = %d; want 20000", c)
	}
	// Set fields are kept.
	p = newTestPipeline(t, Config{Writers: 5, QueueRows: 50, MaxBatchRows: 50, MaxBatchBytes: 9, Linger: 3, WriteTimeout: 4}, &testSink{})
	if c := p.cfg; c.Writers != 5 || c.QueueRows != 50 || c.MaxBatchRows != 50 || c.MaxBatchBytes != 9 || c.Linger != 3 || c.WriteTimeout != 4 {
		t.Fatalf("New kept %+v", c)
	}
}

func TestNoGoroutineLeftAfterClose(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := &testSink{}
	p := newTestPipeline(t, Config{Writers: 4, Linger: time.Millisecond}, s)
	p.Start()
	it := newItem(0, 1, 1)
	mustSubmit(t, p, it)
	waitDone(t, it)
	closeNow(t, p)
}

// BusyLinger: while one writer commits, another that finds a partial batch
// waits for that commit to end and then commits everything queued meanwhile
// as one batch, not a row at a time.
func TestBusyLingerWaitsForTheCommitInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &testSink{gate: make(chan struct{})}
		p := newTestPipeline(t, Config{Writers: 2, MaxBatchRows: 10, BusyLinger: 5 * time.Millisecond}, s)
		p.Start()
		mustSubmit(t, p, newItem(0, 1, 1))
		synctest.Wait() // one writer took it and is committing (the gate holds it)
		for i := 1; i <= 3; i++ {
			mustSubmit(t, p, newItem(i, 1, 1))
		}
		time.Sleep(2 * time.Millisecond)
		synctest.Wait()
		if b := s.Batches(); len(b) != 1 {
			t.Fatalf("batches %v with a commit in flight; want the other writer to wait for it", b)
		}
		released := time.Now()
		s.open()
		synctest.Wait()
		b := s.Batches()
		if len(b) != 2 || len(b[1]) != 3 {
			t.Fatalf("batches %v; want [[0] [1 2 3]]: what queued during the commit, as one batch", b)
		}
		if at := s.At(1).Sub(released); at != 0 {
			t.Fatalf("the second batch committed %v after the first ended; want at once", at)
		}
		closeNow(t, p)
	})
}

// BusyLinger is a bound: a commit that takes longer does not hold the other
// writer back past it.
func TestBusyLingerIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &testSink{gate: make(chan struct{})}
		p := newTestPipeline(t, Config{Writers: 2, MaxBatchRows: 10, BusyLinger: 5 * time.Millisecond}, s)
		p.Start()
		mustSubmit(t, p, newItem(0, 1, 1))
		synctest.Wait()
		start := time.Now()
		mustSubmit(t, p, newItem(1, 1, 1))
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		b := s.Batches()
		if len(b) != 2 || len(b[1]) != 1 || b[1][0] != 1 {
			t.Fatalf("batches %v; want [[0] [1]] with the first commit still in flight", b)
		}
		if at := s.At(1).Sub(start); at != 5*time.Millisecond {
			t.Fatalf("the second batch committed after %v; want the 5ms bound", at)
		}
		s.open()
		closeNow(t, p)
	})
}

// With no commit in flight a request never waits, whatever BusyLinger is;
// and a full batch goes at once even while another commits.
func TestBusyLingerIdleOrFullCommitsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &testSink{gate: make(chan struct{})}
		p := newTestPipeline(t, Config{Writers: 2, MaxBatchRows: 10, BusyLinger: time.Hour}, s)
		p.Start()
		start := time.Now()
		mustSubmit(t, p, newItem(0, 1, 1))
		synctest.Wait()
		if b := s.Batches(); len(b) != 1 || s.At(0) != start {
			t.Fatalf("batches %v; want the lone request committed at once", b)
		}
		mustSubmit(t, p, newItem(1, 4, 1))
		mustSubmit(t, p, newItem(2, 6, 1))
		synctest.Wait()
		if b := s.Batches(); len(b) != 2 || len(b[1]) != 2 || s.At(1) != start {
			t.Fatalf("batches %v; want a full batch (10 rows) committed at once beside the commit in flight", b)
		}
		s.open()
		closeNow(t, p)
	})
}
