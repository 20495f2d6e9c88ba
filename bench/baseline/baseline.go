// Package baseline is the naive order server the seed's "before" column
// measured: net/http, encoding/json, a goroutine per order, one unprepared
// INSERT per row (order, then each item) and one synchronous Kafka produce
// per order before the answer. It exists only to be measured against
// orderflow by the load test (cmd/benchtargets -target baseline); it is
// deliberately not optimized, and must never be.
//
// What it does per POST /v1/orders, in this order:
//
//  1. io.ReadAll the body, json.Unmarshal it into a struct, check the
//     required fields;
//  2. start a goroutine for the order and wait for it;
//  3. in that goroutine: BEGIN; one SELECT per item for its price (no
//     cache); one INSERT into orders (a unique violation on the id or the
//     Idempotency-Key answers 200, as a replay, without comparing content);
//     one INSERT per item; COMMIT;
//  4. ProduceSync one order.created record (key = id, CloudEvents headers,
//     ce_id <id>/1) and wait for the broker's ack;
//  5. answer 201 with {"id","status","total_cents","currency"}.
//
// Queries run in pgx's QueryExecModeExec: parameterised but never prepared,
// like database/sql with lib/pq, so each statement is parsed and planned
// anew. A failed produce after the commit answers 500: the order is stored
// but not published, the very gap orderflow's outbox closes.
package baseline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
)

// maxBody is the request body limit, as orderflow's default.
const maxBody = 1 << 20

// Config configures a Server. The zero value of every field means its
// default.
type Config struct {
	// DatabaseURL is the PostgreSQL database holding orderflow's schema
	// (store.Migrate) and a catalog. Required.
	DatabaseURL string
	// MaxConns is the connection pool size. Default: 4, as orderflow's
	// store (-store.max-conns).
	MaxConns int32
	// KafkaBrokers are the seed brokers. Required.
	KafkaBrokers []string
	// KafkaTopic receives one order.created record per order. Default: "orders".
	KafkaTopic string
	// Timeout bounds one order's database work plus its produce. Default: 10s.
	Timeout time.Duration
	// Logger receives errors. Default: slog.Default().
	Logger *slog.Logger
}

// Server is the naive order server. Create it with New, serve Handler, and
// Close it after the HTTP server stopped. Safe for concurrent use.
type Server struct {
	cfg  Config
	pool *pgxpool.Pool
	kcl  *kgo.Client
	log  *slog.Logger
}

// New connects the pool and the Kafka client (both lazily: nothing is
// dialled until the first order) and returns the server.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.DatabaseURL == "" || len(cfg.KafkaBrokers) == 0 {
		return nil, errors.New("baseline: a database URL and Kafka brokers are required")
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 4
	}
	if cfg.KafkaTopic == "" {
		cfg.KafkaTopic = "orders"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("baseline: database url: %w", err)
	}
	pcfg.MaxConns = cfg.MaxConns
	pcfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec // parameterised, never prepared
	pcfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("baseline: pool: %w", err)
	}
	kcl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.KafkaBrokers...),
		kgo.DefaultProduceTopic(cfg.KafkaTopic),
		// One record at a time: waiting for more would only add latency.
		kgo.ProducerLinger(0),
	)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("baseline: kafka client: %w", err)
	}
	return &Server{cfg: cfg, pool: pool, kcl: kcl, log: cfg.Logger}, nil
}

// Close flushes nothing (every produce was synchronous) and closes the Kafka
// client and the pool. Call it after the HTTP server stopped.
func (s *Server) Close() {
	s.kcl.Close()
	s.pool.Close()
}

// Handler serves POST /v1/orders; anything else is 404 or 405.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/orders", s.createOrder)
	return mux
}

type itemIn struct {
	SKU        string `json:"sku"`
	Qty        int64  `json:"qty"`
	PriceCents *int64 `json:"price_cents"`
}

type orderIn struct {
	ID        string   `json:"id"`
	UserID    string   `json:"user_id"`
	Currency  string   `json:"currency"`
	CreatedAt string   `json:"created_at"`
	Items     []itemIn `json:"items"`
}

type itemOut struct {
	SKU        string `json:"sku"`
	Qty        int64  `json:"qty"`
	PriceCents int64  `json:"price_cents"`
}

