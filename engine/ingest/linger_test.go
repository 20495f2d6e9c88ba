package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// countingListener counts accepted connections, so a test can tell a
// kept-alive connection from a new one whatever the client.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// serveCounting serves ts on a loopback TCP port through a countingListener.
func (ts *testServer) serveCounting() (string, *countingListener) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ts.t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	ts.serve(cl)
	return ln.Addr().String(), cl
}

// oversized is one over-the-limit request: its body, how it is framed and
// where it goes.
type oversized struct {
	path, ct string
	body     []byte // what is sent (the gzip stream when gzipped)
	chunked  bool
	gzipped  bool
}

// sender sends a small valid order and then, on the same connection when
// keepAlive is set (else on a new one), the oversized request, and returns
// the answer to the oversized one.
type sender func(t *testing.T, addr string, keepAlive bool, o oversized) resp

func sendNetHTTP(t *testing.T, addr string, keepAlive bool, o oversized) resp {
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	if keepAlive {
		r, err := c.Post("http://"+addr+"/v1/orders", "application/json", strings.NewReader(validOrder))
		if err != nil {
			return resp{err: fmt.Errorf("small request: %w", err)}
		}
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
		if r.StatusCode != 201 {
			return resp{err: fmt.Errorf("small request: %d", r.StatusCode)}
		}
	}
	var body io.Reader = bytes.NewReader(o.body)
	if o.chunked {
		body = io.MultiReader(body) // unknown length: net/http sends it chunked
	}
	req, err := http.NewRequest("POST", "http://"+addr+o.path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", o.ct)
	if o.gzipped {
		req.Header.Set("Content-Encoding", "gzip")
	}
	var reused bool
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
	}))
	r, err := c.Do(req)
	if err != nil {
		return resp{err: err}
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return resp{err: fmt.Errorf("reading the answer's body: %w", err)}
	}
	if reused != keepAlive {
		t.Errorf("net/http: connection reused = %v; want %v", reused, keepAlive)
	}
	out := resp{code: r.StatusCode, header: map[string]string{}, body: b}
	for k := range r.Header {
		out.header[k] = r.Header.Get(k)
	}
	if r.Close {
		out.header["Connection"] = "close" // net/http moves it out of Header
	}
	return out
}

func sendFasthttp(t *testing.T, addr string, keepAlive bool, o oversized) resp {
	c := &fasthttp.Client{
		Dial:        func(string) (net.Conn, error) { return net.Dial("tcp", addr) },
		ReadTimeout: 60 * time.Second, WriteTimeout: 60 * time.Second,
	}
	defer c.CloseIdleConnections()
	if keepAlive {
		if r := do(c, "POST", "/v1/orders", "application/json", []byte(validOrder)); r.code != 201 {
			return resp{err: fmt.Errorf("small request: %s", r)}
		}
	}
	var hdr []string
	if o.gzipped {
		hdr = []string{"Content-Encoding", "gzip"}
	}
	return doFramed(c, "POST", o.path, o.ct, o.body, o.chunked, hdr...)
}

