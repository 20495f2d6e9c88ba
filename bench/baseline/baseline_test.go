package baseline

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/pgtest"
)

func TestCreateStoresAndPublishes(t *testing.T) {
	ctx := context.Background()
	dbURL := pgtest.New(t)
	cfg := engine.DefaultConfig()
	cfg.DatabaseURL = dbURL
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if _, err := engine.SeedDemoCatalog(ctx, cfg); err != nil {
		t.Fatalf("seed: %v", err)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "orders"), kfake.Ports(0))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	s, err := New(ctx, Config{DatabaseURL: dbURL, KafkaBrokers: c.ListenAddrs(), Logger: cfg.Logger})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(s.Close)
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)

	post := func(body, key string, want int) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, hs.URL+"/v1/orders", bytes.NewBufferString(body))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := hs.Client().Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", body, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("POST %s: got %d %s; want %d", body, resp.StatusCode, b, want)
		}
	}
	order := `{"id":"b1","user_id":"u","items":[{"sku":"milk-1l","qty":2},{"sku":"bread-rye","qty":1}]}`
	post(order, "k1", http.StatusCreated)
	post(order, "k1", http.StatusOK)
	post(`{"id":"b2","user_id":"u","items":[{"sku":"nope","qty":1}]}`, "", http.StatusUnprocessableEntity)
	post(`{"id":"b3","user_id":"u","items":[]}`, "", http.StatusBadRequest)

	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var total int64
	var items int
	if err := conn.QueryRow(ctx, `SELECT o.total_cents, (SELECT count(*) FROM order_items WHERE order_id = o.id) FROM orders o WHERE id = 'b1'`).Scan(&total, &items); err != nil {
		t.Fatalf("read b1: %v", err)
	}
	if total != 2*119+249 || items != 2 {
		t.Fatalf("b1: total %d, %d items; want %d, 2", total, items, 2*119+249)
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM orders WHERE id IN ('b2', 'b3')`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("refused orders stored: %d (%v)", n, err)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("orders"))
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer cl.Close()
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var ceIDs []string
	for len(ceIDs) == 0 && fctx.Err() == nil {
		cl.PollFetches(fctx).EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == "ce_id" {
					ceIDs = append(ceIDs, string(h.Value))
				}
			}
		})
	}
	if len(ceIDs) != 1 || ceIDs[0] != "b1/1" {
		t.Fatalf("topic ce_ids %q; want [b1/1]", ceIDs)
	}
}
