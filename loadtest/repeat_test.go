package loadtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/internal/enginetest"
	"github.com/orderflow/orderflow/internal/pgtest"
)

// TestReconcileCountsRepeats publishes some events more than once, some of
// them after every wanted event was already on the topic: each record
// beyond the first of a checked ce_id is a repeat, reported but not a
// failure (delivery is at least once); records of other orders are not.
func TestReconcileCountsRepeats(t *testing.T) {
	dbURL := pgtest.New(t)
	pgtest.Exec(t, dbURL, `CREATE TABLE orders (id text PRIMARY KEY)`)
	pgtest.Exec(t, dbURL, `INSERT INTO orders (id) VALUES ('a1'), ('a2'), ('a3')`)
	c := enginetest.NewBroker(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// In two batches, so the repeats at the end come after every wanted
	// event: reconciliation must read on to the end to count them.
	for _, batch := range [][]string{{"a1/1", "a2/1", "a1/1", "a3/1", "zz/1", "zz/1"}, {"a2/1", "a3/1", "a3/1"}} {
		var recs []*kgo.Record
		for _, ce := range batch {
			id, _, _ := strings.Cut(ce, "/")
			recs = append(recs, &kgo.Record{Key: []byte(id), Headers: []kgo.RecordHeader{{Key: "ce_id", Value: []byte(ce)}}})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	res, err := Reconcile(ctx, dbURL, c.ListenAddrs(), "orders", []string{"a1", "a2", "a3"}, nil, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || res.RepeatedCount != 4 || strings.Join(res.Repeated, " ") != "a1/1 a2/1 a3/1 a3/1" || res.TopicRecords != 9 {
		t.Fatalf("Reconcile: %+v; want OK, 4 repeats (a1/1 a2/1 a3/1 a3/1) of 9 records", res)
	}
}
