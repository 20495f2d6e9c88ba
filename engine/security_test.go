package engine_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/engine/ingest"
	"github.com/orderflow/orderflow/internal/enginetest"
)

// tryDo is do for requests the server may answer by closing the connection
// (an oversized header or body can be refused before it is read whole).
func tryDo(method, url, contentType string, body []byte, hdr ...string) (reply, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{code: resp.StatusCode, header: resp.Header, body: b}, err
}

// badCase is one malformed request and the answer it must get.
type badCase struct {
	name  string
	ct    string
	body  []byte
	hdr   []string
	code  int
	ecode string // "" = any contract error code
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// padTo pads a valid order with spaces before its closing brace to n bytes.
func padTo(t *testing.T, body string, n int) []byte {
	t.Helper()
	if len(body) > n {
		t.Fatalf("padTo: body is %d bytes already, want %d", len(body), n)
	}
	return []byte(body[:len(body)-1] + strings.Repeat(" ", n-len(body)) + "}")
}

// matrixLimit is the single-order body limit of the matrix server: small
// enough for cheap ±1 cases, large enough for 10,000-deep nesting.
const matrixLimit = 64 << 10

// badInputMatrix lists malformed requests to POST /v1/orders, each with the
// 4xx it must get; none may leave a row.
func badInputMatrix(t *testing.T) []badCase {
	j := "application/json"
	var cs []badCase
	add := func(name string, body string, code int, ecode string) {
		cs = append(cs, badCase{name: name, ct: j, body: []byte(body), code: code, ecode: ecode})
	}
	// Truncation at every offset of a valid order (offset 0 is the empty body).
	valid := orderJSON("ord_trunc")
	for i := 0; i < len(valid); i++ {
		add(fmt.Sprintf("truncated at %d", i), valid[:i], 400, "")
	}
	// Body size: limit+1 bytes is 413 (limit and limit-1 are the positive
	// controls in the test itself); gzip counts after decompression.
	cs = append(cs, badCase{name: "body limit+1", ct: j, body: padTo(t, orderJSON("ord_lim_p1"), matrixLimit+1), code: 413, ecode: "body_too_large"})
	cs = append(cs, badCase{name: "gzip body limit+1 after gunzip", ct: j, body: gz(padTo(t, orderJSON("ord_lim_gz"), matrixLimit+1)), hdr: []string{"Content-Encoding", "gzip"}, code: 413, ecode: "body_too_large"})
	// 10,000-deep nesting, in an unknown field, in items, and as the body.
	deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	add("10000-deep unknown field", `{"id":"ord_deep1","user_id":"u","x":`+deep+`,"items":[{"sku":"milk-1l","qty":1}]}`, 400, "")
	add("10000-deep objects", `{"id":"ord_deep2","user_id":"u","x":`+strings.Repeat(`{"a":`, 10000)+"1"+strings.Repeat("}", 10000)+`,"items":[{"sku":"milk-1l","qty":1}]}`, 400, "")
	add("10000-deep items", `{"id":"ord_deep3","user_id":"u","items":`+deep+`}`, 400, "")
	add("10000-deep body", deep, 400, "")
	// Duplicate and case-variant keys.
	add("duplicate id", `{"id":"ord_dup1","id":"ord_dup2","user_id":"u","items":[{"sku":"milk-1l","qty":1}]}`, 400, "duplicate_key")
	add("duplicate items", `{"id":"ord_dup3","user_id":"u","items":[{"sku":"milk-1l","qty":1}],"items":[{"sku":"eggs-10","qty":1}]}`, 400, "duplicate_key")
	add("duplicate sku", `{"id":"ord_dup4","user_id":"u","items":[{"sku":"milk-1l","sku":"eggs-10","qty":1}]}`, 400, "duplicate_key")
	add("case-variant id", `{"id":"ord_cv1","ID":"ord_cv2","user_id":"u","items":[{"sku":"milk-1l","qty":1}]}`, 400, "")
	add("case-variant qty", `{"id":"ord_cv3","user_id":"u","items":[{"sku":"milk-1l","qty":1,"QTY":5}]}`, 400, "")
	add("case-variant key alone", `{"ID":"ord_cv6","user_id":"u","items":[{"sku":"milk-1l","qty":1}]}`, 400, "")
	add("escaped duplicate key", `{"id":"ord_cv4","\u0069d":"ord_cv5","user_id":"u","items":[{"sku":"milk-1l","qty":1}]}`, 400, "duplicate_key")
	// NUL and control bytes.
	add("raw NUL in user_id", "{\"id\":\"ord_nul1\",\"user_id\":\"a\x00b\",\"items\":[{\"sku\":\"milk-1l\",\"qty\":1}]}", 400, "")
	add("escaped NUL in user_id", `{"id":"ord_nul2","user_id":"a\u0000b","items":[{"sku":"milk-1l","qty":1}]}`, 400, "")
	add("escaped NUL in sku", `{"id":"ord_nul3","user_id":"u","items":[{"sku":"milk\u0000","qty":1}]}`, 400, "")
	add("raw control byte in user_id", "{\"id\":\"ord_ctl1\",\"user_id\":\"a\x01b\",\"items\":[{\"sku\":\"milk-1l\",\"qty\":1}]}", 400, "")
	add("raw tab in user_id after an escape", "{\"id\":\"ord_ctl2\",\"user_id\":\"\\\"a\tb\",\"items\":[{\"sku\":\"milk-1l\",\"qty\":1}]}", 400, "")
	add("escaped control in user_id", `{"id":"ord_ctl3","user_id":"a\u001fb","items":[{"sku":"milk-1l","qty":1}]}`, 400, "")
	add("NUL between tokens", "{\"id\":\"ord_ctl4\",\x00\"user_id\":\"u\",\"items\":[{\"sku\":\"milk-1l\",\"qty\":1}]}", 400, "")
	add("control byte in id", "{\"id\":\"ord_\x07\",\"user_id\":\"u\",\"items\":[{\"sku\":\"milk-1l\",\"qty\":1}]}", 400, "")
	// Invalid UTF-8 and lone surrogates.
	add("invalid UTF-8 in user_id", "{\"id\":\"ord_u1\",\"user_id\":\"\xff\xfe\",\"items\":[{\"sku\":\"milk-1l\",\"qty\":1}]}", 400, "")
	add("truncated UTF-8 sequence", "{\"id\":\"ord_u2\",\"user_id\":\"caf\xc3\",\"items\":[{\"sku\":\"milk-1l\",\"qty\":1}]}", 400, "")
	add("overlong UTF-8", "{\"id\":\"ord_u3\",\"user_id\":\"\xc0\xaf\",\"items\":[{\"sku\":\"milk-1l\",\"qty\":1}]}", 400, "")
	add("UTF-8-encoded surrogate", "{\"id\":\"ord_u4\",\"user_id\":\"\xed\xa0\x80\",\"items\":[{\"sku\":\"milk-1l\",\"qty\":1}]}", 400, "")
	add("invalid UTF-8 in a key", "{\"id\":\"ord_u5\",\"user_id\":\"u\",\"\xff\":1,\"items\":[{\"sku\":\"milk-1l\",\"qty\":1}]}", 400, "")
	add("lone high surrogate", `{"id":"ord_s1","user_id":"\ud800","items":[{"sku":"milk-1l","qty":1}]}`, 400, "")
	add("lone low surrogate", `{"id":"ord_s2","user_id":"\udc00x","items":[{"sku":"milk-1l","qty":1}]}`, 400, "")
	add("high surrogate + non-low", `{"id":"ord_s3","user_id":"\ud800\u0041","items":[{"sku":"milk-1l","qty":1}]}`, 400, "")
	add("reversed surrogate pair", `{"id":"ord_s4","user_id":"\udc00\ud800","items":[{"sku":"milk-1l","qty":1}]}`, 400, "")
	// Numbers that do not fit.
	for _, q := range []string{"22000000000000000000", "9223372036854775808", "-9223372036854775809", "1e3", "1.5", "2.0", "-1", "0", "1001", "01", "+1", "0x10", "NaN", "Infinity", "1e400"} {
		add("qty "+q, `{"id":"ord_n","user_id":"u","items":[{"sku":"milk-1l","qty":`+q+`}]}`, 400, "")
	}
	for _, p := range []string{"9223372036854775808", "1.19", "1e2", "-119"} {
		add("price_cents "+p, `{"id":"ord_p","user_id":"u","items":[{"sku":"milk-1l","qty":1,"price_cents":`+p+`}]}`, 400, "")
	}
	// null for each field, required or not.
	fields := map[string]string{
		"id":           `{"id":null,"user_id":"u","items":[{"sku":"milk-1l","qty":1}]}`,
		"user_id":      `{"id":"ord_null","user_id":null,"items":[{"sku":"milk-1l","qty":1}]}`,
		"items":        `{"id":"ord_null","user_id":"u","items":null}`,
		"items[0]":     `{"id":"ord_null","user_id":"u","items":[null]}`,
		"items[0].sku": `{"id":"ord_null","user_id":"u","items":[{"sku":null,"qty":1}]}`,
		"items[0].qty": `{"id":"ord_null","user_id":"u","items":[{"sku":"milk-1l","qty":null}]}`,
		"body":         `null`,
	}
	for f, body := range fields {
		add("null "+f, body, 400, "")
	}
	// Wrong types.
	for name, body := range map[string]string{
		"id number":          `{"id":123,"user_id":"u","items":[{"sku":"milk-1l","qty":1}]}`,
		"user_id bool":       `{"id":"ord_w","user_id":true,"items":[{"sku":"milk-1l","qty":1}]}`,
		"items object":       `{"id":"ord_w","user_id":"u","items":{"sku":"milk-1l","qty":1}}`,
		"items string":       `{"id":"ord_w","user_id":"u","items":"milk-1l"}`,
		"item string":        `{"id":"ord_w","user_id":"u","items":["milk-1l"]}`,
		"qty string":         `{"id":"ord_w","user_id":"u","items":[{"sku":"milk-1l","qty":"2"}]}`,
		"price_cents string": `{"id":"ord_w","user_id":"u","items":[{"sku":"milk-1l","qty":1,"price_cents":"119"}]}`,
		"sku number":         `{"id":"ord_w","user_id":"u","items":[{"sku":7,"qty":1}]}`,
		"currency number":    `{"id":"ord_w","user_id":"u","currency":978,"items":[{"sku":"milk-1l","qty":1}]}`,
		"created_at number":  `{"id":"ord_w","user_id":"u","created_at":0,"items":[{"sku":"milk-1l","qty":1}]}`,
		"body array":         `[` + orderJSON("ord_w") + `]`,
		"body string":        `"ord_w"`,
		"body number":        `42`,
	} {
		add("wrong type: "+name, body, 400, "")
	}
	// Other shapes of bad input.
	add("trailing data", orderJSON("ord_t1")+`{}`, 400, "trailing_data")
	add("empty items", `{"id":"ord_e","user_id":"u","items":[]}`, 400, "")
	add("missing id", `{"user_id":"u","items":[{"sku":"milk-1l","qty":1}]}`, 400, "")
	add("bad currency", `{"id":"ord_c","user_id":"u","currency":"eur","items":[{"sku":"milk-1l","qty":1}]}`, 400, "")
	add("bad created_at", `{"id":"ord_c","user_id":"u","created_at":"2026-13-01T00:00:00Z","items":[{"sku":"milk-1l","qty":1}]}`, 400, "")
	add("id with a slash", `{"id":"ord/1","user_id":"u","items":[{"sku":"milk-1l","qty":1}]}`, 400, "")
	add("id of 65 characters", `{"id":"`+strings.Repeat("a", 65)+`","user_id":"u","items":[{"sku":"milk-1l","qty":1}]}`, 400, "")
	add("101 items", `{"id":"ord_many","user_id":"u","items":[`+strings.TrimSuffix(strings.Repeat(`{"sku":"milk-1l","qty":1},`, 101), ",")+`]}`, 400, "")
	// A gzip bomb: 3 gzip members of 1 MiB of zeros (3 MiB from ~3 KiB; the
	// limit is 4 KiB; engine/ingest tests a 512 MiB one).
	var member bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
	_, _ = zw.Write(make([]byte, 1<<20))
	_ = zw.Close()
	cs = append(cs, badCase{name: "gzip bomb", ct: j, body: bytes.Repeat(member.Bytes(), 3), hdr: []string{"Content-Encoding", "gzip"}, code: 413, ecode: "body_too_large"})
	cs = append(cs, badCase{name: "not gzip", ct: j, body: []byte(orderJSON("ord_g1")), hdr: []string{"Content-Encoding", "gzip"}, code: 400, ecode: "invalid_gzip"})
	cs = append(cs, badCase{name: "unknown encoding", ct: j, body: []byte(orderJSON("ord_g2")), hdr: []string{"Content-Encoding", "br"}, code: 415, ecode: "unsupported_encoding"})
	// Content-Type.
	for _, ct := range []string{"", "text/plain", "application/jsonx", "application/x-ndjson", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"} {
		cs = append(cs, badCase{name: "Content-Type " + strconv.Quote(ct), ct: ct, body: []byte(orderJSON("ord_ct")), code: 415, ecode: "unsupported_media_type"})
	}
	// Oversized headers (the default limit is 8 KiB).
	cs = append(cs, badCase{name: "oversized header", ct: j, body: []byte(orderJSON("ord_h1")), hdr: []string{"X-Big", strings.Repeat("h", 16<<10)}, code: 431})
	cs = append(cs, badCase{name: "bad Idempotency-Key", ct: j, body: []byte(orderJSON("ord_h2")), hdr: []string{"Idempotency-Key", "has space"}, code: 400, ecode: "invalid_idempotency_key"})
	return cs
}

// The bad-input matrix end to end: every malformed order gets its 4xx with
// the contract's error body, through the real listener, and PostgreSQL
// holds no row for any of them (orders, order_items, outbox) — only the
// positive controls committed. Made to fail once by letting order's
// validUserID accept ASCII control characters (a build overlay, the tree
// untouched): "escaped control in user_id" got 201 and the row checks
// found the order and its item.
func TestBadInputMatrixStoresNothing(t *testing.T) {
	forEachDecoder(t, testBadInputMatrixStoresNothing)
}

// decoders are the order decoders (-ingest.decoder) the listener-level
// contract tests run against.
var decoders = []string{ingest.DecoderScanner, ingest.DecoderJsoniter}

// forEachDecoder runs fn as one subtest per order decoder, decoder=<name>.
func forEachDecoder(t *testing.T, fn func(t *testing.T, dec string)) {
	t.Helper()
	for _, dec := range decoders {
		t.Run("decoder="+dec, func(t *testing.T) { fn(t, dec) })
	}
}

func testBadInputMatrixStoresNothing(t *testing.T, dec string) {
	env := newEnv(t, func(c *engine.Config) { c.Ingest.MaxBodyBytes, c.Ingest.Decoder = matrixLimit, dec })
	for _, c := range badInputMatrix(t) {
		r, err := tryDo(http.MethodPost, env.URL+"/v1/orders", c.ct, c.body, c.hdr...)
		if err != nil {
			// Never a reset: even a body or headers over their limit are
			// answered (the lingering close) before the connection closes.
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if r.code != c.code {
			t.Errorf("%s: POST %q: got %s; want %d", c.name, trim(c.body), r, c.code)
			continue
		}
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
			t.Errorf("%s: error body %s is not {\"error\":{code,message}}", c.name, r.body)
		} else if c.ecode != "" && e.Error.Code != c.ecode {
			t.Errorf("%s: code %q; want %q", c.name, e.Error.Code, c.ecode)
		}
	}
	// A missing body: no Content-Length and no bytes at all.
	conn, err := net.Dial("tcp", env.Engine.Addr())
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = conn.Write([]byte("POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"))
	raw, _ := io.ReadAll(conn)
	conn.Close()
	if !bytes.HasPrefix(raw, []byte("HTTP/1.1 400")) {
		t.Errorf("POST without a body: %q; want 400", trim(raw))
	}

	// Positive controls: bodies at the limit and one below, and null for an
	// optional field (the contract refuses null only for required fields;
	// null there means absent, as encoding/json reads it) are accepted.
	controls := []struct {
		id   string
		body []byte
	}{
		{"ord_lim_m1", padTo(t, orderJSON("ord_lim_m1"), matrixLimit-1)},
		{"ord_lim_0", padTo(t, orderJSON("ord_lim_0"), matrixLimit)},
		{"ord_null_cur", []byte(`{"id":"ord_null_cur","user_id":"u","currency":null,"items":[{"sku":"milk-1l","qty":1}]}`)},
		{"ord_null_at", []byte(`{"id":"ord_null_at","user_id":"u","created_at":null,"items":[{"sku":"milk-1l","qty":1}]}`)},
		{"ord_null_price", []byte(`{"id":"ord_null_price","user_id":"u","items":[{"sku":"milk-1l","qty":1,"price_cents":null}]}`)},
	}
	ids := make([]string, len(controls))
	for i, c := range controls {
		ids[i] = c.id
		if r := do(t, http.MethodPost, env.URL+"/v1/orders", "application/json", c.body); r.code != http.StatusCreated {
			t.Errorf("control %s (%d bytes, limit %d): got %s; want 201", c.id, len(c.body), matrixLimit, r)
		}
	}
	for _, q := range []string{
		`SELECT count(*) FROM orders WHERE NOT id = ANY($1)`,
		`SELECT count(*) FROM order_items WHERE NOT order_id = ANY($1)`,
		`SELECT count(*) FROM outbox WHERE NOT order_id = ANY($1)`,
	} {
		if n := env.count(q, ids); n != 0 {
			t.Errorf("%s: %d rows from bad input", q, n)
		}
	}
	if n := env.count(`SELECT count(*) FROM orders`); n != int64(len(controls)) {
		t.Errorf("orders = %d; want the %d positive controls", n, len(controls))
	}
}

func trim(b []byte) string {
	if len(b) > 120 {
		return string(b[:120]) + fmt.Sprintf("…(%d bytes)", len(b))
	}
	return string(b)
}

// Auth and per-key rate limits end to end: 401 without a valid key, 429 over
// the key's limit, both with their headers and no row; a valid key within
// its limit commits. Made to fail once by configuring no keys: the keyless
// POST got 201.
func TestAuthAndRateLimitThroughTheListener(t *testing.T) {
	const key = "e2e-key-0123456789abcdef"
	env := newEnv(t, func(c *engine.Config) {
		c.Ingest.APIKeys = []ingest.APIKey{{Name: "e2e", Key: key}}
		c.Ingest.PerKeyLimit = ingest.Limit{Rate: 0.01, Burst: 2}
	})
	r := env.post(orderJSON("ord_noauth"))
	if r.code != http.StatusUnauthorized || !bytes.Contains(r.body, []byte(`"unauthorized"`)) || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("no key: got %s (WWW-Authenticate %q); want 401 unauthorized with a Bearer challenge", r, r.header.Get("WWW-Authenticate"))
	}
	if r := env.post(orderJSON("ord_badauth"), "Authorization", "Bearer wrong-key-0123456789abcdef"); r.code != http.StatusUnauthorized {
		t.Fatalf("wrong key: got %s; want 401", r)
	}
	auth := []string{"Authorization", "Bearer " + key}
	for _, id := range []string{"ord_ok1", "ord_ok2"} {
		if r := env.post(orderJSON(id), auth...); r.code != http.StatusCreated {
			t.Fatalf("%s with the key: got %s; want 201", id, r)
		}
	}
	r = env.post(orderJSON("ord_limited"), auth...)
	if r.code != http.StatusTooManyRequests || !bytes.Contains(r.body, []byte(`"rate_limited"`)) {
		t.Fatalf("over the key's limit: got %s; want 429 rate_limited", r)
	}
	for _, h := range []string{"Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} {
		if r.header.Get(h) == "" {
			t.Errorf("429 lacks %s", h)
		}
	}
	if n := env.count(`SELECT count(*) FROM orders WHERE id IN ('ord_noauth', 'ord_badauth', 'ord_limited')`); n != 0 {
		t.Errorf("rows for refused requests: %d", n)
	}
	if n := env.count(`SELECT count(*) FROM orders WHERE id IN ('ord_ok1', 'ord_ok2')`); n != 2 {
		t.Errorf("rows for accepted requests: %d; want 2", n)
	}
	// The admin listener stays open to the scraper: no key needed there.
	if r := do(t, http.MethodGet, env.AdminURL+"/healthz", "", nil); r.code != http.StatusOK {
		t.Errorf("admin /healthz with auth on: %s", r)
	}
}

