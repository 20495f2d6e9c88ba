package loadtest

import (
	"testing"

	"github.com/orderflow/orderflow/internal/enginetest"
)

// TestStatusScenario: orders are prepared in bulk before measuring, every
// measured request is a status change along StatusChain, and the state
// checks match the server; when the prepared orders run out, workers create
// more and go on.
func TestStatusScenario(t *testing.T) {
	s := enginetest.StartFake(t, nil)
	res, _ := mustRun(t, Config{Target: s.URL, Conns: 3, Scenario: ScenarioStatus, StatusOrders: 2500, MaxRequests: 300, Duration: untilMax})
	c := res.Report.Counts
	if s.Stats().Bulk != 3 || len(res.AckedIDs()) != 2500 {
		t.Fatalf("%d bulk requests, %d acked ids; want 3 (1000, 1000, 500) and 2500", s.Stats().Bulk, len(res.AckedIDs()))
	}
	if c.Updates.Acked != 300 || c.Orders.Sent != 0 || res.Report.UpdateLatency == nil || res.Report.UpdateLatency.Count != 300 {
		t.Fatalf("counts %+v; want 300 acknowledged status changes and no order measured", c)
	}
	checkStates(t, s, res)

	s2 := enginetest.StartFake(t, nil)
	res, _ = mustRun(t, Config{Target: s2.URL, Conns: 2, Scenario: ScenarioStatus, StatusOrders: 5, MaxRequests: 100, Duration: untilMax})
	c = res.Report.Counts
	if c.Orders.Acked == 0 || c.Updates.Acked+c.Orders.Acked != 100 || s2.Stats().Updates != c.Updates.Acked {
		t.Fatalf("counts %+v, server saw %d updates; want new orders once the 5 prepared ones are delivered", c, s2.Stats().Updates)
	}
	checkStates(t, s2, res)
}

func checkStates(t *testing.T, s *enginetest.FakeServer, res *Result) {
	t.Helper()
	checks := res.StateChecks()
	if len(checks) == 0 {
		t.Fatal("no state checks")
	}
	for _, sc := range checks {
		if got := s.Version(sc.ID); got != int(sc.Version) || sc.Status != StatusChain[got-2] {
			t.Fatalf("%s: check %+v; server at version %d", sc.ID, sc, got)
		}
	}
}
