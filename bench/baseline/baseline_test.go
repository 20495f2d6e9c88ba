package baseline

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/internal/enginetest"
)

func TestCreateStoresAndPublishes(t *testing.T) {
	ctx := context.Background()
	dbURL := enginetest.NewDatabase(t)
	c := enginetest.NewBroker(t)
	s, err := New(ctx, Config{DatabaseURL: dbURL, KafkaBrokers: c.ListenAddrs(), Logger: enginetest.Logger()})
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

	var ceIDs []string
	for _, r := range enginetest.ConsumeRaw(t, c.ListenAddrs(), "", 1, 10*time.Second) {
		ceIDs = append(ceIDs, enginetest.Header(r, "ce_id"))
	}
	if len(ceIDs) != 1 || ceIDs[0] != "b1/1" {
		t.Fatalf("topic ce_ids %q; want [b1/1]", ceIDs)
	}
}
