//go:build !race

package catalog

import (
	"context"
	"fmt"
	"testing"
)

func TestPriceDoesNotAllocate(t *testing.T) {
	src := newFakeSource()
	for i := range 1000 {
		src.set(fmt.Sprintf("SKU-%04d", i), int64(i), i%10 != 0, t0)
	}
	c, _ := newTestCatalog(t, Config{}, src)
	if err := c.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	f := func(name string, price func(string) (int64, bool)) {
		t.Helper()
		for _, sku := range []string{"SKU-0001", "SKU-0010", "NOPE"} { // active, inactive, unknown
			if n := testing.AllocsPerRun(1000, func() { price(sku) }); n != 0 {
				t.Fatalf("%s(%q): %v allocs per call; want 0", name, sku, n)
			}
		}
	}
	f("Snapshot().Price", func(sku string) (int64, bool) { return c.Snapshot().Price(sku) })
	f("PriceBook().Price", func(sku string) (int64, bool) { return c.PriceBook().Price(sku) })
}
