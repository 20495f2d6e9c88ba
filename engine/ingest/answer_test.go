package ingest

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/orderflow/orderflow/engine/metrics"
	"github.com/orderflow/orderflow/engine/order"
	"github.com/orderflow/orderflow/engine/pipeline"
)

// heard is what a client heard for one order or status change: the status
// and the contract's error (zero for a success).
type heard struct {
	Status int
	Error  struct{ Code, Message, Field string }
}

// singleHeard reads a single endpoint's answer.
func singleHeard(t *testing.T, r resp) heard {
	t.Helper()
	if r.err != nil {
		t.Fatalf("request: %v", r.err)
	}
	h := heard{Status: r.code}
	if r.code >= 300 {
		var e struct {
			Error struct{ Code, Message, Field string }
		}
		if err := json.Unmarshal(r.body, &e); err != nil {
			t.Fatalf("error body %s: %v", r.body, err)
		}
		h.Error = e.Error
	}
	return h
}

// bulkHeard reads the one result of a one-item bulk request.
func bulkHeard(t *testing.T, r resp) heard {
	t.Helper()
	if r.err != nil || r.code != fasthttp.StatusOK {
		t.Fatalf("bulk request: %s; want 200", r)
	}
	var out struct{ Results []heard }
	if err := json.Unmarshal(r.body, &out); err != nil || len(out.Results) != 1 {
		t.Fatalf("bulk body %s: %v; want one result", r.body, err)
	}
	return out.Results[0]
}

// Every outcome of an order, through POST /v1/orders and as the one item of
// POST /v1/order-batches: the bulk item's status and error are exactly what
// the single endpoint answers, and both are the answer table's. Made to fail
// once by answering a bulk item's OutcomeRejected as 503 (the old bulk code
// had its own copy of the mapping): "rejected by the database" failed with
// single 400 unstorable_value, bulk item 503 unavailable.
func TestBulkItemsAnswerAsSingle(t *testing.T) {
	unknownSKU := strings.Replace(validOrder, "milk-1l", "caviar", 1)
	for _, c := range []struct {
		name   string
		body   string
		result order.Result // the store's verdict (zero: created)
		refuse error        // TrySubmit's error
		status int
		code   string
	}{
		{name: "created", body: validOrder, status: 201},
		{name: "duplicate", body: validOrder, result: order.Result{Outcome: order.OutcomeDuplicate, Status: order.StatusPaid, TotalCents: 487}, status: 200},
		{name: "conflict", body: validOrder, result: order.Result{Outcome: order.OutcomeConflict}, status: 409, code: "order_conflict"},
		{name: "rejected by the database", body: validOrder, result: order.Result{Outcome: order.OutcomeRejected, Err: errors.New("22P05")}, status: 400, code: "unstorable_value"},
		{name: "not committed", body: validOrder, result: order.Result{Outcome: order.OutcomeFailed, Err: errors.New("conn reset")}, status: 503, code: "unavailable"},
		{name: "queue full", body: validOrder, refuse: pipeline.ErrOverloaded, status: 503, code: "overloaded"},
		{name: "pipeline closed", body: validOrder, refuse: pipeline.ErrClosed, status: 503, code: "shutting_down"},
		{name: "invalid JSON", body: `{"id":`, status: 400, code: "invalid_json"},
		{name: "wrong type", body: `{"id":1,"user_id":"u","items":[{"sku":"milk-1l","qty":1}]}`, status: 400, code: "wrong_type"},
		{name: "qty out of range", body: `{"id":"o","user_id":"u","items":[{"sku":"milk-1l","qty":0}]}`, status: 400, code: "number_out_of_range"},
		{name: "unknown sku", body: unknownSKU, status: 422, code: "unknown_sku"},
		{name: "price mismatch", body: strings.Replace(validOrder, `"price_cents":249`, `"price_cents":1`, 1), status: 422, code: "price_mismatch"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts := newTestServer(t, Config{}, nil)
			ts.orders.result, ts.orders.refuse = c.result, c.refuse
			ts.serveInmemory()
			cl := ts.client(nil)
			single := singleHeard(t, ts.post(cl, c.body))
			bulk := bulkHeard(t, do(cl, "POST", "/v1/order-batches", "application/x-ndjson", []byte(c.body)))
			if single != bulk {
				t.Fatalf("%s: single %+v; bulk item %+v", c.body, single, bulk)
			}
			if single.Status != c.status || single.Error.Code != c.code || (c.code != "" && single.Error.Message == "") {
				t.Fatalf("%s: got %+v; want %d %q", c.body, single, c.status, c.code)
			}
		})
	}
}

