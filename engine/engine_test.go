package engine_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/apitest"
	"github.com/orderflow/orderflow/internal/enginetest"
	"github.com/orderflow/orderflow/internal/pgtest"
)

// testEnv is one orderflow server started by enginetest (its own
// PostgreSQL database with the demo catalog, an in-process broker that
// outlives the server, so tests can consume after shutdown) and the test
// that uses it.
type testEnv struct {
	t *testing.T
	*enginetest.Instance
}

// newEnv starts a server; tweak, when set, changes its configuration.
func newEnv(t *testing.T, tweak func(*engine.Config)) *testEnv {
	t.Helper()
	var opts []enginetest.Option
	if tweak != nil {
		opts = append(opts, enginetest.WithConfig(tweak))
	}
	return &testEnv{t: t, Instance: enginetest.Start(t, opts...)}
}

// client checks every exchange against api/openapi.yaml (TestMain fails the
// package on a violation).
var client = &http.Client{Timeout: 30 * time.Second, Transport: apitest.Default().Transport(nil)}

type reply struct {
	code   int
	header http.Header
	body   []byte
}

func (r reply) String() string { return fmt.Sprintf("%d %s", r.code, r.body) }

func do(t testing.TB, method, url, contentType string, body []byte, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return reply{code: resp.StatusCode, header: resp.Header, body: b}
}

func (env *testEnv) post(body string, hdr ...string) reply {
	env.t.Helper()
	return do(env.t, http.MethodPost, env.URL+"/v1/orders", "application/json", []byte(body), hdr...)
}

func orderJSON(id string, items ...string) string {
	if len(items) == 0 {
		items = []string{`{"sku":"milk-1l","qty":2}`, `{"sku":"bread-rye","qty":1,"price_cents":249}`}
	}
	return fmt.Sprintf(`{"id":%q,"user_id":"u_42","currency":"EUR","created_at":"2026-11-25T10:00:00Z","items":[%s]}`, id, strings.Join(items, ","))
}

func (env *testEnv) count(sql string, args ...any) int64 {
	env.t.Helper()
	return pgtest.Int64(env.t, env.DatabaseURL, sql, args...)
}

