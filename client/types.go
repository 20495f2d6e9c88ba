package client

import (
	"time"
)

// Order is an order to create. ID is the order's idempotency key: a retry
// with the same ID and content is answered as a replay. Zero Currency and
// CreatedAt are not sent (the server uses EUR and its receive time).
type Order struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	Currency  string    `json:"currency,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	Items     []Item    `json:"items"`

	// IdempotencyKey, when set, is sent as the Idempotency-Key header
	// (1-128 visible ASCII characters) by CreateOrder. The Batcher and
	// CreateOrders do not send it: there the id is the key.
	IdempotencyKey string `json:"-"`
}

// Item is one line of an Order. PriceCents, when not zero, is the price
// the caller expects per unit; the server refuses the order (422
// price_mismatch) when the catalog's differs.
type Item struct {
	SKU        string `json:"sku"`
	Qty        int64  `json:"qty"`
	PriceCents int64  `json:"price_cents,omitzero"`
}

// Created is the answer to a committed order.
type Created struct {
	ID         string `json:"id"`
	Status     string `json:"status"` // the order's status now (created, or later on a replay)
	TotalCents int64  `json:"total_cents"`
	Currency   string `json:"currency"`
	// Replayed is true when the order had already been committed (HTTP 200):
	// by an earlier try of this call, or by an earlier call.
	Replayed bool `json:"-"`
}

// StoredOrder is a committed order as GetOrder reads it.
type StoredOrder struct {
	ID         string       `json:"id"`
	UserID     string       `json:"user_id"`
	Status     string       `json:"status"`
	Currency   string       `json:"currency"`
	TotalCents int64        `json:"total_cents"`
	Version    int          `json:"version"`
	CreatedAt  time.Time    `json:"created_at"`
	UpdatedAt  time.Time    `json:"updated_at"`
	Items      []StoredItem `json:"items"`
}

// StoredItem is one line of a StoredOrder, with the catalog price it was
// committed at.
type StoredItem struct {
	SKU        string `json:"sku"`
	Qty        int64  `json:"qty"`
	PriceCents int64  `json:"price_cents"`
}

// The order statuses. created → paid → assembling → delivering → delivered;
// cancelled from any status but delivered; delivered and cancelled are final.
const (
	StatusCreated    = "created"
	StatusPaid       = "paid"
	StatusAssembling = "assembling"
	StatusDelivering = "delivering"
	StatusDelivered  = "delivered"
	StatusCancelled  = "cancelled"
)

// StatusResult is the answer to an applied (or no-op) status change.
type StatusResult struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Version int    `json:"version"`
}

// StatusChange is one item of SetStatuses.
type StatusChange struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// BatchResult is the answer to CreateOrders or SetStatuses. For orders
// Created counts new orders and Duplicates replays; for status changes
// Created counts applied changes and Duplicates no-ops. Results holds one
// entry per input item, in input order.
type BatchResult struct {
	Created    int
	Duplicates int
	Rejected   int
	Results    []ItemResult
}

// ItemResult is one item's outcome inside a bulk answer: Status is the
// HTTP status the single-item endpoint would have given it, Err its error
// (nil for 200 and 201).
type ItemResult struct {
	Index  int
	ID     string // empty when the server could not read the item's id
	Status int
	Err    *Error
}

// bulkJSON is the wire form of a bulk answer.
type bulkJSON struct {
	Created    int `json:"created"`
	Duplicates int `json:"duplicates"`
	Rejected   int `json:"rejected"`
	Results    []struct {
		Index  int        `json:"index"`
		ID     string     `json:"id"`
		Status int        `json:"status"`
		Error  *errorBody `json:"error"`
	} `json:"results"`
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}
