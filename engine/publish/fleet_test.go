package publish

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/engine/metrics"
	"github.com/orderflow/orderflow/engine/order"
)

// fakeFleet is fakeOutbox with the store's fleet bookkeeping in memory:
// publishers' horizons, held orders, and the order in which holds and
// horizons were recorded.
type fakeFleet struct {
	*fakeOutbox
	mu        sync.Mutex
	nextID    int32
	horizons  map[int32]int64
	held      map[string]int64
	holdFails int      // fail this many HoldOrders calls
	log       []string // "hold <id>" and "horizon <pub> <h>", in call order
}

func newFakeFleet() *fakeFleet {
	return &fakeFleet{fakeOutbox: newFakeOutbox(), nextID: 1, horizons: map[int32]int64{}, held: map[string]int64{}}
}

func (f *fakeFleet) RegisterPublisher(context.Context) (int32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	return f.nextID, nil
}

func (f *fakeFleet) RecordHorizon(_ context.Context, id int32, h int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h > f.horizons[id] {
		f.horizons[id] = h
		f.log = append(f.log, fmt.Sprintf("horizon %d %d", id, h))
	}
	return nil
}

func (f *fakeFleet) AckEventsHorizon(ctx context.Context, seqs []int64, id int32, h int64) error {
	if err := f.AckEvents(ctx, seqs); err != nil {
		return err
	}
	return f.RecordHorizon(ctx, id, h)
}

func (f *fakeFleet) HoldOrders(_ context.Context, ids []string, seqs []int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.holdFails > 0 {
		f.holdFails--
		return errors.New("hold refused (test)")
	}
	for i, id := range ids {
		f.held[id] = max(f.held[id], seqs[i])
		f.log = append(f.log, "hold "+id)
	}
	return nil
}

func (f *fakeFleet) PublisherHorizons(_ context.Context, pubs []int32) ([]int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]int64, len(pubs))
	for i, p := range pubs {
		out[i] = f.horizons[p]
	}
	return out, nil
}

