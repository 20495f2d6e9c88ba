package engine_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/enginetest"
)

func (env *testEnv) setStatus(id, status string) reply {
	env.t.Helper()
	return do(env.t, http.MethodPost, env.URL+"/v1/orders/"+id+"/status", "application/json", []byte(`{"status":"`+status+`"}`))
}

type statusReply struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Version int    `json:"version"`
}

func TestStatusMachineThroughTheListener(t *testing.T) {
	env := newEnv(t, nil)
	for _, id := range []string{"ord_s1", "ord_s2", "ord_s3"} {
		if r := env.post(orderJSON(id)); r.code != http.StatusCreated {
			t.Fatalf("create %s: %s", id, r)
		}
	}
	type step struct {
		id, status string
		code       int
		version    int
		ecode      string
	}
	for _, s := range []step{
		{"ord_s1", "paid", 200, 2, ""},
		{"ord_s1", "paid", 200, 2, ""}, // same status again: no-op, no new version
		{"ord_s1", "delivering", 409, 0, "invalid_transition"},
		{"ord_s1", "assembling", 200, 3, ""},
		{"ord_s1", "delivering", 200, 4, ""},
		{"ord_s1", "delivered", 200, 5, ""},
		{"ord_s1", "cancelled", 409, 0, "invalid_transition"}, // delivered is final
		{"ord_s2", "cancelled", 200, 2, ""},
		{"ord_s2", "paid", 409, 0, "invalid_transition"}, // cancelled is final
		{"ord_s3", "created", 200, 1, ""},                // the current status: no-op
		{"ord_s3", "delivered", 409, 0, "invalid_transition"},
		{"ord_nope", "paid", 404, 0, "order_not_found"},
	} {
		r := env.setStatus(s.id, s.status)
		if r.code != s.code {
			t.Fatalf("%s → %s: got %s; want %d", s.id, s.status, r, s.code)
		}
		if s.code == 200 {
			var got statusReply
			if err := json.Unmarshal(r.body, &got); err != nil || got.ID != s.id || got.Version != s.version {
				t.Errorf("%s → %s: body %s; want version %d", s.id, s.status, r.body, s.version)
			}
		} else if !bytes.Contains(r.body, []byte(s.ecode)) {
			t.Errorf("%s → %s: body %s; want code %s", s.id, s.status, r.body, s.ecode)
		}
	}
	for _, bad := range []string{`{"status":"shipped"}`, `{"status":null}`, `{}`, `{"status":"paid","status":"paid"}`} {
		r := do(t, http.MethodPost, env.URL+"/v1/orders/ord_s3/status", "application/json", []byte(bad))
		if r.code != http.StatusBadRequest {
			t.Errorf("status body %s: got %s; want 400", bad, r)
		}
	}
	g := do(t, http.MethodGet, env.URL+"/v1/orders/ord_s1", "", nil)
	if !bytes.Contains(g.body, []byte(`"status":"delivered"`)) || !bytes.Contains(g.body, []byte(`"version":5`)) {
		t.Errorf("GET after the chain: %s", g.body)
	}
	// Exactly one event per version, in version order, on one partition.
	recs := env.allPublished(t, "ord_s1")
	var ids []string
	for _, r := range recs {
		ids = append(ids, enginetest.Header(r, "ce_id")+" "+enginetest.Header(r, "ce_type"))
	}
	want := "ord_s1/1 order.created,ord_s1/2 order.status_changed,ord_s1/3 order.status_changed,ord_s1/4 order.status_changed,ord_s1/5 order.status_changed"
	if got := strings.Join(ids, ","); got != want {
		t.Errorf("events of ord_s1:\n got %s\nwant %s", got, want)
	}
	var ev map[string]any
	if err := json.Unmarshal(recs[len(recs)-1].Value, &ev); err != nil || ev["previous_status"] != "delivering" || ev["status"] != "delivered" || ev["version"] != float64(5) {
		t.Errorf("last event value %s (%v)", recs[len(recs)-1].Value, err)
	}
}

