package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestImportsStandardLibraryOnly: the package (not its tests) imports
// nothing outside the standard library, so a service that imports it does
// not pull in the server, fasthttp, pgx or franz-go.
func TestImportsStandardLibraryOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if p != "github.com/orderflow/orderflow/client" {
			t.Errorf("client depends on %s; want the standard library only", p)
		}
	}
}

// scripted is an HTTP server that answers each request with the next of
// its answers and records what it received: it pins the client's retry
// decisions without depending on server timing.
type scripted struct {
	mu      sync.Mutex
	answers []scriptedAnswer
	got     []scriptedRequest
}

type scriptedAnswer struct {
	status     int
	retryAfter string
	body       string
	hangUp     bool // close the connection without answering
}

type scriptedRequest struct {
	at      time.Time
	body    string
	idemKey string
	auth    string
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.got = append(s.got, scriptedRequest{time.Now(), string(b), r.Header.Get("Idempotency-Key"), r.Header.Get("Authorization")})
	a := s.answers[min(len(s.got), len(s.answers))-1]
	s.mu.Unlock()
	if a.hangUp {
		c, _, _ := w.(http.Hijacker).Hijack()
		c.Close()
		return
	}
	if a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.body)
}

func (s *scripted) requests() []scriptedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]scriptedRequest(nil), s.got...)
}

