package order

import (
	"fmt"
	"testing"
)

func TestCanTransition(t *testing.T) {
	const (
		c = StatusCreated
		p = StatusPaid
		a = StatusAssembling
		g = StatusDelivering
		d = StatusDelivered
		x = StatusCancelled
	)
	allowed := map[[2]Status]bool{
		{c, p}: true, {p, a}: true, {a, g}: true, {g, d}: true,
		{c, x}: true, {p, x}: true, {a, x}: true, {g, x}: true,
	}
	// Every pair, including invalid statuses on either side.
	for from := Status(0); from <= 7; from++ {
		for to := Status(0); to <= 7; to++ {
			t.Run(fmt.Sprintf("%d_%s->%d_%s", from, from, to, to), func(t *testing.T) {
				if got, want := from.CanTransition(to), allowed[[2]Status{from, to}]; got != want {
					t.Fatalf("%v.CanTransition(%v) = %v; want %v", from, to, got, want)
				}
			})
		}
	}
	if Status(255).CanTransition(0) {
		t.Fatal("Status(255).CanTransition(0) = true")
	}
}

func TestStatusNames(t *testing.T) {
	for s := StatusCreated; s <= StatusCancelled; s++ {
		got, ok := ParseStatus(s.String())
		if !ok || got != s || !s.Valid() {
			t.Fatalf("ParseStatus(%q) = %v, %v; want %v", s.String(), got, ok, s)
		}
	}
	for _, bad := range []string{"", "Paid", "unknown", "created "} {
		if s, ok := ParseStatus(bad); ok {
			t.Fatalf("ParseStatus(%q) = %v; want not ok", bad, s)
		}
	}
	if Status(0).String() != "" || Status(7).String() != "" || Status(0).Valid() || Status(7).Valid() {
		t.Fatal("invalid statuses must have no name and not be Valid")
	}
}

func TestBatchPool(t *testing.T) {
	b := GetBatch()
	if _, err := b.DecodeOrder([]byte(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":1}]}`), testReceived, nil); err != nil {
		t.Fatal(err)
	}
	b.Complete()
	b.Complete() // never blocks
	<-b.Done()
	if b.Len() != 1 || b.Bytes() == 0 {
		t.Fatalf("Len %d Bytes %d", b.Len(), b.Bytes())
	}
	PutBatch(b)
	if b.Len() != 0 || b.Bytes() != 0 || len(b.items) != 0 {
		t.Fatalf("after PutBatch: Len %d Bytes %d items %d", b.Len(), b.Bytes(), len(b.items))
	}
}
