package noop

import (
	"net"
	"testing"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

func TestAnswers201ToAnything(t *testing.T) {
	ln := fasthttputil.NewInmemoryListener()
	srv := NewServer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	defer func() {
		_ = srv.Shutdown()
		<-done
	}()
	c := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	f := func(method, uri, body string) {
		t.Helper()
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.Header.SetMethod(method)
		req.SetRequestURI(uri)
		req.SetBodyString(body)
		if err := c.Do(req, resp); err != nil {
			t.Fatalf("%s %s: %v", method, uri, err)
		}
		if resp.StatusCode() != 201 || string(resp.Body()) != Body {
			t.Fatalf("%s %s %q: got %d %q; want 201 %q", method, uri, body, resp.StatusCode(), resp.Body(), Body)
		}
	}
	f("POST", "http://x/v1/orders", `{"id":"a"}`)
	f("POST", "http://x/v1/order-batches", "{}\n{}\n")
	f("GET", "http://x/anything", "")
}
