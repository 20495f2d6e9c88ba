package loadtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// statusServer stands in for orderflow's POST /v1/order-batches, POST
// /v1/orders and POST /v1/orders/{id}/status on a loopback port, with the
// status machine's order (each change must be the next of StatusChain).
type statusServer struct {
	url      string
	mu       sync.Mutex
	versions map[string]int // id → version (1: created)
	updates  int
	bulk     int
}

func startStatusServer(t *testing.T) *statusServer {
	t.Helper()
	s := &statusServer{versions: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: s.handle}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	s.url = "http://" + ln.Addr().String()
	return s
}

func (s *statusServer) handle(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case path == "/v1/order-batches":
		s.bulk++
		var res []string
		sc := bufio.NewScanner(bytes.NewReader(ctx.PostBody()))
		for i := 0; sc.Scan(); i++ {
			var o struct{ ID string }
			_ = json.Unmarshal(sc.Bytes(), &o)
			s.versions[o.ID] = 1
			res = append(res, fmt.Sprintf(`{"index":%d,"id":%q,"status":201}`, i, o.ID))
		}
		ctx.SetBodyString(`{"results":[` + strings.Join(res, ",") + `]}`)
	case path == "/v1/orders":
		var o struct{ ID string }
		_ = json.Unmarshal(ctx.PostBody(), &o)
		s.versions[o.ID] = 1
		ctx.SetStatusCode(fasthttp.StatusCreated)
	case strings.HasPrefix(path, "/v1/orders/") && strings.HasSuffix(path, "/status"):
		id := strings.TrimSuffix(strings.TrimPrefix(path, "/v1/orders/"), "/status")
		var b struct{ Status string }
		_ = json.Unmarshal(ctx.PostBody(), &b)
		v, ok := s.versions[id]
		switch {
		case !ok:
			ctx.SetStatusCode(fasthttp.StatusNotFound)
		case v-1 >= len(StatusChain) || StatusChain[v-1] != b.Status:
			ctx.SetStatusCode(fasthttp.StatusConflict)
		default:
			s.versions[id] = v + 1
			s.updates++
			ctx.SetBodyString(fmt.Sprintf(`{"id":%q,"status":%q,"version":%d}`, id, b.Status, v+1))
		}
	default:
		ctx.SetStatusCode(fasthttp.StatusNotFound)
	}
}

// TestStatusScenario: orders are prepared in bulk before measuring, every
// measured request is a status change along StatusChain, and the state
// checks match the server; when the prepared orders run out, workers create
// more and go on.
func TestStatusScenario(t *testing.T) {
	s := startStatusServer(t)
	res, _ := mustRun(t, Config{Target: s.url, Conns: 3, Scenario: ScenarioStatus, StatusOrders: 2500, MaxRequests: 300, Duration: 20 * time.Second})
	c := res.Report.Counts
	if s.bulk != 3 || len(res.AckedIDs()) != 2500 {
		t.Fatalf("%d bulk requests, %d acked ids; want 3 (1000, 1000, 500) and 2500", s.bulk, len(res.AckedIDs()))
	}
	if c.Updates.Acked != 300 || c.Orders.Sent != 0 || res.Report.UpdateLatency == nil || res.Report.UpdateLatency.Count != 300 {
		t.Fatalf("counts %+v; want 300 acknowledged status changes and no order measured", c)
	}
	checkStates(t, s, res)

	s2 := startStatusServer(t)
	res, _ = mustRun(t, Config{Target: s2.url, Conns: 2, Scenario: ScenarioStatus, StatusOrders: 5, MaxRequests: 100, Duration: 20 * time.Second})
	c = res.Report.Counts
	if c.Orders.Acked == 0 || c.Updates.Acked+c.Orders.Acked != 100 || s2.updates != int(c.Updates.Acked) {
		t.Fatalf("counts %+v, server saw %d updates; want new orders once the 5 prepared ones are delivered", c, s2.updates)
	}
	checkStates(t, s2, res)
}

func checkStates(t *testing.T, s *statusServer, res *Result) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	checks := res.StateChecks()
	if len(checks) == 0 {
		t.Fatal("no state checks")
	}
	for _, sc := range checks {
		if got := s.versions[sc.ID]; got != int(sc.Version) || sc.Status != StatusChain[got-2] {
			t.Fatalf("%s: check %+v; server at version %d", sc.ID, sc, got)
		}
	}
}