// The same for every outcome of a status change, through POST
// /v1/orders/{id}/status and as the one item of POST /v1/status-updates.
// Made to fail once by answering a bulk item's UpdateInvalid without its
// field: "invalid transition" failed with field "status" vs "".
func TestBulkStatusItemsAnswerAsSingle(t *testing.T) {
	for _, c := range []struct {
		name    string
		status  string // the requested status, as JSON
		verdict func(u *order.Update)
		refuse  error
		code    int
		ecode   string
	}{
		{name: "applied", status: `"paid"`, verdict: func(u *order.Update) { u.Outcome, u.Previous, u.Version = order.UpdateApplied, order.StatusCreated, 2 }, code: 200},
		{name: "no-op", status: `"paid"`, verdict: func(u *order.Update) { u.Outcome, u.Previous, u.Version = order.UpdateNoop, order.StatusPaid, 2 }, code: 200},
		{name: "not found", status: `"paid"`, code: 404, ecode: "order_not_found"},
		{name: "invalid transition", status: `"paid"`, verdict: func(u *order.Update) {
			u.Outcome, u.Previous, u.Version = order.UpdateInvalid, order.StatusDelivered, 5
		}, code: 409, ecode: "invalid_transition"},
		{name: "not committed", status: `"paid"`, verdict: func(u *order.Update) { u.Outcome, u.Err = order.UpdateFailed, errors.New("conn reset") }, code: 503, ecode: "unavailable"},
		{name: "queue full", status: `"paid"`, refuse: pipeline.ErrOverloaded, code: 503, ecode: "overloaded"},
		{name: "pipeline closed", status: `"paid"`, refuse: pipeline.ErrClosed, code: 503, ecode: "shutting_down"},
		{name: "unknown status", status: `"lost"`, code: 400, ecode: "invalid_value"},
		{name: "null status", status: `null`, code: 400, ecode: "null_value"},
		{name: "wrong type", status: `7`, code: 400, ecode: "wrong_type"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts := newTestServer(t, Config{}, nil)
			ts.updates.verdict, ts.updates.refuse = c.verdict, c.refuse
			ts.serveInmemory()
			cl := ts.client(nil)
			single := singleHeard(t, do(cl, "POST", "/v1/orders/ord_1/status", "application/json", []byte(`{"status":`+c.status+`}`)))
			bulk := bulkHeard(t, do(cl, "POST", "/v1/status-updates", "application/x-ndjson", []byte(`{"id":"ord_1","status":`+c.status+`}`)))
			if single != bulk {
				t.Fatalf("status %s: single %+v; bulk item %+v", c.status, single, bulk)
			}
			if single.Status != c.code || single.Error.Code != c.ecode || (c.ecode != "" && single.Error.Message == "") {
				t.Fatalf("status %s: got %+v; want %d %q", c.status, single, c.code, c.ecode)
			}
		})
	}
}

// Outcomes no request can reach through the fakes: an order or status
// change the store left undecided is answered as not committed.
func TestUndecidedIsNotCommitted(t *testing.T) {
	if a, res := orderAnswer(&order.Result{}); a != ansOrderFailed || res != resFailed {
		t.Errorf("orderAnswer(pending) = %+v, %s; want %+v, failed", a, resultNames[res], ansOrderFailed)
	}
	if a, res := updateAnswer(&order.Update{}); a != ansUpdateFailed || res != updFailed {
		t.Errorf("updateAnswer(pending) = %+v, %s; want %+v, failed", a, updateResultNames[res], ansUpdateFailed)
	}
}

// The help of orderflow_admission_rejected_total lists exactly the reasons
// this package emits (reasonNames, the only labels it resolves). Made to
// fail once with the old help, "(limit, timeout, queue_full)": it named
// timeout, never emitted, and missed body_bytes and the guard's reasons.
func TestAdmissionReasonsMatchHelp(t *testing.T) {
	desc := metrics.New().AdmissionRejected.WithLabelValues("x").Desc().String()
	i, j := strings.LastIndex(desc, "("), strings.LastIndex(desc, ")")
	if i < 0 || j < i {
		t.Fatalf("help %s: no (reason, ...) list", desc)
	}
	listed := strings.Split(desc[i+1:j], ", ")
	if strings.Join(listed, ",") != strings.Join(reasonNames[:], ",") {
		t.Fatalf("help lists %q; the reasons emitted are %q", listed, reasonNames)
	}
}

