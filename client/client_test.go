package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/orderflow/orderflow/client"
	"github.com/orderflow/orderflow/internal/enginetest"
	"github.com/orderflow/orderflow/internal/pgtest"
)

func order(id string) client.Order {
	return client.Order{ID: id, UserID: "u_42", Currency: "EUR", CreatedAt: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
		Items: []client.Item{{SKU: "milk-1l", Qty: 2}, {SKU: "bread-rye", Qty: 1, PriceCents: 249}}}
}

// Every typed call against a real server: answers, replays, and each kind
// of refusal as an *Error with the API's code and field, sent once.
func TestCallsAgainstTheServer(t *testing.T) {
	s := enginetest.Start(t)
	c := newClient(t, s, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	o := order("ord_c1")
	o.IdempotencyKey = "key-c1"
	got, err := c.CreateOrder(ctx, o)
	if err != nil || got.ID != "ord_c1" || got.Status != "created" || got.TotalCents != 487 || got.Currency != "EUR" || got.Replayed {
		t.Fatalf("CreateOrder: %+v, %v; want created, 487 EUR, not replayed", got, err)
	}
	again, err := c.CreateOrder(ctx, o)
	if err != nil || !again.Replayed || again.TotalCents != 487 {
		t.Fatalf("CreateOrder again: %+v, %v; want a replay", again, err)
	}
	other := order("ord_c1")
	other.Items[0].Qty = 5
	_, err = c.CreateOrder(ctx, other)
	var e *client.Error
	if !client.IsConflict(err) || !errors.As(err, &e) || e.StatusCode != 409 || !e.OutcomeKnown || e.Attempts != 1 {
		t.Fatalf("CreateOrder of a different order under the same id: %+v; want 409 order_conflict, outcome known, 1 attempt", err)
	}
	bad := order("ord_c2")
	bad.Items[0].SKU = "caviar"
	_, err = c.CreateOrder(ctx, bad)
	if !errors.As(err, &e) || e.StatusCode != 422 || e.Code != "unknown_sku" || e.Field != "items[0].sku" || e.Attempts != 1 {
		t.Fatalf("unknown SKU: %+v; want 422 unknown_sku on items[0].sku, sent once", err)
	}
	bad = order("ord c3")
	_, err = c.CreateOrder(ctx, bad)
	if !errors.As(err, &e) || e.StatusCode != 400 || e.Code != "invalid_value" || e.Field != "id" {
		t.Fatalf("bad id: %+v; want 400 invalid_value on id", err)
	}

	st, err := c.SetStatus(ctx, "ord_c1", client.StatusPaid)
	if err != nil || st.Status != "paid" || st.Version != 2 {
		t.Fatalf("SetStatus paid: %+v, %v", st, err)
	}
	if st, err = c.SetStatus(ctx, "ord_c1", client.StatusPaid); err != nil || st.Version != 2 {
		t.Fatalf("SetStatus paid again: %+v, %v; want a no-op at version 2", st, err)
	}
	if _, err = c.SetStatus(ctx, "ord_c1", client.StatusDelivered); !client.IsInvalidTransition(err) {
		t.Fatalf("paid → delivered: %v; want invalid_transition", err)
	}
	if _, err = c.SetStatus(ctx, "ord_nope", client.StatusPaid); !client.IsNotFound(err) {
		t.Fatalf("status of a missing order: %v; want order_not_found", err)
	}
	stored, err := c.GetOrder(ctx, "ord_c1")
	if err != nil || stored.Status != "paid" || stored.Version != 2 || len(stored.Items) != 2 || stored.Items[0].PriceCents != 119 || stored.TotalCents != 487 {
		t.Fatalf("GetOrder: %+v, %v", stored, err)
	}
	if _, err = c.GetOrder(ctx, "ord_nope"); !client.IsNotFound(err) {
		t.Fatalf("GetOrder of a missing order: %v; want order_not_found", err)
	}

	orders := []client.Order{order("ord_c4"), order("ord_c1"), bad, order("ord_c5")}
	res, err := c.CreateOrders(ctx, orders)
	if err != nil {
		t.Fatal(err)
	}
	want := []int{201, 200, 400, 201}
	for i, r := range res.Results {
		if r.Index != i || r.Status != want[i] || (r.Err != nil) != (want[i] >= 400) {
			t.Errorf("CreateOrders result %d: %+v; want status %d", i, r, want[i])
		}
	}
	if res.Created != 2 || res.Duplicates != 1 || res.Rejected != 1 {
		t.Errorf("CreateOrders counts %+v", res)
	}
	sres, err := c.SetStatuses(ctx, []client.StatusChange{{ID: "ord_c4", Status: "paid"}, {ID: "ord_c4", Status: "assembling"}, {ID: "ord_c5", Status: "delivered"}, {ID: "ord_nope", Status: "paid"}})
	if err != nil {
		t.Fatal(err)
	}
	want = []int{200, 200, 409, 404}
	for i, r := range sres.Results {
		if r.Status != want[i] {
			t.Errorf("SetStatuses result %d: %+v; want status %d", i, r, want[i])
		}
	}
	if sres.Results[2].Err.Code != "invalid_transition" || sres.Results[3].Err.Code != "order_not_found" {
		t.Errorf("SetStatuses errors: %+v, %+v", sres.Results[2].Err, sres.Results[3].Err)
	}

	// The Batcher gives each caller its own answer, replays and refusals included.
	b := c.NewBatcher(client.BatcherConfig{Linger: 5 * time.Millisecond})
	type answer struct {
		res *client.Created
		err error
	}
	ids := []string{"ord_c6", "ord_c1", "ord_c7"}
	answers := make([]chan answer, len(ids))
	for i, id := range ids {
		answers[i] = make(chan answer, 1)
		o := order(id)
		if id == "ord_c7" {
			o.Items[0].SKU = "caviar"
		}
		go func() { r, err := b.CreateOrder(ctx, o); answers[i] <- answer{r, err} }()
	}
	if a := <-answers[0]; a.err != nil || a.res.Status != "created" || a.res.Replayed {
		t.Errorf("batched new order: %+v, %v", a.res, a.err)
	}
	if a := <-answers[1]; a.err != nil || !a.res.Replayed {
		t.Errorf("batched replay: %+v, %v", a.res, a.err)
	}
	if a := <-answers[2]; !errors.As(a.err, &e) || e.Code != "unknown_sku" {
		t.Errorf("batched unknown SKU: %+v, %v", a.res, a.err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateOrder(ctx, order("ord_c8")); !errors.Is(err, client.ErrClosed) {
		t.Errorf("CreateOrder after Close: %v; want ErrClosed", err)
	}
	if n := pgtest.Int64(t, s.DatabaseURL, `SELECT count(*) FROM orders`); n != 4 {
		t.Errorf("orders stored: %d; want 4 (c1, c4, c5, c6)", n)
	}
}
