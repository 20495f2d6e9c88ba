package apitest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/orderflow/orderflow/api"
)

// Pair is one (operation, status code) the spec lists or a test saw.
type Pair struct {
	Op     string // operationId, e.g. "createOrder"
	Status int
}

func (p Pair) String() string { return p.Op + " " + strconv.Itoa(p.Status) }

// Exchange is one HTTP request and its answer, as Check reads them.
type Exchange struct {
	Method     string
	Path       string // request URI: path and optional query
	ReqHeader  http.Header
	ReqBody    []byte // as sent (still gzipped when Content-Encoding says so)
	Status     int
	RespHeader http.Header
	RespBody   []byte
}

// Spec is the loaded OpenAPI document plus what the checks saw. Safe for
// concurrent use.
type Spec struct {
	doc    *openapi3.T
	router routers.Router
	opts   *openapi3filter.Options

	mu         sync.Mutex
	seen       map[Pair]int
	violations []string
	deferred   []Exchange
}

var (
	defaultOnce sync.Once
	defaultSpec *Spec
	defaultErr  error
)

// Default returns the process-wide Spec loaded from api.OpenAPI. It panics
// when the document does not load or validate: every check would be void.
func Default() *Spec {
	defaultOnce.Do(func() { defaultSpec, defaultErr = Load(api.OpenAPI) })
	if defaultErr != nil {
		panic("apitest: " + defaultErr.Error())
	}
	return defaultSpec
}

// Load parses and validates (kin-openapi Validate) an OpenAPI document.
func Load(doc []byte) (*Spec, error) {
	loader := openapi3.NewLoader()
	t, err := loader.LoadFromData(doc)
	if err != nil {
		return nil, fmt.Errorf("load openapi: %w", err)
	}
	if err := t.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("validate openapi: %w", err)
	}
	// Route on paths only: tests talk to ephemeral loopback ports.
	routed := *t
	routed.Servers = nil
	r, err := legacy.NewRouter(&routed)
	if err != nil {
		return nil, fmt.Errorf("openapi router: %w", err)
	}
	registerNDJSON()
	return &Spec{
		doc:    t,
		router: r,
		opts: &openapi3filter.Options{
			MultiError:              true,
			IncludeResponseStatus:   true,
			AuthenticationFunc:      openapi3filter.NoopAuthenticationFunc,
			SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.EnableFormatValidation()},
		},
		seen: map[Pair]int{},
	}, nil
}

var ndjsonOnce sync.Once

// registerNDJSON teaches openapi3filter application/x-ndjson: the body is
// validated as the array of its non-blank lines. A line that is not JSON
// stays a string (the bulk endpoints answer it per item, not as a whole).
func registerNDJSON() {
	ndjsonOnce.Do(func() {
		openapi3filter.RegisterBodyDecoder("application/x-ndjson", func(r io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
			b, err := io.ReadAll(r)
			if err != nil {
				return nil, err
			}
			out := []any{}
			for line := range bytes.SplitSeq(b, []byte("\n")) {
				line = bytes.TrimSpace(line)
				if len(line) == 0 {
					continue
				}
				var v any
				if json.Unmarshal(line, &v) != nil {
					v = string(line)
				}
				out = append(out, v)
			}
			return out, nil
		})
	})
}

// Pairs lists every (operation, status) the spec documents, sorted.
func (s *Spec) Pairs() []Pair {
	var out []Pair
	for _, pi := range s.doc.Paths.Map() {
		for _, op := range pi.Operations() {
			for code := range op.Responses.Map() {
				n, err := strconv.Atoi(code)
				if err != nil {
					continue
				}
				out = append(out, Pair{op.OperationID, n})
			}
		}
	}
	slices.SortFunc(out, func(a, b Pair) int {
		if c := strings.Compare(a.Op, b.Op); c != 0 {
			return c
		}
		return a.Status - b.Status
	})
	return out
}

