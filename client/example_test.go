package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/orderflow/orderflow/client"
)

// Create an order, read it back and move it along the status machine. The
// client retries 429, 503 and transport errors with the same request, so
// one call is one order, however often it had to be sent.
func Example() {
	c, err := client.New(client.Config{BaseURL: exampleURL}) // e.g. "http://orderflow:8080"
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	created, err := c.CreateOrder(ctx, client.Order{
		ID:     "ord_example_1",
		UserID: "u_42",
		Items:  []client.Item{{SKU: "milk-1l", Qty: 2}, {SKU: "bread-rye", Qty: 1}},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(created.ID, created.Status, created.TotalCents, created.Currency)

	if _, err := c.SetStatus(ctx, created.ID, client.StatusPaid); err != nil {
		log.Fatal(err)
	}
	o, err := c.GetOrder(ctx, created.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(o.Status, o.Version)
	// Output:
	// ord_example_1 created 487 EUR
	// paid 2
}

// A Batcher turns many concurrent CreateOrder calls into a few bulk
// requests; each caller still gets its own order's result.
func ExampleBatcher() {
	c, err := client.New(client.Config{BaseURL: exampleURL})
	if err != nil {
		log.Fatal(err)
	}
	b := c.NewBatcher(client.BatcherConfig{MaxOrders: 500, Linger: 2 * time.Millisecond})
	defer b.Close(context.Background())

	results := make(chan string, 3)
	for i := range 3 {
		go func() {
			created, err := b.CreateOrder(context.Background(), client.Order{
				ID: fmt.Sprintf("ord_batched_%d", i), UserID: "u_42",
				Items: []client.Item{{SKU: "eggs-10", Qty: 1}},
			})
			if err != nil {
				results <- err.Error()
				return
			}
			results <- created.Status
		}()
	}
	for range 3 {
		fmt.Println(<-results)
	}
	// Output:
	// created
	// created
	// created
}