type orderOut struct {
	ID         string    `json:"id"`
	UserID     string    `json:"user_id"`
	Status     string    `json:"status"`
	Currency   string    `json:"currency"`
	TotalCents int64     `json:"total_cents"`
	Version    int       `json:"version"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	Items      []itemOut `json:"items"`
}

type answer struct {
	ID         string `json:"id,omitempty"`
	Status     string `json:"status,omitempty"`
	TotalCents int64  `json:"total_cents"`
	Currency   string `json:"currency,omitempty"`
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// result is what the per-order goroutine hands back to the handler.
type result struct {
	code int
	body any
}

func fail(code int, ecode, msg string) result {
	var e errorBody
	e.Error.Code, e.Error.Message = ecode, msg
	return result{code: code, body: e}
}

func (s *Server) createOrder(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		reply(w, fail(http.StatusMethodNotAllowed, "method_not_allowed", "use POST"))
		return
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		reply(w, fail(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		reply(w, fail(http.StatusBadRequest, "unreadable_body", err.Error()))
		return
	}
	if len(body) > maxBody {
		reply(w, fail(http.StatusRequestEntityTooLarge, "body_too_large", "body over 1 MiB"))
		return
	}
	var in orderIn
	if err := json.Unmarshal(body, &in); err != nil {
		reply(w, fail(http.StatusBadRequest, "invalid_json", err.Error()))
		return
	}
	if res, ok := validate(&in); !ok {
		reply(w, res)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	// A goroutine per order, as the seed's "before" did.
	done := make(chan result, 1)
	go func() { done <- s.process(&in, key, body) }()
	reply(w, <-done)
}

func validate(in *orderIn) (result, bool) {
	switch {
	case in.ID == "" || len(in.ID) > 64:
		return fail(http.StatusBadRequest, "invalid_field", "id: want 1-64 characters"), false
	case in.UserID == "" || len(in.UserID) > 64:
		return fail(http.StatusBadRequest, "invalid_field", "user_id: want 1-64 characters"), false
	case len(in.Items) < 1 || len(in.Items) > 100:
		return fail(http.StatusBadRequest, "invalid_field", "items: want 1-100"), false
	}
	for _, it := range in.Items {
		if it.SKU == "" || it.Qty < 1 || it.Qty > 1000 {
			return fail(http.StatusBadRequest, "invalid_field", "items: want a sku and qty 1-1000"), false
		}
	}
	if in.Currency == "" {
		in.Currency = "EUR"
	}
	return result{}, true
}

// process stores and publishes one order; it runs on its own goroutine.
func (s *Server) process(in *orderIn, key string, body []byte) result {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	now := time.Now().UTC()
	created := now
	if in.CreatedAt != "" {
		t, err := time.Parse(time.RFC3339, in.CreatedAt)
		if err != nil {
			return fail(http.StatusBadRequest, "invalid_field", "created_at: want RFC 3339")
		}
		created = t.UTC()
	}
	out := orderOut{ID: in.ID, UserID: in.UserID, Status: "created", Currency: in.Currency, Version: 1,
		CreatedAt: created, UpdatedAt: now}

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return s.unavailable("begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	for _, it := range in.Items {
		var price int64
		err := tx.QueryRow(ctx, `SELECT price_cents FROM products WHERE sku = $1 AND active`, it.SKU).Scan(&price)
		if errors.Is(err, pgx.ErrNoRows) {
			return fail(http.StatusUnprocessableEntity, "unknown_sku", "unknown sku "+it.SKU)
		}
		if err != nil {
			return s.unavailable("select price", err)
		}
		if it.PriceCents != nil && *it.PriceCents != price {
			return fail(http.StatusUnprocessableEntity, "price_mismatch", "price of "+it.SKU+" differs from the catalog")
		}
		out.Items = append(out.Items, itemOut{SKU: it.SKU, Qty: it.Qty, PriceCents: price})
		out.TotalCents += it.Qty * price
	}
	var idemKey *string
	if key != "" {
		idemKey = &key
	}
	h := fnv.New64a()
	h.Write(body)
	_, err = tx.Exec(ctx, `INSERT INTO orders (id, user_id, status, currency, total_cents, version, created_at, updated_at, idempotency_key, content_hash)
VALUES ($1, $2, 'created', $3, $4, 1, $5, $6, $7, $8)`,
		out.ID, out.UserID, out.Currency, out.TotalCents, out.CreatedAt, out.UpdatedAt, idemKey, int64(h.Sum64()))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		// Naive replay: same id or key, assume the same order.
		return result{code: http.StatusOK, body: answer{ID: out.ID, Status: "created", TotalCents: out.TotalCents, Currency: out.Currency}}
	}
	if err != nil {
		return s.unavailable("insert order", err)
	}
	for i, it := range out.Items {
		if _, err := tx.Exec(ctx, `INSERT INTO order_items (order_id, line, sku, qty, price_cents) VALUES ($1, $2, $3, $4, $5)`,
			out.ID, i, it.SKU, it.Qty, it.PriceCents); err != nil {
			return s.unavailable("insert item", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		// The outcome of a failed COMMIT is unknown: not a 503, which
		// promises that nothing was stored.
		s.log.Error("baseline: commit", "id", out.ID, "err", err)
		return fail(http.StatusInternalServerError, "internal", "commit outcome unknown; retry with the same id")
	}

	value, _ := json.Marshal(struct {
		Order orderOut `json:"order"`
	}{out}) // plain structs: cannot fail
	ceTime := now.Format(time.RFC3339Nano)
	rec := &kgo.Record{
		Key:       []byte(out.ID),
		Value:     value,
		Timestamp: now,
		Headers: []kgo.RecordHeader{
			{Key: "ce_specversion", Value: []byte("1.0")},
			{Key: "ce_type", Value: []byte("order.created")},
			{Key: "ce_source", Value: []byte("orderflow-baseline")},
			{Key: "ce_id", Value: []byte(out.ID + "/1")},
			{Key: "ce_time", Value: []byte(ceTime)},
			{Key: "content-type", Value: []byte("application/json")},
		},
	}
	if err := s.kcl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		s.log.Error("produce after commit: the order is stored but not published", "id", out.ID, "err", err)
		return fail(http.StatusInternalServerError, "internal", "the order was stored but not published")
	}
	return result{code: http.StatusCreated, body: answer{ID: out.ID, Status: "created", TotalCents: out.TotalCents, Currency: out.Currency}}
}

func (s *Server) unavailable(step string, err error) result {
	s.log.Error("baseline: "+step, "err", err)
	return fail(http.StatusServiceUnavailable, "unavailable", "the database did not answer; retry later")
}

func reply(w http.ResponseWriter, res result) {
	b, _ := json.Marshal(res.body) // plain structs: cannot fail
	w.Header().Set("Content-Type", "application/json")
	if res.code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(res.code)
	_, _ = w.Write(b)
}
