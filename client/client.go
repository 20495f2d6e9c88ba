package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config configures a Client. The zero value of a field means its default.
type Config struct {
	// BaseURL is the server's public listener, e.g. "http://orderflow:8080".
	// Required.
	BaseURL string
	// APIKey is sent as "Authorization: Bearer <APIKey>" when set.
	APIKey string
	// HTTPClient sends the requests. Default: a client of its own with a
	// transport tuned for many concurrent requests to one host. Its own
	// Timeout, if any, applies per attempt.
	HTTPClient *http.Client
	// AttemptTimeout bounds one request (send and read the answer); the
	// call as a whole is bounded by its context. Default: 30s.
	AttemptTimeout time.Duration
	// MaxAttempts bounds the requests one call sends. Default: 10. Negative:
	// no limit but the caller's context.
	MaxAttempts int
	// MinBackoff is the first retry's backoff ceiling; it doubles per retry
	// up to MaxBackoff, and the wait is drawn uniformly below it (full
	// jitter), but never shorter than the server's Retry-After.
	// Defaults: 50ms and 5s.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// UserAgent is sent as User-Agent. Default: "orderflow-go-client".
	UserAgent string
}

// Client calls orderflow's public API. Create it with New. Safe for
// concurrent use.
type Client struct {
	cfg  Config
	base string // BaseURL without a trailing slash
	hc   *http.Client
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: BaseURL %q must be an http(s) URL with a host", cfg.BaseURL)
	}
	if cfg.AttemptTimeout == 0 {
		cfg.AttemptTimeout = 30 * time.Second
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 10
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 50 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		return nil, fmt.Errorf("client: MaxBackoff %v is below MinBackoff %v", cfg.MaxBackoff, cfg.MinBackoff)
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "orderflow-go-client"
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 256
		hc = &http.Client{Transport: tr}
	}
	return &Client{cfg: cfg, base: strings.TrimRight(cfg.BaseURL, "/"), hc: hc}, nil
}

// request is one call's request, built once and resent as is.
type request struct {
	method, path, contentType, idemKey string
	body                               []byte
}

// answer is one HTTP answer.
type answer struct {
	status     int
	body       []byte
	retryAfter time.Duration
}

// call sends r until it gets an answer that is not worth retrying, the
// attempts run out or ctx ends. The answer it returns is a success (2xx);
// anything else comes back as *Error.
func (c *Client) call(ctx context.Context, r *request) (*answer, error) {
	var last *Error
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, ctxError(ctx, last, attempt-1)
		}
		a, err := c.once(ctx, r)
		if err == nil && a.status < 300 {
			return a, nil
		}
		last = toError(a, err)
		last.Attempts = attempt
		if !retryable(last.StatusCode) || (c.cfg.MaxAttempts > 0 && attempt >= c.cfg.MaxAttempts) {
			return nil, last
		}
		if !c.sleep(ctx, attempt, last.RetryAfter) {
			return nil, ctxError(ctx, last, attempt)
		}
	}
}

// sleep waits before retry number attempt: full jitter below an
// exponential ceiling, at least retryAfter. It reports false when ctx ends
// first, or would end before the wait does (no point waiting).
func (c *Client) sleep(ctx context.Context, attempt int, retryAfter time.Duration) bool {
	ceil := c.cfg.MinBackoff << min(attempt-1, 30)
	if ceil > c.cfg.MaxBackoff || ceil <= 0 {
		ceil = c.cfg.MaxBackoff
	}
	d := rand.N(ceil) + 1
	if retryAfter > 0 {
		d = retryAfter + rand.N(c.cfg.MinBackoff+1)
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// once sends r one time.
func (c *Client) once(ctx context.Context, r *request) (*answer, error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.AttemptTimeout)
	defer cancel()
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(actx, r.method, c.base+r.path, body)
	if err != nil {
		return nil, err
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.idemKey != "" {
		req.Header.Set("Idempotency-Key", r.idemKey)
	}
	if c.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
	}
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	req.Header.Set("Accept", "application/json")
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, err // a reset mid-answer: the outcome is unknown
	}
	a := &answer{status: res.StatusCode, body: b}
	if s, err := strconv.Atoi(strings.TrimSpace(res.Header.Get("Retry-After"))); err == nil && s > 0 {
		a.retryAfter = time.Duration(s) * time.Second
	}
	return a, nil
}

// toError turns a non-2xx answer or a transport error into an *Error.
func toError(a *answer, err error) *Error {
	if err != nil {
		return &Error{Err: err}
	}
	e := &Error{StatusCode: a.status, RetryAfter: a.retryAfter}
	var eb struct {
		Error errorBody `json:"error"`
	}
	if json.Unmarshal(a.body, &eb) == nil {
		e.Code, e.Message, e.Field = eb.Error.Code, eb.Error.Message, eb.Error.Field
	}
	e.OutcomeKnown = outcomeKnown(a.status, e.Code)
	return e
}

// CreateOrder creates o (POST /v1/orders) and returns the committed answer:
// Replayed is set when o had been committed before. The request is
// encoded once and resent unchanged on every retry, Idempotency-Key
// included.
func (c *Client) CreateOrder(ctx context.Context, o Order) (*Created, error) {
	body, err := json.Marshal(o)
	if err != nil {
		return nil, &Error{Err: err, OutcomeKnown: true}
	}
	a, err := c.call(ctx, &request{method: http.MethodPost, path: "/v1/orders", contentType: "application/json", idemKey: o.IdempotencyKey, body: body})
	if err != nil {
		return nil, err
	}
	var out Created
	if err := json.Unmarshal(a.body, &out); err != nil {
		return nil, &Error{StatusCode: a.status, Err: fmt.Errorf("decode answer: %w", err)}
	}
	out.Replayed = a.status == http.StatusOK
	return &out, nil
}

