package engine_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/internal/enginetest"
	"github.com/orderflow/orderflow/internal/pgtest"
)

const (
	traceIn  = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	traceIn2 = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
	stateIn  = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
)

// traceHeaders returns a record's traceparent and tracestate headers as
// "traceparent|tracestate", each "-" when absent, and fails on a header
// sent twice.
func traceHeaders(t *testing.T, r *kgo.Record) string {
	t.Helper()
	got := map[string][]string{}
	for _, h := range r.Headers {
		got[h.Key] = append(got[h.Key], string(h.Value))
	}
	one := func(k string) string {
		switch len(got[k]) {
		case 0:
			return "-"
		case 1:
			return got[k][0]
		}
		t.Fatalf("record %s: header %s %d times", r.Key, k, len(got[k]))
		return ""
	}
	return one("traceparent") + "|" + one("tracestate")
}

// byCeID maps each record's ce_id to its trace headers.
func byCeID(t *testing.T, recs []*kgo.Record) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, r := range recs {
		out[enginetest.Header(r, "ce_id")] = traceHeaders(t, r)
	}
	return out
}

// Through the real listener, PostgreSQL and the broker: a request's
// traceparent and tracestate become the headers of every event its change
// produces (a created order, a status change, each item of both bulk
// endpoints); a request without one, or with an invalid one (still
// answered 2xx), produces events without them.
func TestTraceContextReachesTheTopic(t *testing.T) {
	env := newEnv(t, nil)
	tp := []string{"traceparent", traceIn, "tracestate", stateIn}
	if r := env.post(orderJSON("ord_tc1"), tp...); r.code != http.StatusCreated {
		t.Fatalf("POST with a traceparent: %s", r)
	}
	if r := env.post(orderJSON("ord_tc2")); r.code != http.StatusCreated {
		t.Fatalf("POST without: %s", r)
	}
	if r := env.post(orderJSON("ord_tc3"), "traceparent", "00-"+strings.Repeat("0", 32)+"-00f067aa0ba902b7-01", "tracestate", stateIn); r.code != http.StatusCreated {
		t.Fatalf("POST with an invalid traceparent: %s; want 201 (it is ignored)", r)
	}
	if r := env.post(orderJSON("ord_tc4"), "traceparent", traceIn2, "tracestate", "a=1,a=2"); r.code != http.StatusCreated {
		t.Fatalf("POST with an invalid tracestate: %s", r)
	}
	// A retry of ord_tc1 with another trace context is a duplicate: no new event.
	if r := env.post(orderJSON("ord_tc1"), "traceparent", traceIn2); r.code != http.StatusOK {
		t.Fatalf("retry: %s; want 200", r)
	}
	status := func(id string, hdr ...string) {
		t.Helper()
		r := do(t, http.MethodPost, env.URL+"/v1/orders/"+id+"/status", "application/json", []byte(`{"status":"paid"}`), hdr...)
		if r.code != http.StatusOK {
			t.Fatalf("status %s: %s", id, r)
		}
	}
	status("ord_tc1", "traceparent", traceIn2)
	status("ord_tc2", tp...)
	bulk := orderJSON("ord_tc5") + "\n" + orderJSON("ord_tc6") + "\n"
	if r := do(t, http.MethodPost, env.URL+"/v1/order-batches", "application/x-ndjson", []byte(bulk), tp...); r.code != http.StatusOK || !strings.Contains(string(r.body), `"created":2`) {
		t.Fatalf("order batch: %s", r)
	}
	upd := `{"id":"ord_tc5","status":"paid"}` + "\n" + `{"id":"ord_tc6","status":"cancelled"}` + "\n" + `{"id":"ord_tc3","status":"paid"}` + "\n"
	if r := do(t, http.MethodPost, env.URL+"/v1/status-updates", "application/x-ndjson", []byte(upd), "traceparent", traceIn2); r.code != http.StatusOK || !strings.Contains(string(r.body), `"created":3`) {
		t.Fatalf("status updates: %s", r)
	}

	want := map[string]string{
		"ord_tc1/1": traceIn + "|" + stateIn,
		"ord_tc2/1": "-|-",
		"ord_tc3/1": "-|-",
		"ord_tc4/1": traceIn2 + "|-",
		"ord_tc1/2": traceIn2 + "|-",
		"ord_tc2/2": traceIn + "|" + stateIn,
		"ord_tc5/1": traceIn + "|" + stateIn,
		"ord_tc6/1": traceIn + "|" + stateIn,
		"ord_tc5/2": traceIn2 + "|-",
		"ord_tc6/2": traceIn2 + "|-",
		"ord_tc3/2": traceIn2 + "|-",
	}
	recs := env.Consume(t, "ord_tc", len(want)+1, 6*time.Second)
	if got := byCeID(t, recs); fmt.Sprint(got) != fmt.Sprint(want) || len(recs) != len(want) {
		t.Fatalf("trace headers by event (%d records):\n got %v\nwant %v", len(recs), got, want)
	}
	m := string(do(t, http.MethodGet, env.AdminURL+"/metrics", "", nil).body)
	for _, s := range []string{`orderflow_trace_context_invalid_total{header="traceparent"} 1`, `orderflow_trace_context_invalid_total{header="tracestate"} 1`} {
		if !strings.Contains(m, s+"\n") {
			t.Errorf("/metrics: want %s", s)
		}
	}
}