func (f *fakeFleet) BlockedOrders(_ context.Context, ids []string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, id := range ids {
		if _, ok := f.held[id]; ok {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func (f *fakeFleet) HeldOrders(context.Context) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return int64(len(f.held)), nil
}

func (f *fakeFleet) setHorizon(id int32, h int64) {
	f.mu.Lock()
	f.horizons[id] = h
	f.mu.Unlock()
}

func (f *fakeFleet) isHeld(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.held[id]
	return ok
}

func (f *fakeFleet) horizon(id int32) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.horizons[id]
}

// startFleetPublisher starts a publisher registered with f (its id is 2:
// publisher 1 is "another instance" whose horizon the test sets).
func startFleetPublisher(t *testing.T, cfg Config, f *fakeFleet) (*Publisher, *metrics.Metrics) {
	t.Helper()
	m := metrics.New()
	p, err := New(cfg, f, m, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Register(context.Background()); err != nil || p.ID() != 2 {
		t.Fatalf("Register: id %d, %v", p.ID(), err)
	}
	p.Start()
	shutdownAtCleanup(t, p)
	waitReady(t, p)
	return p, m
}

// The horizon covers a ticket only once every ticket up to it is resolved,
// in whatever order they resolve; handed tracks hand-backs the same way.
func TestTicketsHorizon(t *testing.T) {
	var ts tickets
	t1, t2, t3 := ts.begin(7), ts.begin(7), ts.begin(7)
	if t1.N() != 1 || t3.N() != 3 || t2.Publisher() != 7 {
		t.Fatalf("tickets %d %d %d of %d", t1.N(), t2.N(), t3.N(), t2.Publisher())
	}
	t2.pending.Add(1) // an event in flight
	ts.handBack(t2)
	ts.release(t2)
	ts.handBack(t3)
	ts.release(t3)
	if h, hd := ts.horizon.Load(), ts.handed.Load(); h != 0 || hd != 0 {
		t.Errorf("ticket 1 open: horizon %d, handed %d; want 0, 0", h, hd)
	}
	ts.handBack(t1)
	if hd := ts.handed.Load(); hd != 3 {
		t.Errorf("all handed back: handed %d; want 3", hd)
	}
	ts.release(t1)
	if h := ts.horizon.Load(); h != 1 {
		t.Errorf("ticket 2's event in flight: horizon %d; want 1", h)
	}
	ts.release(t2)
	if h := ts.horizon.Load(); h != 3 {
		t.Errorf("all resolved: horizon %d; want 3", h)
	}
	t4 := ts.begin(7)
	if h := ts.horizon.Load(); h != 3 || t4.N() != 4 {
		t.Errorf("after a new ticket: horizon %d (want 3), ticket %d (want 4)", h, t4.N())
	}
	// A transaction still running does not make the later ones wait.
	t5 := ts.begin(7)
	ts.handBack(t5)
	if !ts.isHandedBack(5) || ts.isHandedBack(4) || ts.isHandedBack(6) || !ts.isHandedBack(3) {
		t.Errorf("ticket 4 running, 5 handed back: isHandedBack 3..6 = %t %t %t %t; want true false true false",
			ts.isHandedBack(3), ts.isHandedBack(4), ts.isHandedBack(5), ts.isHandedBack(6))
	}
	ts.handBack(t4)
	ts.release(t4)
	ts.release(t5)
}

// An event whose previous version another publisher holds waits: published
// once that publisher's horizon covers the ticket (a later event of the
// order, with nothing to wait for, stays behind it), left to the sweeper
// when the order turns out held, or when the wait passes OrderWait.
func TestWaitForAnotherPublisher(t *testing.T) {
	e := startBroker(t, 4)
	f := newFakeFleet()
	cfg := testConfig(e)
	cfg.OrderWait = 400 * time.Millisecond
	cfg.SweepGrace = time.Hour // only the fast path publishes here
	p, m := startFleetPublisher(t, cfg, f)
	now := time.Now()
	var s eventSet
	s.add(1, 1, now)
	s.add(1, 2, now)
	s.add(1, 3, now)
	s.evs[1].After = order.After{Kind: order.AfterTicket, Publisher: 1, Ticket: 5}
	f.insert(now, s.evs[1:]...)
	p.PublishFor(p.Begin(), s.evs[:1], nil)
	consumeUntil(t, e, s.evs[:1], 5*time.Second)
	p.PublishFor(p.Begin(), s.evs[1:2], nil)
	p.PublishFor(p.Begin(), s.evs[2:], nil)
	want := s.snapshot()
	s.scribble()
	time.Sleep(100 * time.Millisecond)
	if n := f.len(); n != 2 || p.waiting.Load() != 2 {
		t.Fatalf("publisher 1 has not resolved ticket 5: %d events unpublished, %d waiting; want 2, 2", n, p.waiting.Load())
	}
	f.setHorizon(1, 5)
	checkRecords(t, consumeUntil(t, e, want, 5*time.Second), want)
	if v := val(m, "orderflow_publish_order_waits_total", "result", "published"); v != 1 {
		t.Errorf("waits published = %v; want 1", v)
	}

	// Ticket 6 resolved by holding the order: the sweeper's.
	var h eventSet
	h.add(2, 2, now)
	h.add(3, 2, now)
	h.evs[0].After = order.After{Kind: order.AfterTicket, Publisher: 1, Ticket: 6}
	h.evs[1].After = order.After{Kind: order.AfterTicket, Publisher: 1, Ticket: 99}
	f.insert(now, h.evs...)
	tk := p.Begin()
	p.PublishFor(tk, h.evs, nil)
	f.mu.Lock()
	f.held["ord_00002"] = h.evs[0].Seq - 1
	f.horizons[1] = 6
	f.mu.Unlock()
	waitFor(t, "the held order's event left to the sweeper", 5*time.Second, func() bool {
		return val(m, "orderflow_publish_order_waits_total", "result", "held") == 1
	})
	// Ticket 99 never resolves: after OrderWait, the sweeper's too.
	waitFor(t, "the stuck wait given up", 5*time.Second, func() bool {
		return val(m, "orderflow_publish_order_waits_total", "result", "held") == 2 && f.isHeld("ord_00003")
	})
	if p.waiting.Load() != 0 || f.len() != 2 {
		t.Errorf("after both waits ended: %d waiting, %d unpublished; want 0, 2 (left to the sweeper)", p.waiting.Load(), f.len())
	}
	waitFor(t, "the holds' ticket resolved and recorded", 5*time.Second, func() bool { return f.horizon(2) >= tk.N() })
}

// With several writers, the transaction of version 1 may hand its ticket
// back after the one of version 2 (which waits for it): version 1 must
// still reach the topic first.
func TestWaitForOwnTicketKeepsVersionOrder(t *testing.T) {
	e := startBroker(t, 4)
	f := newFakeFleet()
	p, _ := startFleetPublisher(t, testConfig(e), f)
	now := time.Now()
	var s eventSet
	for o := range 20 {
		s.add(o, 1, now)
		s.add(o, 2, now)
	}
	f.insert(now, s.evs...)
	want := s.snapshot()
	for o := range 20 {
		v1, v2 := s.evs[2*o:2*o+1], s.evs[2*o+1:2*o+2]
		tk1, tk2 := p.Begin(), p.Begin()
		v2[0].After = order.After{Kind: order.AfterTicket, Publisher: p.ID(), Ticket: tk1.N()}
		p.PublishFor(tk2, v2, nil)
		p.PublishFor(tk1, v1, nil)
	}
	s.scribble()
	checkRecords(t, consumeUntil(t, e, want, 5*time.Second), want)
}

// A hold is committed before the horizon that counts on it: while the store
// refuses the hold, the horizon stays below the ticket.
func TestHoldBeforeHorizon(t *testing.T) {
	e := startBroker(t, 4)
	f := newFakeFleet()
	f.holdFails = 1 << 30
	p, _ := startFleetPublisher(t, testConfig(e), f)
	now := time.Now()
	var s eventSet
	s.add(1, 2, now)
	s.evs[0].After = order.After{Kind: order.AfterHeld}
	f.insert(now, s.evs...)
	tk := p.Begin()
	n := tk.N()
	p.PublishFor(tk, s.evs, []string{"ord_unsure"})
	time.Sleep(100 * time.Millisecond) // a dozen keeper passes, every hold refused
	if h, rec := p.tickets.horizon.Load(), f.horizon(2); h >= n || rec >= n {
		t.Errorf("holds refused: horizon %d, recorded %d; want both below ticket %d", h, rec, n)
	}
	f.mu.Lock()
	f.holdFails = 0
	f.mu.Unlock()
	waitFor(t, "holds committed and horizon recorded", 5*time.Second, func() bool { return f.horizon(2) >= n })
	f.mu.Lock()
	log := slices.Clone(f.log)
	f.mu.Unlock()
	hold := slices.IndexFunc(log, func(l string) bool { return l == "hold ord_00001" })
	unsure := slices.IndexFunc(log, func(l string) bool { return l == "hold ord_unsure" })
	horizon := slices.IndexFunc(log, func(l string) bool {
		var id int32
		var h int64
		_, err := fmt.Sscanf(l, "horizon %d %d", &id, &h)
		return err == nil && id == 2 && h >= n
	})
	if hold < 0 || unsure < 0 || horizon < hold || horizon < unsure {
		t.Errorf("calls %s: want both holds before the horizon reaches ticket %d", strings.Join(log, ", "), n)
	}
	if f.len() != 1 {
		t.Errorf("the held order's event was published by the fast path")
	}
}