func sendCurl(t *testing.T, addr string, keepAlive bool, o oversized) resp {
	dir := t.TempDir()
	bodyFile, hdrFile, outFile := filepath.Join(dir, "body"), filepath.Join(dir, "headers"), filepath.Join(dir, "out")
	if err := os.WriteFile(bodyFile, o.body, 0o600); err != nil {
		t.Fatal(err)
	}
	var args []string
	if keepAlive {
		args = append(args, "-sS", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n",
			"-H", "Content-Type: application/json", "--data-binary", validOrder, "http://"+addr+"/v1/orders", "--next")
	}
	args = append(args, "-sS", "-o", outFile, "-D", hdrFile, "-w", "%{http_code} %{num_connects}\n",
		"-H", "Content-Type: "+o.ct, "--data-binary", "@"+bodyFile)
	if o.chunked {
		args = append(args, "-H", "Transfer-Encoding: chunked")
	}
	if o.gzipped {
		args = append(args, "-H", "Content-Encoding: gzip")
	}
	args = append(args, "http://"+addr+o.path)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "curl", args...).CombinedOutput()
	if err != nil {
		return resp{err: fmt.Errorf("curl: %v: %s", err, out)}
	}
	lines := strings.Fields(strings.TrimSpace(string(out)))
	if keepAlive && (len(lines) != 4 || lines[0] != "201" || lines[3] != "0") {
		return resp{err: fmt.Errorf("curl: want a 201 then an answer on the same connection (num_connects 0), got %q", out)}
	}
	hdr, err := os.ReadFile(hdrFile)
	if err != nil {
		t.Fatal(err)
	}
	r := resp{header: map[string]string{}}
	r.body, _ = os.ReadFile(outFile)
	// The last header block is the final answer (a 100 Continue may come first).
	blocks := strings.Split(strings.TrimSpace(strings.ReplaceAll(string(hdr), "\r\n", "\n")), "\n\n")
	sc := bufio.NewScanner(strings.NewReader(blocks[len(blocks)-1]))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "HTTP/") {
			_, _ = fmt.Sscanf(line, "HTTP/1.1 %d", &r.code)
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			r.header[http.CanonicalHeaderKey(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
	}
	return r
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// check413 reports what is wrong with r as the answer to an oversized body.
func check413(r resp) string {
	switch {
	case r.err != nil:
		return "error " + r.err.Error()
	case r.code != fasthttp.StatusRequestEntityTooLarge || errorCode(r.body) != "body_too_large":
		return r.String() + "; want 413 body_too_large"
	case !strings.EqualFold(r.header["Connection"], "close"):
		return fmt.Sprintf("%s with Connection %q; want Connection: close", r, r.header["Connection"])
	}
	return ""
}

// An oversized body is answered 413 with the JSON error body and
// Connection: close, never reset: bodies just over, 4× and 64× the limit;
// Content-Length, chunked and gzip inflating past it; both order
// endpoints; fresh and kept-alive connections; net/http, fasthttp's client
// and curl. Before the lingering close, net/http and fasthttp's client saw
// "connection reset by peer" or "broken pipe" on most cases over 4× the
// limit.
func TestOversizedBodyIsAnswered(t *testing.T) {
	const single, bulk = 64 << 10, 256 << 10
	ts := newTestServer(t, Config{MaxBodyBytes: single, MaxBatchBodyBytes: bulk}, nil)
	addr, ln := ts.serveCounting()
	clients := []struct {
		name string
		send sender
	}{{"net-http", sendNetHTTP}, {"fasthttp", sendFasthttp}, {"curl", sendCurl}}
	routes := []struct {
		path, ct string
		limit    int
	}{{"/v1/orders", "application/json", single}, {"/v1/order-batches", "application/x-ndjson", bulk}}
	bodies := map[string][]byte{} // built once: the gzip ones take a while under -race
	var small int64               // small orders sent before an oversized one
	for _, cl := range clients {
		for _, rt := range routes {
			for _, framing := range []string{"length", "chunked", "gzip"} {
				for _, factor := range []int{1, 4, 64} {
					for _, keepAlive := range []bool{false, true} {
						name := fmt.Sprintf("client=%s/path=%s/body=%s/size=%dx/keepalive=%v", cl.name, rt.path, framing, factor, keepAlive)
						t.Run(name, func(t *testing.T) {
							o := oversized{path: rt.path, ct: rt.ct, chunked: framing == "chunked", gzipped: framing == "gzip"}
							key := fmt.Sprint(rt.limit, factor, o.gzipped)
							if bodies[key] == nil {
								bodies[key] = bytes.Repeat([]byte{' '}, factor*rt.limit+1)
								if o.gzipped {
									bodies[key] = gzipped(bodies[key])
								}
							}
							o.body = bodies[key]
							if keepAlive {
								small++
							}
							before := ln.accepted.Load()
							r := cl.send(t, addr, keepAlive, o)
							if msg := check413(r); msg != "" {
								t.Fatal(msg)
							}
							if n := ln.accepted.Load() - before; n != 1 {
								t.Errorf("the requests took %d connections; want 1", n)
							}
						})
					}
				}
			}
		}
	}
	if n := ts.orders.submitted.Load(); n != small {
		t.Errorf("orders submitted = %d; want %d (only the small ones)", n, small)
	}
}

// The measurement: net/http posting a body just over the default
// 1 MiB limit right after a small request on the same kept-alive
// connection. Before the lingering close 8 to 16 in 40 were reset; now all
// 100 are answered. Made to fail once by closing marked connections at once
// again: 6 of 100 were reset under -race (and every 64× case of
// TestOversizedBodyIsAnswered).
func TestOversizedBodyAfterKeepAlive100Times(t *testing.T) {
	ts := newTestServer(t, Config{}, nil)
	addr, _ := ts.serveCounting()
	o := oversized{path: "/v1/orders", ct: "application/json", body: bytes.Repeat([]byte{' '}, 1<<20+1)}
	failed := 0
	for i := range 100 {
		if msg := check413(sendNetHTTP(t, addr, true, o)); msg != "" {
			failed++
			t.Errorf("try %d: %s", i, msg)
		}
	}
	if failed > 0 {
		t.Errorf("%d of 100 kept-alive tries did not read the 413", failed)
	}
}

// zeros is an endless reader of spaces that allocates nothing.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// Draining discards: 64 bodies of 64× the limit sent at once (256 MiB in
// all) are each answered 413 while the heap stays flat.
func TestOversizedBodiesAtOnceKeepHeapFlat(t *testing.T) {
	const limit, bodies = 64 << 10, 64
	ts := newTestServer(t, Config{MaxBodyBytes: limit}, nil)
	addr, _ := ts.serveCounting()
	// With the default GOGC the heap may hold up to its live size again in
	// garbage before a collection (peak ≈ 2× base), which measures the
	// pacer, not what refusing the bodies keeps. A low GOGC keeps HeapInuse
	// close to live memory, so the bound below is about retention.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
	tr := &http.Transport{DisableCompression: true, MaxConnsPerHost: bodies, MaxIdleConnsPerHost: bodies}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 120 * time.Second}
	answers := make([]resp, bodies)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", "http://"+addr+"/v1/orders", io.LimitReader(zeros{}, 64*limit))
			req.ContentLength = 64 * limit
			req.Header.Set("Content-Type", "application/json")
			r, err := c.Do(req)
			if err != nil {
				answers[i] = resp{err: err}
				return
			}
			defer r.Body.Close()
			b, err := io.ReadAll(r.Body)
			answers[i] = resp{code: r.StatusCode, body: b, err: err, header: map[string]string{}}
			if r.Close {
				answers[i].header["Connection"] = "close"
			}
		})
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	for i, r := range answers {
		if msg := check413(r); msg != "" {
			t.Errorf("body %d: %s", i, msg)
		}
	}
	grew := int64(peak.Load()) - int64(base)
	t.Logf("heap in use: %d MiB before, peak %d MiB while %d MiB of bodies were refused", base>>20, peak.Load()>>20, bodies*64*limit>>20)
	if grew > 48<<20 {
		t.Errorf("the heap grew by %d MiB while refusing %d bodies of %d MiB; want it flat (< 48 MiB: client and server buffers only)", grew>>20, bodies, 64*limit>>20)
	}
}