// Seen returns how often each (operation, status) was checked.
func (s *Spec) Seen() map[Pair]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[Pair]int, len(s.seen))
	for k, v := range s.seen {
		out[k] = v
	}
	return out
}

// Violations returns every violation found so far.
func (s *Spec) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.violations)
}

// Check validates one exchange. It returns nil when the spec allows it,
// else an error describing every problem (also kept for Violations).
// Requests outside the spec's paths or methods must get a non-2xx error
// body.
func (s *Spec) Check(x Exchange) error {
	err := s.check(x)
	if err != nil {
		err = fmt.Errorf("openapi: %s %s → %d %.300s: %w", x.Method, x.Path, x.Status, x.RespBody, err)
		s.mu.Lock()
		s.violations = append(s.violations, err.Error())
		s.mu.Unlock()
	}
	return err
}

func (s *Spec) check(x Exchange) error {
	ctx := context.Background()
	body, gunzipErr := plainBody(x.ReqHeader, x.ReqBody)
	req, err := http.NewRequestWithContext(ctx, x.Method, "http://orderflow"+x.Path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	req.Header = x.ReqHeader.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Del("Content-Encoding") // validated below on the decoded body
	route, params, err := s.router.FindRoute(req)
	if err != nil {
		// No such path or method: the answer must refuse it with an error body.
		if x.Status < 400 {
			return fmt.Errorf("%v, yet answered %d", err, x.Status)
		}
		return errorBody(x.RespBody)
	}
	opts := s.opts
	if splitArray(route.Operation.OperationID, req.Header.Get("Content-Type"), body) {
		o := *s.opts
		o.ExcludeRequestBody = true
		opts = &o
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	reqErr := openapi3filter.ValidateRequest(ctx, in)
	if reqErr == nil && gunzipErr != nil {
		reqErr = gunzipErr
	}
	if reqErr == nil {
		reqErr = s.checkEncoding(x.ReqHeader)
	}
	var problems []error
	if reqErr != nil && x.Status < 300 {
		problems = append(problems, fmt.Errorf("answered %d to a request the spec refuses: %v", x.Status, reqErr))
	}
	rin := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 x.Status,
		Header:                 x.RespHeader,
		Body:                   io.NopCloser(bytes.NewReader(x.RespBody)),
		Options:                s.opts,
	}
	if err := openapi3filter.ValidateResponse(ctx, rin); err != nil {
		problems = append(problems, err)
	}
	if x.Status >= 400 {
		if err := errorBody(x.RespBody); err != nil {
			problems = append(problems, err)
		}
	}
	s.mu.Lock()
	s.seen[Pair{route.Operation.OperationID, x.Status}]++
	s.mu.Unlock()
	return errors.Join(problems...)
}

// splitArray reports whether a bulk request's body is a JSON array that is
// not valid JSON as a whole: the server splits an array into its elements
// without parsing it whole, and answers an element that is not JSON on its
// own (400 in its result), as api/openapi.yaml says; a JSON decoder cannot
// validate such a body, so only the answer is checked.
func splitArray(op, contentType string, body []byte) bool {
	if op != "createOrders" && op != "setStatuses" {
		return false
	}
	if mt, _, _ := strings.Cut(contentType, ";"); !strings.EqualFold(strings.TrimSpace(mt), "application/json") {
		return false
	}
	b := bytes.TrimLeft(body, " \t\r\n")
	return len(b) > 0 && b[0] == '[' && !json.Valid(body)
}

// checkEncoding applies the Content-Encoding parameter's schema (the
// header is removed before openapi3filter sees the decoded body).
func (s *Spec) checkEncoding(h http.Header) error {
	enc := h.Values("Content-Encoding")
	if len(enc) == 0 {
		return nil
	}
	p := s.doc.Components.Parameters["ContentEncoding"]
	if p == nil || p.Value == nil || p.Value.Schema == nil {
		return errors.New("spec lacks components.parameters.ContentEncoding")
	}
	for _, v := range enc {
		if err := p.Value.Schema.Value.VisitJSON(v); err != nil {
			return fmt.Errorf("Content-Encoding %q: %w", v, err)
		}
	}
	return nil
}

// maxPlainBody is the largest body the server accepts on any endpoint
// (the bulk default, 16 MiB); a gzipped body that inflates beyond it is not
// one the spec allows, and is not inflated further.
const maxPlainBody = 16 << 20

// plainBody returns the body as the server validates it: gunzipped when
// Content-Encoding is gzip (an error when it is not valid gzip or inflates
// beyond maxPlainBody; a bomb is measured, not held).
func plainBody(h http.Header, b []byte) ([]byte, error) {
	if !strings.EqualFold(strings.TrimSpace(h.Get("Content-Encoding")), "gzip") {
		return b, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("body is not gzip: %w", err)
	}
	n, err := io.Copy(io.Discard, io.LimitReader(zr, maxPlainBody+1))
	if err != nil {
		return nil, fmt.Errorf("body is not gzip: %w", err)
	}
	if n > maxPlainBody {
		return nil, fmt.Errorf("body inflates beyond %d bytes", maxPlainBody)
	}
	zr, _ = gzip.NewReader(bytes.NewReader(b))
	return io.ReadAll(zr)
}

// errorBody checks the shape every error answer has:
// {"error":{"code","message"[,"field"]}} and nothing else.
func errorBody(b []byte) error {
	var e map[string]map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&e); err != nil || len(e) != 1 || e["error"] == nil {
		return fmt.Errorf("error body %q is not {\"error\":{…}}", b)
	}
	d := e["error"]
	code, _ := d["code"].(string)
	msg, _ := d["message"].(string)
	if code == "" || msg == "" {
		return fmt.Errorf("error body %q lacks code or message", b)
	}
	for k := range d {
		if k != "code" && k != "message" && k != "field" {
			return fmt.Errorf("error body %q has an unknown key %q", b, k)
		}
	}
	return nil
}

