package order

import "math/bits"

// PriceBook answers the catalog price of a SKU: its unit price in minor
// units, and ok=false when the SKU is unknown or inactive. Implementations
// must be safe for concurrent use and should not allocate (the catalog's
// snapshot is one).
type PriceBook interface {
	Price(sku string) (cents int64, ok bool)
}

// Price prices o against pb: it sets each item's PriceCents to the catalog
// price, checks that a price_cents the client sent equals it, and sets
// TotalCents = Σ qty × price. Errors are *CatalogError (HTTP 422):
// unknown_sku (items[i].sku), price_mismatch (items[i].price_cents) or
// amount_out_of_range when a line or the total overflows int64 (or a catalog
// price is negative). On error o's prices are partly set and must not be
// used. Price does not allocate on success; call it before Seal.
func (o *Order) Price(pb PriceBook) error {
	var total int64
	for i := range o.Items {
		it := &o.Items[i]
		cents, ok := pb.Price(it.SKU)
		if !ok {
			return &CatalogError{Code: CodeUnknownSKU, Field: itemPath(i, "sku"),
				Message: "unknown or inactive product"}
		}
		if cents < 0 {
			return &CatalogError{Code: CodeAmountOutOfRange, Field: itemPath(i, "sku"),
				Message: "catalog price is negative"}
		}
		it.PriceCents = cents
		if it.HasClientPrice && it.ClientPriceCents != cents {
			return &CatalogError{Code: CodePriceMismatch, Field: itemPath(i, "price_cents"),
				Message: "price_cents differs from the catalog price"}
		}
		hi, line := bits.Mul64(uint64(it.Qty), uint64(cents))
		if it.Qty < 0 || hi != 0 || line > 1<<63-1 {
			return &CatalogError{Code: CodeAmountOutOfRange, Field: itemPath(i, "qty"),
				Message: "line amount does not fit in 64-bit minor units"}
		}
		sum, carry := bits.Add64(uint64(total), line, 0)
		if carry != 0 || sum > 1<<63-1 {
			return &CatalogError{Code: CodeAmountOutOfRange, Field: "total_cents",
				Message: "order total does not fit in 64-bit minor units"}
		}
		total = int64(sum)
	}
	o.TotalCents = total
	return nil
}