func TestCreateOrderCommitsAndPublishes(t *testing.T) {
	env := newEnv(t, nil)
	r := env.post(orderJSON("ord_8f2k1"))
	if r.code != http.StatusCreated {
		t.Fatalf("POST: got %s; want 201", r)
	}
	if loc := r.header.Get("Location"); loc != "/v1/orders/ord_8f2k1" {
		t.Errorf("Location = %q; want /v1/orders/ord_8f2k1", loc)
	}
	var created map[string]any
	if err := json.Unmarshal(r.body, &created); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	want := map[string]any{"id": "ord_8f2k1", "status": "created", "total_cents": float64(2*119 + 249), "currency": "EUR"}
	for k, v := range want {
		if created[k] != v {
			t.Errorf("201 body %s: %s = %v; want %v", r.body, k, created[k], v)
		}
	}
	if n := env.count(`SELECT count(*) FROM orders WHERE id = 'ord_8f2k1' AND status = 'created' AND version = 1 AND total_cents = 487 AND user_id = 'u_42'`); n != 1 {
		t.Errorf("orders rows = %d; want 1", n)
	}
	if n := env.count(`SELECT count(*) FROM order_items WHERE order_id = 'ord_8f2k1'`); n != 2 {
		t.Errorf("order_items rows = %d; want 2", n)
	}
	if n := env.count(`SELECT count(*) FROM order_items WHERE order_id = 'ord_8f2k1' AND line = 1 AND sku = 'bread-rye' AND qty = 1 AND price_cents = 249`); n != 1 {
		t.Errorf("order_items line 1 missing or wrong")
	}

	g := do(t, http.MethodGet, env.URL+"/v1/orders/ord_8f2k1", "", nil)
	if g.code != http.StatusOK {
		t.Fatalf("GET: %s", g)
	}
	var got map[string]any
	if err := json.Unmarshal(g.body, &got); err != nil {
		t.Fatalf("GET body %s: %v", g.body, err)
	}
	if got["id"] != "ord_8f2k1" || got["status"] != "created" || got["version"] != float64(1) || got["created_at"] != "2026-11-25T10:00:00Z" {
		t.Errorf("GET body = %s", g.body)
	}
	if items, _ := got["items"].([]any); len(items) != 2 {
		t.Errorf("GET items = %v; want 2", got["items"])
	}

	recs := env.Consume(t, "ord_8f2k1", 1, 10*time.Second)
	if len(recs) != 1 {
		t.Fatalf("records for ord_8f2k1 = %d; want 1", len(recs))
	}
	rec := recs[0]
	for k, v := range map[string]string{
		"ce_specversion": "1.0", "ce_type": "order.created", "ce_id": "ord_8f2k1/1",
		"content-type": "application/json", "ce_source": "orderflow",
	} {
		if got := enginetest.Header(rec, k); got != v {
			t.Errorf("header %s = %q; want %q", k, got, v)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, enginetest.Header(rec, "ce_time")); err != nil {
		t.Errorf("ce_time %q: %v", enginetest.Header(rec, "ce_time"), err)
	}
	if d := time.Since(rec.Timestamp); d < 0 || d > time.Minute {
		t.Errorf("record timestamp %v is not the ingest time", rec.Timestamp)
	}
	var ev struct {
		Order map[string]any `json:"order"`
	}
	if err := json.Unmarshal(rec.Value, &ev); err != nil {
		t.Fatalf("event value %s: %v", rec.Value, err)
	}
	for _, k := range []string{"id", "user_id", "status", "currency", "total_cents", "version", "created_at", "updated_at"} {
		if fmt.Sprint(ev.Order[k]) != fmt.Sprint(got[k]) {
			t.Errorf("event order.%s = %v; GET says %v", k, ev.Order[k], got[k])
		}
	}
	waitFor(t, 10*time.Second, "outbox emptied after the broker ack", func() bool {
		return env.count(`SELECT count(*) FROM outbox`) == 0
	})
}

// allPublished waits (a minute at most) until the outbox is empty, so that
// every committed event is on the topic, and returns every record there
// under keyPrefix: the exact count, with no window to wait out for extras.
func (env *testEnv) allPublished(t *testing.T, keyPrefix string) []*kgo.Record {
	t.Helper()
	waitFor(t, time.Minute, "the outbox empty: every committed event published", func() bool {
		return env.count(`SELECT count(*) FROM outbox`) == 0
	})
	return env.ConsumeAll(t, keyPrefix, time.Minute)
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReplayConflictAndIdempotencyKey(t *testing.T) {
	env := newEnv(t, nil)
	body := orderJSON("ord_r1")
	if r := env.post(body); r.code != http.StatusCreated {
		t.Fatalf("first POST: %s", r)
	}
	r := env.post(body)
	if r.code != http.StatusOK || !bytes.Contains(r.body, []byte(`"total_cents":487`)) {
		t.Fatalf("replay: got %s; want 200 with the same body", r)
	}
	other := orderJSON("ord_r1", `{"sku":"eggs-10","qty":1}`)
	if r := env.post(other); r.code != http.StatusConflict || !bytes.Contains(r.body, []byte(`"order_conflict"`)) {
		t.Fatalf("different order, same id: got %s; want 409 order_conflict", r)
	}
	// Idempotency-Key: same key + same body replays; same key, other order conflicts.
	k := []string{"Idempotency-Key", "key-123"}
	if r := env.post(orderJSON("ord_k1"), k...); r.code != http.StatusCreated {
		t.Fatalf("keyed POST: %s", r)
	}
	if r := env.post(orderJSON("ord_k1"), k...); r.code != http.StatusOK {
		t.Fatalf("keyed replay: got %s; want 200", r)
	}
	if r := env.post(orderJSON("ord_k2"), k...); r.code != http.StatusConflict {
		t.Fatalf("key reused for another order: got %s; want 409", r)
	}
	if n := env.count(`SELECT count(*) FROM orders`); n != 2 {
		t.Errorf("orders = %d; want 2 (ord_r1, ord_k1)", n)
	}
	if n := env.count(`SELECT count(*) FROM orders WHERE id = 'ord_r1' AND total_cents = 487`); n != 1 {
		t.Errorf("the conflicting order changed the stored one")
	}
	// Exactly one event per committed order, none for replays or conflicts.
	recs := env.allPublished(t, "ord_")
	if len(recs) != 2 {
		t.Errorf("records = %d; want 2", len(recs))
	}
}

func TestBadInputStoresNothing(t *testing.T) { forEachDecoder(t, testBadInputStoresNothing) }

func testBadInputStoresNothing(t *testing.T, dec string) {
	env := newEnv(t, func(c *engine.Config) { c.Ingest.MaxBodyBytes, c.Ingest.Decoder = 4096, dec })
	type tc struct {
		name, ct, body string
		code           int
		ecode, field   string
		hdr            []string
	}
	big := `{"id":"ord_big","user_id":"` + strings.Repeat("x", 5000) + `","items":[{"sku":"milk-1l","qty":1}]}`
	for _, c := range []tc{
		{"not json", "application/json", `{"id":`, 400, "", "", nil},
		{"trailing data", "application/json", orderJSON("ord_b1") + `{}`, 400, "trailing_data", "", nil},
		{"duplicate key", "application/json", `{"id":"ord_b2","id":"ord_b3","user_id":"u","items":[{"sku":"milk-1l","qty":1}]}`, 400, "duplicate_key", "id", nil},
		{"null id", "application/json", `{"id":null,"user_id":"u","items":[{"sku":"milk-1l","qty":1}]}`, 400, "", "id", nil},
		{"qty overflow", "application/json", `{"id":"ord_b4","user_id":"u","items":[{"sku":"milk-1l","qty":22000000000000000000}]}`, 400, "", "items[0].qty", nil},
		{"qty zero", "application/json", `{"id":"ord_b5","user_id":"u","items":[{"sku":"milk-1l","qty":0}]}`, 400, "", "items[0].qty", nil},
		{"wrong content type", "text/plain", orderJSON("ord_b6"), 415, "unsupported_media_type", "", nil},
		{"body over limit", "application/json", big, 413, "", "", nil},
		{"unknown sku", "application/json", orderJSON("ord_b7", `{"sku":"caviar","qty":1}`), 422, "unknown_sku", "items[0].sku", nil},
		{"price mismatch", "application/json", orderJSON("ord_b8", `{"sku":"milk-1l","qty":1,"price_cents":1}`), 422, "price_mismatch", "items[0].price_cents", nil},
		{"bad idempotency key", "application/json", orderJSON("ord_b9"), 400, "invalid_idempotency_key", "", []string{"Idempotency-Key", strings.Repeat("k", 129)}},
		{"NUL in user_id", "application/json", `{"id":"ord_b10","user_id":"a\u0000b","items":[{"sku":"milk-1l","qty":1}]}`, 400, "", "user_id", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := do(t, http.MethodPost, env.URL+"/v1/orders", c.ct, []byte(c.body), c.hdr...)
			if r.code != c.code {
				t.Fatalf("POST %q: got %s; want %d", c.body, r, c.code)
			}
			var e struct {
				Error struct{ Code, Message, Field string } `json:"error"`
			}
			if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("error body %s is not {\"error\":{code,message}}: %v", r.body, err)
			}
			if c.ecode != "" && e.Error.Code != c.ecode {
				t.Errorf("code = %q; want %q", e.Error.Code, c.ecode)
			}
			if c.field != "" && e.Error.Field != c.field {
				t.Errorf("field = %q; want %q", e.Error.Field, c.field)
			}
		})
	}
	if n := env.count(`SELECT count(*) FROM orders`); n != 0 {
		t.Errorf("orders stored after bad input: %d", n)
	}
	if n := env.count(`SELECT count(*) FROM outbox`); n != 0 {
		t.Errorf("outbox rows after bad input: %d", n)
	}
	if r := do(t, http.MethodGet, env.URL+"/v1/orders/nope", "", nil); r.code != http.StatusNotFound || !bytes.Contains(r.body, []byte("order_not_found")) {
		t.Errorf("GET unknown: %s", r)
	}
}