// streamForever sends headers announcing a huge body, then body bytes (as
// fast as it can, or one every 10ms when dribble is set) until a write
// fails. It returns the first line of the answer read meanwhile, whether
// the answer was followed by end of stream (the server's half-close), and
// how long after the answer the writes started failing.
func streamForever(t *testing.T, addr string, dribble bool) (line string, eof bool, closedAfter time.Duration) {
	t.Helper()
	conn := dialTCP(t, addr, 60*time.Second)
	if _, err := fmt.Fprintf(conn, "POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", int64(1)<<40); err != nil {
		t.Fatal(err)
	}
	answered := make(chan time.Time, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		br := bufio.NewReader(conn)
		line, _ = br.ReadString('\n')
		answered <- time.Now()
		_, err := io.Copy(io.Discard, br)
		eof = err == nil
	})
	chunk := make([]byte, 32<<10)
	if dribble {
		chunk = chunk[:1]
	}
	for {
		if _, err := conn.Write(chunk); err != nil {
			break
		}
		if dribble {
			time.Sleep(10 * time.Millisecond)
		}
	}
	failed := time.Now()
	wg.Wait()
	return strings.TrimSpace(line), eof, failed.Sub(<-answered)
}

func lingerEnds(ts *testServer, end lingerEnd) float64 {
	return counter(ts.m.LingerClosed.WithLabelValues(lingerEndNames[end]))
}