// A server that dies between commit and publish does not lose the trace
// context: the next server's sweeper publishes the events from the outbox
// with their traceparent and tracestate headers.
func TestTraceContextSurvivesServerLoss(t *testing.T) {
	a := enginetest.Start(t)
	cluster, dbURL := a.Broker, a.DatabaseURL
	down := enginetest.KafkaSwitch(cluster)
	down.Store(true)
	hdr := []string{"traceparent", traceIn, "tracestate", stateIn}
	if r := do(t, http.MethodPost, a.URL+"/v1/orders", "application/json", []byte(orderJSON("ord_ts1")), hdr...); r.code != http.StatusCreated {
		t.Fatalf("POST while Kafka is down: %s", r)
	}
	if r := do(t, http.MethodPost, a.URL+"/v1/orders/ord_ts1/status", "application/json", []byte(`{"status":"paid"}`), "traceparent", traceIn2); r.code != http.StatusOK {
		t.Fatalf("status while Kafka is down: %s", r)
	}
	if r := do(t, http.MethodPost, a.URL+"/v1/orders", "application/json", []byte(orderJSON("ord_ts2"))); r.code != http.StatusCreated {
		t.Fatalf("POST while Kafka is down: %s", r)
	}
	// The server goes away before it could publish.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = a.Engine.Shutdown(ctx)
	cancel()
	if got := pgtest.Int64(t, dbURL, `SELECT count(*) FROM outbox WHERE traceparent IS NOT NULL`); got != 2 {
		t.Fatalf("outbox rows with a traceparent after the loss = %d; want 2", got)
	}
	down.Store(false)
	b := enginetest.Start(t, enginetest.WithDatabase(dbURL), enginetest.WithBroker(cluster))
	recs := b.Consume(t, "ord_ts", 3, 30*time.Second)
	want := map[string]string{
		"ord_ts1/1": traceIn + "|" + stateIn,
		"ord_ts1/2": traceIn2 + "|-",
		"ord_ts2/1": "-|-",
	}
	if got := byCeID(t, recs); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("trace headers of swept events:\n got %v\nwant %v", got, want)
	}
	m := string(do(t, http.MethodGet, b.AdminURL+"/metrics", "", nil).body)
	if !strings.Contains(m, `orderflow_events_published_total{path="sweep",result="ok"} 3`+"\n") {
		t.Errorf("/metrics of the second server: want the 3 events published by its sweeper")
	}
}
