package ingest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/valyala/fasthttp"
)

// fuzzRoutes are the (method, path, Content-Type) a fuzz input is sent to,
// chosen by its first argument.
var fuzzRoutes = []struct{ method, path, ct string }{
	{"POST", "/v1/orders", "application/json"},
	{"POST", "/v1/orders/ord_1/status", "application/json"},
	{"POST", "/v1/order-batches", "application/x-ndjson"},
	{"POST", "/v1/order-batches", "application/json"},
	{"POST", "/v1/status-updates", "application/x-ndjson"},
	{"POST", "/v1/orders", "text/plain"},
	{"GET", "/v1/orders/ord_1", ""},
}

// inputError are the statuses that promise nothing was submitted.
var inputError = map[int]bool{400: true, 405: true, 413: true, 415: true, 422: true}

// allowedCodes per route index: anything else is a bug.
var allowedCodes = map[int]bool{200: true, 201: true, 400: true, 404: true, 405: true, 409: true, 413: true, 415: true, 422: true}

// FuzzHandler drives the whole handler (routing, guard, body limits, gunzip,
// decode, price, submit, answer) with arbitrary bodies, routes, encodings and
// Authorization headers, on three servers: one open, the same with
// -ingest.decoder=jsoniter (which must answer exactly alike), one with an
// API key.
// Invariants: no panic is recovered (handler_panics stays 0); every status
// is one the contract lists for input errors or success; every 4xx carries
// the contract's error body; a 201 to POST /v1/orders submits exactly one
// order and 400/405/413/415/422 submit nothing; without the right key it is
// always 401 and nothing is submitted.
func FuzzHandler(f *testing.F) {
	files, _ := filepath.Glob("../order/testdata/*")
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(0), false, "Bearer "+keyA, b)
		f.Add(uint8(2), false, "", b)
		f.Add(uint8(3), true, "Bearer x", b)
	}
	f.Add(uint8(0), true, "Bearer "+keyA, []byte(validOrder))
	f.Add(uint8(1), false, "", []byte(`{"status":"paid"}`))
	f.Add(uint8(4), false, "", []byte(`{"id":"ord_1","status":"paid"}`+"\n"+`{"id":"ord_2","status":"x"}`))
	f.Add(uint8(6), false, "bearer "+keyA, []byte(nil))

	cfg := Config{MaxBodyBytes: 64 << 10, MaxBatchBodyBytes: 256 << 10, MaxBatchItems: 100}
	open := newTestServer(f, cfg, nil)
	jsoniterCfg := cfg
	jsoniterCfg.Decoder = DecoderJsoniter
	openJsoniter := newTestServer(f, jsoniterCfg, nil)
	authCfg := cfg
	authCfg.APIKeys = []APIKey{{Name: "a", Key: keyA}}
	guarded := newTestServer(f, authCfg, nil)

	f.Fuzz(func(t *testing.T, route uint8, gz bool, auth string, body []byte) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		payload := body
		if gz {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			_, _ = zw.Write(body)
			_ = zw.Close()
			payload = buf.Bytes()
		}
		run := func(ts *testServer) (int, []byte, int64) {
			var req fasthttp.Request
			req.Header.SetMethod(rt.method)
			req.SetRequestURI(rt.path)
			if rt.ct != "" {
				req.Header.SetContentType(rt.ct)
			}
			if gz {
				req.Header.Set("Content-Encoding", "gzip")
			}
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			req.SetBody(payload)
			var ctx fasthttp.RequestCtx
			ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, nil)
			before := ts.orders.submitted.Load() + ts.updates.submitted.Load()
			ts.s.handle(&ctx)
			return ctx.Response.StatusCode(), append([]byte(nil), ctx.Response.Body()...), ts.orders.submitted.Load() + ts.updates.submitted.Load() - before
		}

		code, out, submitted := run(open)
		if jcode, jout, jsub := run(openJsoniter); jcode != code || !bytes.Equal(jout, out) || jsub != submitted {
			t.Fatalf("%s %s gz=%v body %q: scanner %d %s (%d submitted); jsoniter %d %s (%d submitted)", rt.method, rt.path, gz, body, code, out, submitted, jcode, jout, jsub)
		}
		if p := counter(open.m.HandlerPanics); p != 0 {
			t.Fatalf("%s %s gz=%v body %q: the handler panicked (recovered as 500)", rt.method, rt.path, gz, body)
		}
		if !allowedCodes[code] {
			t.Fatalf("%s %s gz=%v body %q: status %d %s is not an input-error or success status", rt.method, rt.path, gz, body, code, out)
		}
		if code >= 400 {
			if errorCode(out) == "" {
				t.Fatalf("%s %s body %q: %d with body %s; want {\"error\":{code,message}}", rt.method, rt.path, body, code, out)
			}
			if inputError[code] && submitted != 0 {
				t.Fatalf("%s %s body %q: %d yet %d items submitted", rt.method, rt.path, body, code, submitted)
			}
		}
		if route := int(route) % len(fuzzRoutes); route == 0 {
			if (code == 201) != (submitted == 1) {
				t.Fatalf("POST /v1/orders body %q: status %d with %d orders submitted", body, code, submitted)
			}
			if code == 201 {
				var created struct{ ID, Status string }
				if err := json.Unmarshal(out, &created); err != nil || created.ID == "" || created.Status != "created" {
					t.Fatalf("POST /v1/orders body %q: 201 body %s", body, out)
				}
			}
		}

		gcode, gout, gsub := run(guarded)
		a := []byte(auth)
		authorized := len(a) >= 7 && bytes.EqualFold(a[:7], []byte("bearer ")) && string(bytes.TrimSpace(a[7:])) == keyA
		if !authorized && (gcode != 401 || gsub != 0 || errorCode(gout) != "unauthorized") {
			t.Fatalf("Authorization %q: got %d %s with %d submitted; want 401 and nothing", auth, gcode, gout, gsub)
		}
		if authorized && gcode == 401 {
			t.Fatalf("Authorization %q with the right key: 401", auth)
		}
	})
}