// With -redis-url the per-key limit is shared: two engines on one Redis
// admit the burst once between them. Made to fail once by clearing
// RedisURL on the second engine: all 6 requests got 201.
func TestSharedRateLimitAcrossEngines(t *testing.T) {
	redisURL := "redis://127.0.0.1:6379/0"
	name := fmt.Sprintf("e2e-%d", time.Now().UnixNano())
	const key = "shared-key-0123456789abcdef"
	tweak := func(c *engine.Config) {
		c.RedisURL = redisURL
		c.Ingest.APIKeys = []ingest.APIKey{{Name: name, Key: key}}
		c.Ingest.PerKeyLimit = ingest.Limit{Rate: 0.01, Burst: 3}
	}
	a := newEnv(t, tweak)
	b := enginetest.Start(t, enginetest.WithDatabase(a.DatabaseURL), enginetest.WithBroker(a.Broker), enginetest.WithConfig(tweak))
	bBase := b.URL
	codes := map[int]int{}
	for i := range 6 {
		base := a.URL
		if i%2 == 1 {
			base = bBase
		}
		r := do(t, http.MethodPost, base+"/v1/orders", "application/json", []byte(orderJSON(fmt.Sprintf("ord_sh%d", i))), "Authorization", "Bearer "+key)
		codes[r.code]++
	}
	if codes[201] != 3 || codes[429] != 3 {
		t.Fatalf("two engines, one Redis, burst 3: codes %v; want 3×201 and 3×429", codes)
	}
	if n := a.count(`SELECT count(*) FROM orders`); n != 3 {
		t.Errorf("orders = %d; want 3", n)
	}
}