// A client that keeps streaming after the 413 cannot hold the connection:
// the server reads and discards at most LingerMaxBytes, for at most
// LingerTimeout, then closes. Either way the client has read the 413 and
// the end of stream (the half-close) before; its writes then fail. Made to
// fail once by not counting the discarded bytes against the bound: the
// fast client was closed 60s after the answer, by the time bound.
func TestLingeringCloseIsBounded(t *testing.T) {
	f := func(name string, cfg Config, dribble bool, want lingerEnd, within time.Duration) {
		t.Run(name, func(t *testing.T) {
			cfg.MaxBodyBytes = 1024
			ts := newTestServer(t, cfg, nil)
			addr := ts.serveTCP()
			line, eof, after := streamForever(t, addr, dribble)
			if !strings.HasPrefix(line, "HTTP/1.1 413") {
				t.Errorf("answer %q; want 413", line)
			}
			if !eof {
				t.Error("the answer was not followed by end of stream (the half-close)")
			}
			if after > within {
				t.Errorf("the connection was closed %v after the answer; want within %v", after, within)
			}
			waitUntil(t, 10*time.Second, "the lingering close counted", func() bool { return lingerEnds(ts, want) == 1 })
			if n := counter(ts.m.LingerBytes); want == endByteBound && n != float64(cfg.LingerMaxBytes) {
				t.Errorf("discarded %v bytes; want exactly LingerMaxBytes (%d)", n, cfg.LingerMaxBytes)
			}
			if g := gauge(ts.m.Lingering); g != 0 {
				t.Errorf("lingering gauge = %v after the close; want 0", g)
			}
		})
	}
	f("bound=bytes", Config{LingerMaxBytes: 4 << 20, LingerTimeout: time.Minute}, false, endByteBound, 30*time.Second)
	f("bound=time", Config{LingerTimeout: 300 * time.Millisecond}, true, endTimeBound, 10*time.Second)
}

// Past LingerMaxConns a connection is closed at once (busy), and Shutdown
// cuts lingering connections once its context ends.
func TestLingeringBusyAndShutdown(t *testing.T) {
	ts := newTestServer(t, Config{MaxBodyBytes: 1024, LingerMaxConns: 1, LingerTimeout: time.Minute}, nil)
	addr := ts.serveTCP()
	var wg sync.WaitGroup
	lines := make([]string, 2)
	wg.Go(func() { lines[0], _, _ = streamForever(t, addr, true) })
	waitUntil(t, 10*time.Second, "one connection lingering", func() bool { return gauge(ts.m.Lingering) == 1 })
	lines[1], _, _ = streamForever(t, addr, true)
	if got := lingerEnds(ts, endBusy); got != 1 {
		t.Errorf("busy closes = %v; want 1", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_ = ts.s.Shutdown(ctx)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Shutdown took %v with a connection lingering; want about its 200ms context", d)
	}
	wg.Wait()
	if got := lingerEnds(ts, endShutdown); got != 1 {
		t.Errorf("closes cut by Shutdown = %v; want 1", got)
	}
	// The busy one was closed with its body unread: it may have seen a
	// reset before the answer, so only the lingering one is checked.
	if !strings.HasPrefix(lines[0], "HTTP/1.1 413") {
		t.Errorf("lingering client: answer %q; want 413", lines[0])
	}
}

// A request not read in time (408) closes at once: a client that slow gets
// no lingering time. Made to fail once by lingering after a 408 too: the
// gauge read 1 once the client saw the end of stream.
func TestTimedOutRequestDoesNotLinger(t *testing.T) {
	ts := newTestServer(t, Config{ReadTimeout: 200 * time.Millisecond}, nil)
	conn := dialTCP(t, ts.serveTCP(), 10*time.Second)
	if _, err := conn.Write([]byte("POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")); err != nil {
		t.Fatal(err)
	}
	answer, err := io.ReadAll(conn) // to the server's FIN: its Close, or a lingering close's half-close
	if !bytes.HasPrefix(answer, []byte("HTTP/1.1 408")) {
		t.Fatalf("answer %q (%v); want 408", answer, err)
	}
	// A lingering close counts itself before it half-closes, so the gauge
	// is settled once the client has read the end of stream.
	if g := gauge(ts.m.Lingering); g != 0 {
		t.Errorf("lingering gauge = %v after a 408; want 0", g)
	}
}