// GetOrder reads a committed order (GET /v1/orders/{id}). A missing order
// is an *Error with Code "order_not_found" (see IsNotFound).
func (c *Client) GetOrder(ctx context.Context, id string) (*StoredOrder, error) {
	a, err := c.call(ctx, &request{method: http.MethodGet, path: "/v1/orders/" + url.PathEscape(id)})
	if err != nil {
		return nil, err
	}
	var out StoredOrder
	if err := json.Unmarshal(a.body, &out); err != nil {
		return nil, &Error{StatusCode: a.status, Err: fmt.Errorf("decode answer: %w", err), OutcomeKnown: true}
	}
	return &out, nil
}

// SetStatus moves order id to status (POST /v1/orders/{id}/status). Setting
// the current status again succeeds without a new version. A retry after
// an unknown outcome converges: the change applies once.
func (c *Client) SetStatus(ctx context.Context, id, status string) (*StatusResult, error) {
	body, _ := json.Marshal(struct {
		Status string `json:"status"`
	}{status})
	a, err := c.call(ctx, &request{method: http.MethodPost, path: "/v1/orders/" + url.PathEscape(id) + "/status", contentType: "application/json", body: body})
	if err != nil {
		return nil, err
	}
	var out StatusResult
	if err := json.Unmarshal(a.body, &out); err != nil {
		return nil, &Error{StatusCode: a.status, Err: fmt.Errorf("decode answer: %w", err)}
	}
	return &out, nil
}

// CreateOrders creates many orders in one request (POST /v1/order-batches,
// NDJSON) and returns one result per order, in input order. Items the
// server answered 503 (not committed, or not known to be) are resent, alone,
// within the call's retry budget, and their results replace the first
// ones; the counts are recomputed. Idempotency-Key is not sent: each
// order's id is its key.
func (c *Client) CreateOrders(ctx context.Context, orders []Order) (*BatchResult, error) {
	lines := make([][]byte, len(orders))
	for i := range orders {
		b, err := json.Marshal(&orders[i])
		if err != nil {
			return nil, &Error{Err: fmt.Errorf("order %d: %w", i, err), OutcomeKnown: true}
		}
		lines[i] = b
	}
	return c.bulk(ctx, "/v1/order-batches", lines)
}

// SetStatuses changes many orders' status in one request (POST
// /v1/status-updates), with CreateOrders' per-item results and retries.
// Changes to one order apply in input order.
func (c *Client) SetStatuses(ctx context.Context, changes []StatusChange) (*BatchResult, error) {
	lines := make([][]byte, len(changes))
	for i := range changes {
		lines[i], _ = json.Marshal(&changes[i])
	}
	return c.bulk(ctx, "/v1/status-updates", lines)
}

// bulk sends lines as NDJSON and resends the items answered 503 until none
// is left or the budget ends. The result has one entry per line.
func (c *Client) bulk(ctx context.Context, path string, lines [][]byte) (*BatchResult, error) {
	if len(lines) == 0 {
		return &BatchResult{Results: []ItemResult{}}, nil
	}
	final := make([]ItemResult, len(lines))
	pending := make([]int, len(lines)) // indexes into lines still to send
	for i := range pending {
		pending[i] = i
	}
	attempts := 0
	out := &BatchResult{Results: final}
	for round := 1; ; round++ {
		var buf bytes.Buffer
		for _, i := range pending {
			buf.Write(lines[i])
			buf.WriteByte('\n')
		}
		a, err := c.call(ctx, &request{method: http.MethodPost, path: path, contentType: "application/x-ndjson", body: buf.Bytes()})
		if err != nil {
			var e *Error
			if errors.As(err, &e) {
				attempts += e.Attempts
				e.Attempts = attempts
			}
			return nil, err
		}
		attempts++
		var got bulkJSON
		if err := json.Unmarshal(a.body, &got); err != nil || len(got.Results) != len(pending) {
			return nil, &Error{StatusCode: a.status, Err: fmt.Errorf("bulk answer with %d results for %d items: %v", len(got.Results), len(pending), err), Attempts: attempts}
		}
		// The server's counts are per round; an item resent next round
		// leaves "rejected" and is counted again by its new result.
		out.Created += got.Created
		out.Duplicates += got.Duplicates
		out.Rejected += got.Rejected
		var again []int
		for j, g := range got.Results {
			i := pending[j]
			r := ItemResult{Index: i, ID: g.ID, Status: g.Status}
			if g.Error != nil {
				r.Err = &Error{StatusCode: g.Status, Code: g.Error.Code, Message: g.Error.Message, Field: g.Error.Field,
					OutcomeKnown: outcomeKnown(g.Status, g.Error.Code), Attempts: attempts}
			}
			final[i] = r
			if r.Status == http.StatusServiceUnavailable {
				again = append(again, i)
			}
		}
		if len(again) == 0 || (c.cfg.MaxAttempts > 0 && attempts >= c.cfg.MaxAttempts) || !c.sleep(ctx, round, 0) {
			return out, nil
		}
		out.Rejected -= len(again)
		pending = again
	}
}