// Transport returns a RoundTripper that sends through next (nil:
// http.DefaultTransport) and keeps every exchange with the public API for
// Flush to check (Main does), so the check costs the caller no time where it
// measures. Requests to the admin listener's paths pass unchecked.
func (s *Spec) Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{s: s, next: next}
}

type transport struct {
	s    *Spec
	next http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if adminPath(req.URL.Path) {
		return t.next.RoundTrip(req) // the admin listener: not the public API
	}
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		req.ContentLength = int64(len(body))
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	rb, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(rb))
	if err != nil {
		return resp, nil // a reset mid-body: nothing to check; the caller sees it on read
	}
	t.s.Defer(Exchange{
		Method: req.Method, Path: req.URL.RequestURI(), ReqHeader: req.Header, ReqBody: body,
		Status: resp.StatusCode, RespHeader: resp.Header.Clone(), RespBody: rb,
	})
	return resp, nil
}

// Defer keeps x to be checked by Flush (Main calls it), for callers that
// must not spend the check's time or memory where they measure.
func (s *Spec) Defer(x Exchange) {
	s.mu.Lock()
	s.deferred = append(s.deferred, x)
	s.mu.Unlock()
}

// Flush checks every deferred exchange; the violations are kept.
func (s *Spec) Flush() {
	s.mu.Lock()
	xs := s.deferred
	s.deferred = nil
	s.mu.Unlock()
	for _, x := range xs {
		_ = s.Check(x)
	}
}

// Main runs a test binary's tests, then fails it when any check found a
// violation (also one a test ignored). Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	Default().Flush()
	if v := Default().Violations(); len(v) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d exchange(s) broke api/openapi.yaml:\n", len(v))
		for _, s := range v {
			fmt.Fprintln(os.Stderr, "  "+s)
		}
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// adminPath reports whether p is one of the admin listener's paths, which
// the public spec does not describe.
func adminPath(p string) bool {
	switch p {
	case "/metrics", "/healthz", "/readyz", "/openapi.yaml":
		return true
	}
	return strings.HasPrefix(p, "/debug/pprof/")
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
