package pgtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestNewCreatesAndDropsDatabase(t *testing.T) {
	var url string
	t.Run("inner", func(t *testing.T) {
		url = New(t)
		Exec(t, url, "CREATE TABLE t (x int)")
		Exec(t, url, "INSERT INTO t VALUES (1), (2)")
		if n := Int64(t, url, "SELECT count(*) FROM t"); n != 2 {
			t.Fatalf("count = %d; want 2", n)
		}
		// Keep a session open: the cleanup must drop the database anyway.
		c, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		_ = c // left open on purpose
	})
	name := url[strings.LastIndex(url, "/")+1 : strings.Index(url, "?")]
	if n := Int64(t, AdminURL(), "SELECT count(*) FROM pg_database WHERE datname = $1", name); n != 0 {
		t.Fatalf("database %s still exists after its test's cleanup", name)
	}
}

func TestNewUnique(t *testing.T) {
	a, b := New(t), New(t)
	if a == b {
		t.Fatalf("New returned %s twice", a)
	}
	long := dbName(strings.Repeat("TestSomething/with_a_very_long_subtest_name", 3))
	if len(long) > 63 {
		t.Fatalf("dbName: %q is %d bytes; PostgreSQL keeps 63", long, len(long))
	}
}

func TestSeedProductsAndTerminate(t *testing.T) {
	url := New(t)
	Exec(t, url, `CREATE TABLE products (sku text PRIMARY KEY, name text NOT NULL DEFAULT '',
		price_cents bigint NOT NULL, active bool NOT NULL DEFAULT true, updated_at timestamptz NOT NULL DEFAULT now())`)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	SeedProducts(t, url, Product{SKU: "a", PriceCents: 100}, Product{SKU: "b", PriceCents: 200, Inactive: true, UpdatedAt: at})
	SeedProducts(t, url, Product{SKU: "a", PriceCents: 150})
	if n := Int64(t, url, "SELECT sum(price_cents) FROM products WHERE active"); n != 150 {
		t.Fatalf("active price sum = %d; want 150", n)
	}
	if n := Int64(t, url, "SELECT count(*) FROM products WHERE sku = 'b' AND updated_at = $1", at); n != 1 {
		t.Fatalf("product b updated_at not kept")
	}

	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if n := TerminateBackends(t, url); n < 1 {
		t.Fatalf("TerminateBackends = %d; want ≥ 1", n)
	}
	if err := c.Ping(context.Background()); err == nil {
		t.Fatalf("terminated connection still answers")
	}
}
