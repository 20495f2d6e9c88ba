package loadtest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Load models.
const (
	// ModeClosed runs Conns workers that each send a request, wait for its
	// answer and send the next one. Throughput adapts to the server.
	ModeClosed = "closed"
	// ModeOpen sends requests on a fixed schedule of Rate per second,
	// whatever the server does, and measures latency from the schedule.
	ModeOpen = "open"
)

// Scenarios.
const (
	// ScenarioOrders sends only new orders, without Idempotency-Key.
	ScenarioOrders = "orders"
	// ScenarioDuplicates sends every order with an Idempotency-Key and, for
	// DuplicateRatio of the requests, resends an order that was already
	// acknowledged (same id, same body, same key); the server must answer 200.
	ScenarioDuplicates = "duplicates"
	// ScenarioBatches sends BatchSize new orders per request to
	// POST /v1/order-batches as NDJSON; every item's own result counts.
	ScenarioBatches = "batches"
	// ScenarioMix creates orders and moves each acknowledged one through
	// MixStatuses with POST /v1/orders/{id}/status, one request per change:
	// a third of the requests are creates, two thirds status updates.
	ScenarioMix = "mix"
	// ScenarioStatus measures status changes alone: before the clock
	// starts it creates StatusOrders orders with POST /v1/order-batches,
	// then every request is a POST /v1/orders/{id}/status moving one of
	// them along StatusChain. A worker that runs out of prepared orders
	// creates new ones (they show in the order counts).
	ScenarioStatus = "status"
	// ScenarioBatcher sends new orders through the Go client's Batcher
	// (package client): each worker is one caller of Batcher.CreateOrder,
	// and the Batcher coalesces the callers' orders into POST
	// /v1/order-batches requests. A "request" counts one caller's order;
	// the client does not retry (MaxAttempts 1), so refusals are counted.
	ScenarioBatcher = "batcher"
)

// Scenarios lists every scenario, for flag help and validation.
var Scenarios = []string{ScenarioOrders, ScenarioDuplicates, ScenarioBatches, ScenarioMix, ScenarioStatus, ScenarioBatcher}

// MixStatuses are the status changes ScenarioMix applies, in order, to each
// order it created: versions 2 and 3.
var MixStatuses = []string{"paid", "assembling"}

// StatusChain are the status changes ScenarioStatus applies, in order, to
// each order: versions 2 to 5.
var StatusChain = []string{"paid", "assembling", "delivering", "delivered"}

// statusesOf returns the status changes a scenario applies to each order,
// nil when it applies none.
func statusesOf(scenario string) []string {
	switch scenario {
	case ScenarioMix:
		return MixStatuses
	case ScenarioStatus:
		return StatusChain
	}
	return nil
}

// prepareBatch is how many orders one bulk request of ScenarioStatus's
// preparation carries.
const prepareBatch = 1000

// MaxBatchSize is the API's limit of orders per bulk request.
const MaxBatchSize = 10_000

// maxRunID bounds RunID so that an order id, lt_<run id>_<n>, stays within
// the API's 64 characters for any n (20 digits at most).
const maxRunID = 64 - len("lt_") - 1 - 20

// DuplicateRatio is the share of requests that resend an acknowledged order
// in [ScenarioDuplicates].
const DuplicateRatio = 0.05

// DefaultSKUs is the demo catalog that `orderflow seed-demo-catalog` creates.
var DefaultSKUs = []string{
	"milk-1l", "bread-rye", "eggs-10", "apples-1kg",
	"butter-250g", "coffee-500g", "bananas-1kg", "cheese-gouda",
}