// decoderCorpus is the order bodies the decoders are compared on: the
// golden payloads and hostile shapes (truncation, nesting, escapes, key
// case and duplicates, UTF-8, numbers, nulls, trailing data).
func decoderCorpus(t *testing.T) []string {
	files, err := filepath.Glob("../order/testdata/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("testdata: %v (%d files)", err, len(files))
	}
	var bodies []string
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, string(b))
	}
	for i := range len(validOrder) {
		bodies = append(bodies, validOrder[:i])
	}
	deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	item := `"items":[{"sku":"milk-1l","qty":1}]`
	bodies = append(bodies,
		`{"id":"o","user_id":"u","x":`+deep+`,`+item+`}`,
		`{"id":"o","user_id":"u","x":`+strings.Repeat(`{"a":`, 40)+"1"+strings.Repeat("}", 40)+`,`+item+`}`,
		`{"id":"o","user_id":"u","items":`+deep+`}`,
		deep,
		`{"id":"o","id":"p","user_id":"u",`+item+`}`,
		`{"id":"o","\u0069d":"p","user_id":"u",`+item+`}`,
		`{"\u0069d":"o","user_id":"u",`+item+`}`,
		`{"ID":"o","user_id":"u",`+item+`}`,
		`{"id":"o","user_id":"u","items":[{"sku":"milk-1l","qty":1,"QTY":5}]}`,
		`{"id":"o","user_id":"u","items":[{"sku":"milk-1l","sku":"eggs-10","qty":1}]}`,
		`{"id":"o","user_id":"a\u0000b",`+item+`}`,
		"{\"id\":\"o\",\"user_id\":\"a\x01b\","+item+"}",
		"{\"id\":\"o\",\"user_id\":\"\xff\xfe\","+item+"}",
		"{\"id\":\"o\",\"user_id\":\"u\",\"\xff\":1,"+item+"}",
		`{"id":"o","user_id":"\ud800",`+item+`}`,
		`{"id":"o","user_id":"\"q\\u00e9\"","x":"\\\"",`+item+`}`,
		`{"id":"o","user_id":"u","x":1e999,`+item+`}`,
		`{"id":"o","user_id":"u","items":[{"sku":"milk-1l","qty":1,"price_cents":1e999}]}`,
		`{"id":"o","user_id":"u","items":[{"sku":"milk-1l","qty":1},{"sku":"eggs-10","qty":null}]}`,
		`{"id":null,"user_id":"u",`+item+`}`,
		`{"id":"o","user_id":"u","items":[null]}`,
		`{"id":"o","user_id":"u","items":[]}`,
		`{"id":"o","user_id":"u","items":{}}`,
		`{"id":"o","user_id":"u","currency":"eur",`+item+`}`,
		`{"id":"o","user_id":"u","created_at":"2026-13-01T00:00:00Z",`+item+`}`,
		`{"id":"o","user_id":"u",`+item+`}{}`,
		`{"id":"o","user_id":"u",`+item+`,}`,
		`{"id":"o","user_id":"u","items":[{"sku":"caviar","qty":1}]}`,
		`[{"id":"o"}]`, `"o"`, `42`, `null`, ``,
	)
	for _, q := range []string{"22000000000000000000", "9223372036854775808", "-1", "0", "1001", "1e3", "1.5", "2.0", "01", "+1", "0x10", "NaN", `"2"`, "true", "{}", "[]"} {
		bodies = append(bodies, `{"id":"o","user_id":"u","items":[{"sku":"milk-1l","qty":`+q+`}]}`)
	}
	return bodies
}

// The order decoders through the listener: a server with
// -ingest.decoder=jsoniter answers every body of the corpus exactly as one
// with the scanner (status and body, byte for byte), on POST /v1/orders and
// as an item of POST /v1/order-batches. Made to fail once by giving the
// jsoniter decoder's wrong-type error for items[].qty another message:
// the bodies with a string, bool, object or array qty answered differently.
func TestDecodersAnswerAlike(t *testing.T) {
	servers := map[string]*testServer{}
	clients := map[string]*fasthttp.Client{}
	for _, dec := range decoders {
		servers[dec] = newTestServer(t, Config{Decoder: dec}, nil).serveInmemory()
		clients[dec] = servers[dec].client(nil)
	}
	for i, body := range decoderCorpus(t) {
		answers := map[string]string{}
		for _, dec := range decoders {
			single := do(clients[dec], "POST", "/v1/orders", "application/json", []byte(body))
			bulk := do(clients[dec], "POST", "/v1/order-batches", "application/json", []byte("["+body+"]"))
			if single.err != nil || bulk.err != nil {
				t.Fatalf("body %d %.80q with decoder %s: %v, %v", i, body, dec, single.err, bulk.err)
			}
			answers[dec] = single.String() + "\n" + bulk.String()
		}
		if answers[DecoderScanner] != answers[DecoderJsoniter] {
			t.Errorf("body %d %.200q:\nscanner:  %s\njsoniter: %s", i, body, answers[DecoderScanner], answers[DecoderJsoniter])
		}
	}
	for _, dec := range decoders {
		if got := servers[dec].orders.submitted.Load(); got == 0 {
			t.Errorf("decoder %s: no body of the corpus was accepted; the comparison saw only errors", dec)
		}
	}
}
