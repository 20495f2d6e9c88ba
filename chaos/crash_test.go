package chaos

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/enginetest"
)

// TestCrashKillRestart runs the real binary under load (orders and status
// changes from several goroutines, unique ids), SIGKILLs it at random
// moments — half of the kills right after a burst of 2xx, while the outbox
// holds rows that were committed but not yet published — restarts it on the
// same ports and keeps loading. At the end every request whose outcome was
// unknown is retried with the same id/key/target until it is answered 2xx,
// the outbox must drain, and reconciliation must find 0 acknowledged orders
// or versions missing, 0 duplicated rows, every committed order and status
// version (acknowledged or not) on the topic, in an order a consumer
// deduping on ce_id can follow. The broker lives in the test process, so it
// survives the kills.
//
// Seen failing: with ingest answering 201 right after TrySubmit instead of
// after the commit (a mutation of engine/ingest/server.go in a scratch
// copy), one short run reported "lost 7" (acknowledged orders not in
// orders) and 44 status changes of those orders answered 404. To watch the
// sweeper path fail: CHAOS_SERVER_FLAGS="-kafka.sweep-interval 1h" leaves the
// rows of killed servers in the outbox ("timed out … outbox empty").
func TestCrashKillRestart(t *testing.T) {
	cluster := enginetest.NewBroker(t)
	dbURL := enginetest.NewDatabase(t)
	srv := newServerProc(t, dbURL, cluster.ListenAddrs())
	srv.start()

	ld := newLoader(func() string { return srv.base }, "ck_", pick(6, 8), 0.35)
	ld.start()
	stopped := false
	defer func() {
		if !stopped {
			ld.stop()
		}
	}()

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	budget := pick(6*time.Second, 100*time.Second)
	var kills, nonEmpty, burstKills int
	var outboxAtKill int64
	begin := time.Now()
	for time.Since(begin) < budget || kills < 3 {
		time.Sleep(time.Duration(200+rng.IntN(1000)) * time.Millisecond)
		burst := kills%2 == 1
		if burst {
			// Kill right after a burst of acknowledgements: the rows of the
			// orders just committed are most likely still in the outbox.
			from := ld.acks.Load()
			deadline := time.Now().Add(2 * time.Second)
			for ld.acks.Load() < from+20 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			burstKills++
		}
		n, _ := outboxCount(dbURL)
		srv.kill()
		kills++
		outboxAtKill += n
		if n > 0 {
			nonEmpty++
		}
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		srv.start()
	}
	ld.stop()
	stopped = true
	loadFor := time.Since(begin)

	retried := ld.resolve(t, 60*time.Second)
	drain := waitFor(t, 60*time.Second, "outbox empty after the last restart", func() bool {
		n, ok := outboxCount(dbURL)
		return ok && n == 0
	})
	swept, _ := series(srv.hc, srv.admin, `orderflow_events_published_total{path="sweep",result="ok"}`)
	acked := ld.ackedCopy()
	res := reconcile(t, dbURL, cluster.ListenAddrs(), "ck_", acked, 60*time.Second, true)
	ld.checkNoBad(t)

	numbers := fmt.Sprintf("%v of load, %d kill cycles (%d right after a 2xx burst), %d kills with a non-empty outbox (%d rows in total), requests %d (%s), unknown outcomes %d, retried to 2xx %d; %s; outbox drained %v after the load stopped; last instance swept %v events",
		loadFor.Round(time.Second), kills, burstKills, nonEmpty, outboxAtKill, ld.requests.Load(), ld.codesString(), ld.unknown.Load(), retried, res, drain.Round(10*time.Millisecond), swept)
	appendResult(t, "TestCrashKillRestart", numbers)

	if res.Lost != 0 || res.VersionLost != 0 || res.Duplicated != 0 || res.Unpublished != 0 || res.OutOfOrder != 0 || res.Outbox != 0 {
		t.Errorf("reconciliation failed: %s; examples: %q", res, res.examples)
	}
	if res.Acked < 100 {
		t.Errorf("only %d orders acknowledged: the load did not run, the test proves little", res.Acked)
	}
	if nonEmpty == 0 {
		t.Errorf("no kill happened with a non-empty outbox: the commit→publish window was never hit")
	}
	if swept == 0 {
		t.Errorf("the last instance swept nothing: leftovers of killed instances were not republished by the sweeper")
	}
}