// 100 concurrent updates to one order end in one consistent version chain
// with exactly one event per version.
func TestConcurrentStatusUpdatesOneChain(t *testing.T) {
	env := newEnv(t, nil)
	if r := env.post(orderJSON("ord_c1")); r.code != http.StatusCreated {
		t.Fatal(r)
	}
	steps := []string{"paid", "assembling", "delivering", "delivered"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	versions := map[int]string{}
	for i := range 100 {
		wg.Go(func() {
			st := steps[i%len(steps)]
			r := env.setStatus("ord_c1", st)
			if r.code != 200 && r.code != 409 {
				t.Errorf("update %s: %s", st, r)
				return
			}
			if r.code == 200 {
				var got statusReply
				_ = json.Unmarshal(r.body, &got)
				mu.Lock()
				if prev, ok := versions[got.Version]; ok && prev != got.Status {
					t.Errorf("version %d answered as %s and %s", got.Version, prev, got.Status)
				}
				versions[got.Version] = got.Status
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	final := env.count(`SELECT version FROM orders WHERE id = 'ord_c1'`)
	for v := 2; v <= int(final); v++ {
		if _, ok := versions[v]; !ok {
			t.Errorf("version %d was never answered", v)
		}
	}
	recs := env.allPublished(t, "ord_c1")
	if len(recs) != int(final) {
		t.Fatalf("events = %d; want %d (one per version)", len(recs), final)
	}
	for i, r := range recs {
		if want := fmt.Sprintf("ord_c1/%d", i+1); enginetest.Header(r, "ce_id") != want {
			t.Errorf("event %d is %s; want %s (version order)", i, enginetest.Header(r, "ce_id"), want)
		}
	}
}

type bulkReply struct {
	Created    int `json:"created"`
	Duplicates int `json:"duplicates"`
	Rejected   int `json:"rejected"`
	Results    []struct {
		Index  int    `json:"index"`
		ID     string `json:"id"`
		Status int    `json:"status"`
		Error  *struct {
			Code  string `json:"code"`
			Field string `json:"field"`
		} `json:"error"`
	} `json:"results"`
}

func TestOrderBatchPerItemResults(t *testing.T) { forEachDecoder(t, testOrderBatchPerItemResults) }

func testOrderBatchPerItemResults(t *testing.T, dec string) {
	env := newEnv(t, func(c *engine.Config) { c.Ingest.Decoder = dec })
	if r := env.post(orderJSON("ord_b_taken")); r.code != http.StatusCreated {
		t.Fatal(r)
	}
	lines := []string{
		orderJSON("ord_b1"),                                   // 201
		orderJSON("ord_b_taken"),                              // 200: already committed, same content
		orderJSON("ord_b_taken", `{"sku":"eggs-10","qty":3}`), // 409
		`{"id":"ord_b2","user_id":`,                           // 400 malformed
		orderJSON("ord_b3", `{"sku":"caviar","qty":1}`),       // 422
		orderJSON("ord_b4"),                                   // 201
		orderJSON("ord_b1"),                                   // 200: duplicate of line 0 in the same request
	}
	wantStatus := []int{201, 200, 409, 400, 422, 201, 200}
	check := func(name string, r reply) {
		t.Helper()
		if r.code != http.StatusOK {
			t.Fatalf("%s: %s", name, r)
		}
		var got bulkReply
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatalf("%s: body %s: %v", name, r.body, err)
		}
		if len(got.Results) != len(wantStatus) {
			t.Fatalf("%s: %d results; want %d: %s", name, len(got.Results), len(wantStatus), r.body)
		}
		for i, res := range got.Results {
			if res.Index != i || res.Status != wantStatus[i] {
				t.Errorf("%s: result %d = %+v; want index %d status %d", name, i, res, i, wantStatus[i])
			}
			if res.Status >= 400 && (res.Error == nil || res.Error.Code == "") {
				t.Errorf("%s: result %d has no error body", name, i)
			}
		}
	}
	r := do(t, http.MethodPost, env.URL+"/v1/order-batches", "application/x-ndjson", []byte(strings.Join(lines, "\n")))
	check("ndjson", r)
	var got bulkReply
	_ = json.Unmarshal(r.body, &got)
	if got.Created != 2 || got.Duplicates != 2 || got.Rejected != 3 {
		t.Errorf("counts %+v; want created 2, duplicates 2, rejected 3", got)
	}
	if n := env.count(`SELECT count(*) FROM orders`); n != 3 {
		t.Errorf("orders = %d; want 3 (taken, b1, b4)", n)
	}
	if n := env.count(`SELECT count(*) FROM orders WHERE id = 'ord_b_taken' AND total_cents = 487`); n != 1 {
		t.Errorf("the conflicting line changed the stored order")
	}
	// The same items as a gzipped JSON array: everything is now a replay, but
	// the malformed and unknown-SKU lines are refused the same way.
	arr := "[" + strings.Join([]string{lines[0], lines[1], lines[2], `{"id":"ord_b2","user_id":1}`, lines[4], lines[5], lines[6]}, ",") + "]"
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(arr))
	zw.Close()
	wantStatus = []int{200, 200, 409, 400, 422, 200, 200}
	check("gzip array", do(t, http.MethodPost, env.URL+"/v1/order-batches", "application/json", gz.Bytes(), "Content-Encoding", "gzip"))

	recs := env.allPublished(t, "ord_b")
	if len(recs) != 3 {
		t.Errorf("published %d order events; want exactly the 3 committed orders", len(recs))
	}
	// Whole-request errors.
	if r := do(t, http.MethodPost, env.URL+"/v1/order-batches", "application/json", []byte(`{"not":"an array"}`)); r.code != http.StatusBadRequest {
		t.Errorf("non-array body: %s; want 400", r)
	}
	if r := do(t, http.MethodPost, env.URL+"/v1/order-batches", "text/csv", []byte(`a,b`)); r.code != http.StatusUnsupportedMediaType {
		t.Errorf("csv body: %s; want 415", r)
	}
}

func TestBulkLimits(t *testing.T) {
	env := newEnv(t, func(c *engine.Config) {
		c.Ingest.MaxBatchItems = 5
		c.Ingest.MaxBatchBodyBytes = 64 << 10
		c.Ingest.MaxBodyBytes = 4 << 10
	})
	var lines []string
	for i := range 6 {
		lines = append(lines, orderJSON(fmt.Sprintf("ord_l%d", i)))
	}
	if r := do(t, http.MethodPost, env.URL+"/v1/order-batches", "application/x-ndjson", []byte(strings.Join(lines, "\n"))); r.code != http.StatusRequestEntityTooLarge {
		t.Errorf("6 items over a limit of 5: %s; want 413", r)
	}
	// A gzip bomb: small on the wire, far over the limit inflated.
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write([]byte("[" + strings.Repeat(" ", 8<<20) + "]"))
	zw.Close()
	if r := do(t, http.MethodPost, env.URL+"/v1/order-batches", "application/json", gz.Bytes(), "Content-Encoding", "gzip"); r.code != http.StatusRequestEntityTooLarge {
		t.Errorf("gzip bomb (%d bytes compressed): %s; want 413", gz.Len(), r)
	}
	if n := env.count(`SELECT count(*) FROM orders`); n != 0 {
		t.Errorf("orders stored by refused requests: %d", n)
	}
}

func TestStatusUpdatesBulk(t *testing.T) {
	env := newEnv(t, nil)
	for _, id := range []string{"ord_u1", "ord_u2"} {
		if r := env.post(orderJSON(id)); r.code != http.StatusCreated {
			t.Fatal(r)
		}
	}
	body := strings.Join([]string{
		`{"id":"ord_u1","status":"paid"}`,       // 200 v2
		`{"id":"ord_u1","status":"assembling"}`, // 200 v3: applied after the previous line
		`{"id":"ord_u2","status":"delivered"}`,  // 409
		`{"id":"ord_u9","status":"paid"}`,       // 404
		`{"id":"ord_u2","status":"lost"}`,       // 400
		`{"id":"ord_u2","status":"created"}`,    // 200 no-op
	}, "\n")
	r := do(t, http.MethodPost, env.URL+"/v1/status-updates", "application/x-ndjson", []byte(body))
	if r.code != http.StatusOK {
		t.Fatal(r)
	}
	var got bulkReply
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatalf("%s: %v", r.body, err)
	}
	want := []int{200, 200, 409, 404, 400, 200}
	if len(got.Results) != len(want) {
		t.Fatalf("results %s", r.body)
	}
	for i, res := range got.Results {
		if res.Status != want[i] || res.Index != i {
			t.Errorf("result %d = %+v; want status %d", i, res, want[i])
		}
	}
	if n := env.count(`SELECT count(*) FROM orders WHERE id = 'ord_u1' AND status = 'assembling' AND version = 3`); n != 1 {
		t.Errorf("ord_u1 not at assembling v3")
	}
	recs := env.Consume(t, "ord_u1", 3, 10*time.Second)
	var order []string
	for _, rec := range recs {
		order = append(order, enginetest.Header(rec, "ce_id"))
	}
	if strings.Join(order, ",") != "ord_u1/1,ord_u1/2,ord_u1/3" {
		t.Errorf("ord_u1 events %v", order)
	}
	_ = kgo.Record{}
}