func newScripted(t *testing.T, answers ...scriptedAnswer) (*scripted, *Client) {
	t.Helper()
	s := &scripted{answers: answers}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c, err := New(Config{BaseURL: srv.URL, APIKey: "k_0123456789abcdef", MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

const createdBody = `{"id":"ord_1","status":"created","total_cents":487,"currency":"EUR"}`

var testOrder = Order{ID: "ord_1", UserID: "u_42", Items: []Item{{SKU: "milk-1l", Qty: 2}}, IdempotencyKey: "key-1"}

func TestRetriesUntilCommittedWithTheSameRequest(t *testing.T) {
	s, c := newScripted(t,
		scriptedAnswer{status: 503, retryAfter: "1", body: `{"error":{"code":"unavailable","message":"retry"}}`},
		scriptedAnswer{hangUp: true},
		scriptedAnswer{status: 429, body: `{"error":{"code":"rate_limited","message":"slow down"}}`},
		scriptedAnswer{status: 500, body: `{"error":{"code":"internal_error","message":"bug"}}`},
		scriptedAnswer{status: 200, body: createdBody},
	)
	res, err := c.CreateOrder(context.Background(), testOrder)
	if err != nil {
		t.Fatalf("CreateOrder: %v", err)
	}
	if !res.Replayed || res.TotalCents != 487 {
		t.Errorf("result %+v; want the replayed answer (200) with total 487", res)
	}
	got := s.requests()
	if len(got) != 5 {
		t.Fatalf("%d requests; want 5 (503, reset, 429, 500, then 200)", len(got))
	}
	for i, r := range got {
		if r.body != got[0].body || r.idemKey != "key-1" || r.auth != "Bearer k_0123456789abcdef" {
			t.Errorf("try %d: body %q key %q auth %q; want the first try's body, key-1 and the API key", i, r.body, r.idemKey, r.auth)
		}
	}
	if wait := got[1].at.Sub(got[0].at); wait < time.Second {
		t.Errorf("retry after a 503 with Retry-After 1 came after %v; want ≥ 1s", wait)
	}
}

func TestDoesNotRetryWhatNeedsAFix(t *testing.T) {
	f := func(status int, code string) {
		t.Helper()
		s, c := newScripted(t, scriptedAnswer{status: status, body: `{"error":{"code":"` + code + `","message":"no","field":"items[0].sku"}}`})
		_, err := c.CreateOrder(context.Background(), testOrder)
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("%d %s: error %v; want *Error", status, code, err)
		}
		if n := len(s.requests()); n != 1 {
			t.Errorf("%d %s: %d requests; want 1 (no retry)", status, code, n)
		}
		if e.StatusCode != status || e.Code != code || e.Field != "items[0].sku" || !e.OutcomeKnown || e.Temporary() {
			t.Errorf("%d %s: error %+v; want status, code, field, outcome known, not temporary", status, code, e)
		}
	}
	f(400, "invalid_value")
	f(401, "unauthorized")
	f(409, "order_conflict")
	f(413, "body_too_large")
	f(415, "unsupported_media_type")
	f(422, "unknown_sku")
}

// Retries stop when the caller's context ends, when its deadline would pass
// during the next wait, and after MaxAttempts. Checked on request counts:
// the context is cancelled once the server has seen three requests, and
// the deadline is 30s against a Retry-After of a minute, so a busy machine
// cannot change what happens.
func TestRetryBoundedByContextAndAttempts(t *testing.T) {
	s, c := newScripted(t, scriptedAnswer{status: 503, body: `{"error":{"code":"commit_timeout","message":"retry"}}`})
	c.cfg.MaxAttempts = 1000 // far more than the context allows
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	atCancel := make(chan int, 1)
	go func() {
		for len(s.requests()) < 3 {
			time.Sleep(time.Millisecond)
		}
		cancel()
		atCancel <- len(s.requests())
	}()
	_, err := c.CreateOrder(ctx, testOrder)
	// Cancelled between attempts, the call returns the last answer; during
	// one, the cancellation. The outcome is unknown either way.
	var e *Error
	if !errors.As(err, &e) || e.OutcomeKnown || !(e.StatusCode == 503 && e.Code == "commit_timeout" || errors.Is(err, context.Canceled)) {
		t.Fatalf("error %+v; want the last 503 commit_timeout or the cancellation, outcome unknown", err)
	}
	// At most the attempt in flight at the cancel follows it.
	if n, m := len(s.requests()), <-atCancel; n > m+1 || e.Attempts > m+1 {
		t.Errorf("%d requests, %d attempts; want none started after the context was cancelled at %d", n, e.Attempts, m)
	}

	// A wait that would outlast the deadline is not started: the call
	// returns the 503 at once, long before its 30s deadline.
	s, c = newScripted(t, scriptedAnswer{status: 503, retryAfter: "60", body: `{"error":{"code":"overloaded","message":"retry"}}`})
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = c.CreateOrder(ctx, testOrder)
	if !errors.As(err, &e) || e.StatusCode != 503 || e.Code != "overloaded" || ctx.Err() != nil || len(s.requests()) != 1 {
		t.Fatalf("Retry-After 60s with a 30s deadline: error %+v after %d requests, context %v; want the 503 after 1 request, before the deadline",
			err, len(s.requests()), ctx.Err())
	}

	s, c = newScripted(t, scriptedAnswer{status: 503, body: `{"error":{"code":"overloaded","message":"retry"}}`})
	c.cfg.MaxAttempts = 3
	_, err = c.CreateOrder(context.Background(), testOrder)
	if !errors.As(err, &e) || e.Attempts != 3 || !e.OutcomeKnown || len(s.requests()) != 3 {
		t.Fatalf("error %+v after %d requests; want 3 attempts, overloaded (outcome known)", err, len(s.requests()))
	}
}

func TestBulkResendsOnlyItemsAnswered503(t *testing.T) {
	s, c := newScripted(t,
		scriptedAnswer{status: 200, body: `{"created":1,"duplicates":0,"rejected":2,"results":[{"index":0,"id":"a","status":201},{"index":1,"id":"b","status":503,"error":{"code":"overloaded","message":"x"}},{"index":2,"id":"c","status":422,"error":{"code":"unknown_sku","message":"x","field":"items[0].sku"}}]}`},
		scriptedAnswer{status: 200, body: `{"created":0,"duplicates":1,"rejected":0,"results":[{"index":0,"id":"b","status":200}]}`},
	)
	orders := []Order{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	res, err := c.CreateOrders(context.Background(), orders)
	if err != nil {
		t.Fatal(err)
	}
	got := s.requests()
	if len(got) != 2 || strings.Count(got[1].body, "\n") != 1 || !strings.Contains(got[1].body, `"id":"b"`) {
		t.Fatalf("requests %+v; want the batch, then order b alone", got)
	}
	if res.Created != 1 || res.Duplicates != 1 || res.Rejected != 1 {
		t.Errorf("counts %+v; want 1 created, 1 duplicate, 1 rejected", res)
	}
	want := []int{201, 200, 422}
	for i, r := range res.Results {
		if r.Index != i || r.Status != want[i] || (r.Status >= 400) != (r.Err != nil) {
			t.Errorf("result %d = %+v; want status %d", i, r, want[i])
		}
	}
	if res.Results[2].Err.Code != "unknown_sku" || res.Results[2].Err.Field != "items[0].sku" {
		t.Errorf("item 2 error %+v", res.Results[2].Err)
	}
}