// Config describes one load run. The zero value of every field means "use the
// default"; [Config.WithDefaults] fills them in and [New] validates the result.
type Config struct {
	// Target is the server's base URL. Default: http://127.0.0.1:8080.
	// Only loopback hosts are accepted unless AllowRemote is set.
	Target string
	// AllowRemote permits a Target that is not a loopback address.
	// Default: false, so a typo cannot load a shared machine.
	AllowRemote bool
	// CAFile is a PEM file of the certificate authorities an https Target's
	// certificate must chain to (a private CA, a test's). Default: the
	// system roots.
	CAFile string
	// APIKey is sent on every request as "Authorization: Bearer <APIKey>",
	// for a target that requires keys. It never appears in a report.
	// Visible ASCII only. Default: "" (no header).
	APIKey string
	// Mode is ModeClosed or ModeOpen. Default: ModeClosed.
	Mode string
	// Conns is the number of closed-loop workers, each with its own
	// keep-alive connection. Default: 64.
	Conns int
	// Rate is the open-loop schedule in requests per second. Required in
	// ModeOpen, ignored in ModeClosed.
	Rate int
	// MaxInFlight bounds the open-loop requests that are queued or in
	// flight (and so the connections used); a scheduled request that finds
	// the bound reached is not sent and counts as dropped by the generator.
	// Default: 1024.
	MaxInFlight int
	// Duration is the measured part of the run, after Warmup. Default: 10s.
	Duration time.Duration
	// Warmup runs load before measuring; its orders are sent and reconciled
	// but not counted in latencies, counts or rates. Default: 0.
	Warmup time.Duration
	// MaxRequests stops the run after this many requests (warmup included;
	// in open loop, scheduled requests, dropped ones included) even if
	// Duration has not passed. Default: 0, no limit.
	MaxRequests int64
	// RequestTimeout bounds one request, connect included. Default: 10s.
	RequestTimeout time.Duration
	// Scenario is one of Scenarios. Default: ScenarioOrders.
	Scenario string
	// BatchSize is the number of orders per request in ScenarioBatches,
	// 1–MaxBatchSize. Default: 100; ignored by the other scenarios.
	BatchSize int
	// StatusOrders is how many orders ScenarioStatus creates before
	// measuring. Default: 20,000 (80,000 status changes); ignored by the
	// other scenarios.
	StatusOrders int
	// Name labels the target in reports and charts ("orderflow",
	// "baseline"); it does not change what is sent. Default: "".
	Name string
	// Items is the number of items per order, 1–100. Default: 3.
	Items int
	// SKUs are the products items are drawn from; each must exist in the
	// server's catalog. Default: DefaultSKUs.
	SKUs []string
	// RunID makes this run's order ids unique: ids are lt_<RunID>_<n>.
	// 1–40 of A-Z a-z 0-9 _ - . :. Default: UTC time plus random hex.
	RunID string
	// Window, when set, adds Report.Windows: counts and latencies (p50,
	// p99, p99.9 at 3 significant figures) per Window of the measured
	// window, and lets [Result.LatencyBetween] merge them. Default: 0 (off).
	Window time.Duration
	// PostgresPID is the PostgreSQL postmaster's process id (see
	// [FindPostmaster]); when set, the CPU time of the postmaster and its
	// children (from /proc) over the measured window is reported beside
	// the server's. Default: 0 (off).
	PostgresPID int
	// Admin is the server's admin base URL; when set, /metrics is scraped
	// when measuring starts and ends to report the server's CPU, allocation
	// and GC cost. A failed scrape is reported, not fatal. Default: "" (off).
	Admin string
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Target == "" {
		c.Target = "http://127.0.0.1:8080"
	}
	if c.Mode == "" {
		c.Mode = ModeClosed
	}
	if c.Conns == 0 {
		c.Conns = 64
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 1024
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.Scenario == "" {
		c.Scenario = ScenarioOrders
	}
	if c.Items == 0 {
		c.Items = 3
	}
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
	if c.StatusOrders == 0 && c.Scenario == ScenarioStatus {
		c.StatusOrders = 20_000
	}
	if len(c.SKUs) == 0 {
		c.SKUs = append([]string(nil), DefaultSKUs...)
	}
	if c.RunID == "" {
		c.RunID = NewRunID()
	}
	return c
}

// NewRunID returns a fresh run id: the UTC time to the second and 4 random
// hex digits, e.g. 20261126T114500-9f3a. It sorts by start time.
func NewRunID() string {
	var b [2]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

// Validate reports the first field that is out of range or does not go with
// the others. It expects a Config that went through WithDefaults.
func (c Config) Validate() error {
	u, err := url.Parse(c.Target)
	if err != nil {
		return fmt.Errorf("target %q: %w", c.Target, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("target %q: want http://host[:port] or https://host[:port]", c.Target)
	}
	if !c.AllowRemote && !isLoopback(u.Hostname()) {
		return fmt.Errorf("target %q is not a loopback address: set AllowRemote (-allow-remote) to load another machine", c.Target)
	}
	for i := 0; i < len(c.APIKey); i++ {
		if b := c.APIKey[i]; b < 0x21 || b > 0x7e {
			return fmt.Errorf("API key: want visible ASCII characters only")
		}
	}
	switch c.Mode {
	case ModeClosed:
		if c.Conns < 1 {
			return fmt.Errorf("conns %d: want at least 1", c.Conns)
		}
	case ModeOpen:
		if c.Rate < 1 {
			return fmt.Errorf("rate %d: open-loop mode needs a rate of at least 1 request/s", c.Rate)
		}
		if c.MaxInFlight < 1 {
			return fmt.Errorf("max in-flight %d: want at least 1", c.MaxInFlight)
		}
	default:
		return fmt.Errorf("mode %q: want %q or %q", c.Mode, ModeClosed, ModeOpen)
	}
	if c.Duration <= 0 || c.Warmup < 0 {
		return fmt.Errorf("duration %v, warmup %v: want duration > 0 and warmup >= 0", c.Duration, c.Warmup)
	}
	if c.PostgresPID < 0 {
		return fmt.Errorf("postgres pid %d: want 0 (off) or a process id", c.PostgresPID)
	}
	if c.Window < 0 || c.Window > 0 && c.Window < time.Second {
		return fmt.Errorf("window %v: want 0 (off) or at least 1s", c.Window)
	}
	if c.MaxRequests < 0 {
		return fmt.Errorf("max requests %d: want >= 0", c.MaxRequests)
	}
	if c.RequestTimeout <= 0 {
		return fmt.Errorf("request timeout %v: want > 0", c.RequestTimeout)
	}
	if !slices.Contains(Scenarios, c.Scenario) {
		return fmt.Errorf("scenario %q: want one of %s", c.Scenario, strings.Join(Scenarios, ", "))
	}
	if c.BatchSize < 1 || c.BatchSize > MaxBatchSize {
		return fmt.Errorf("batch size %d: want 1–%d (the API's limit)", c.BatchSize, MaxBatchSize)
	}
	if c.StatusOrders < 0 {
		return fmt.Errorf("status orders %d: want >= 0", c.StatusOrders)
	}
	if c.Items < 1 || c.Items > 100 {
		return fmt.Errorf("items %d: want 1–100 (the API's limit)", c.Items)
	}
	for _, s := range c.SKUs {
		if !validToken(s, 64) {
			return fmt.Errorf("sku %q: want 1–64 of the characters : . - _ A-Z a-z 0-9", s)
		}
	}
	if !validToken(c.RunID, maxRunID) {
		return fmt.Errorf("run id %q: want 1–%d of the characters : . - _ A-Z a-z 0-9", c.RunID, maxRunID)
	}
	if c.Admin != "" {
		if a, err := url.Parse(c.Admin); err != nil || a.Host == "" {
			return fmt.Errorf("admin %q: want http://host:port", c.Admin)
		}
	}
	return nil
}

// IsLoopbackTarget reports whether target (a base URL) names this machine:
// localhost or a loopback address. A URL that does not parse is not.
func IsLoopbackTarget(target string) bool {
	u, err := url.Parse(target)
	return err == nil && u.Host != "" && isLoopback(u.Hostname())
}

// isLoopback reports whether host names this machine.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// validToken checks the API's id/sku alphabet: 1–max of A-Z a-z 0-9 _ - . :.
func validToken(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '-' || c == '.' || c == ':'
		if !ok {
			return false
		}
	}
	return true
}

// configJSON is Config as it appears in a report: durations as strings
// ("10s") so people can read the file.
type configJSON struct {
	Target         string   `json:"target"`
	Mode           string   `json:"mode"`
	Conns          int      `json:"conns"`
	Rate           int      `json:"rate,omitempty"`
	MaxInFlight    int      `json:"max_in_flight,omitempty"`
	Duration       string   `json:"duration"`
	Warmup         string   `json:"warmup"`
	MaxRequests    int64    `json:"max_requests,omitempty"`
	RequestTimeout string   `json:"request_timeout"`
	Scenario       string   `json:"scenario"`
	BatchSize      int      `json:"batch_size,omitempty"`
	Name           string   `json:"name,omitempty"`
	Items          int      `json:"items"`
	SKUs           []string `json:"skus"`
	RunID          string   `json:"run_id"`
	Admin          string   `json:"admin,omitempty"`
	Window         string   `json:"window,omitempty"`
	StatusOrders   int      `json:"status_orders,omitempty"`
}

// MarshalJSON writes durations as Go duration strings.
func (c Config) MarshalJSON() ([]byte, error) {
	return json.Marshal(configJSON{
		Target: c.Target, Mode: c.Mode, Conns: c.Conns, Rate: c.Rate, MaxInFlight: c.MaxInFlight,
		Duration: c.Duration.String(), Warmup: c.Warmup.String(), MaxRequests: c.MaxRequests,
		RequestTimeout: c.RequestTimeout.String(), Scenario: c.Scenario, BatchSize: c.batchSizeJSON(), Name: c.Name, Items: c.Items,
		SKUs: c.SKUs, RunID: c.RunID, Admin: c.Admin, Window: durationOrEmpty(c.Window),
		StatusOrders: c.StatusOrders,
	})
}

// durationOrEmpty is d as a Go duration string, "" for 0.
func durationOrEmpty(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// batchSizeJSON is BatchSize where it applies, else 0 (left out).
func (c Config) batchSizeJSON() int {
	if c.Scenario == ScenarioBatches {
		return c.BatchSize
	}
	return 0
}

// UnmarshalJSON reads what MarshalJSON writes. AllowRemote, CAFile and
// APIKey are not stored.
func (c *Config) UnmarshalJSON(b []byte) error {
	var j configJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	var durs [4]time.Duration
	for i, s := range []string{j.Duration, j.Warmup, j.RequestTimeout, j.Window} {
		if s == "" {
			continue
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("config duration %q: %w", s, err)
		}
		durs[i] = d
	}
	*c = Config{
		Target: j.Target, Mode: j.Mode, Conns: j.Conns, Rate: j.Rate, MaxInFlight: j.MaxInFlight,
		Duration: durs[0], Warmup: durs[1], MaxRequests: j.MaxRequests, RequestTimeout: durs[2],
		Scenario: j.Scenario, BatchSize: j.BatchSize, Name: j.Name, Items: j.Items, SKUs: j.SKUs, RunID: j.RunID, Admin: j.Admin,
		Window: durs[3], StatusOrders: j.StatusOrders,
	}
	return nil
}
