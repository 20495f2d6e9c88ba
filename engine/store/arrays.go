package store

import (
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/orderflow/orderflow/engine/order"
)

// orderArrays holds the column arrays of insertArraysSQL, reused between
// calls. pgx encodes them as PostgreSQL arrays in one parameter each.
type orderArrays struct {
	ids, users, currencies []string
	keys                   []pgtype.Text
	totals, hashes         []int64
	created, received      []time.Time
	args                   []any
}

// fill returns insertArraysSQL's arguments for set: the arrays, then more.
func (a *orderArrays) fill(set []*order.Order, more ...any) []any {
	a.reset()
	for _, o := range set {
		a.ids = append(a.ids, o.ID)
		a.users = append(a.users, o.UserID)
		a.currencies = append(a.currencies, o.Currency)
		a.totals = append(a.totals, o.TotalCents)
		a.created = append(a.created, o.CreatedAt)
		a.received = append(a.received, o.ReceivedAt)
		a.keys = append(a.keys, pgtype.Text{String: o.IdempotencyKey, Valid: o.IdempotencyKey != ""})
		a.hashes = append(a.hashes, int64(o.Hash))
	}
	a.args = append(a.args[:0], a.ids, a.users, a.currencies, a.totals, a.created, a.received, a.keys, a.hashes)
	a.args = append(a.args, more...)
	return a.args
}

func (a *orderArrays) reset() {
	clear(a.ids)
	clear(a.users)
	clear(a.currencies)
	clear(a.keys)
	clear(a.args)
	a.ids, a.users, a.currencies, a.keys = a.ids[:0], a.users[:0], a.currencies[:0], a.keys[:0]
	a.totals, a.hashes, a.created, a.received = a.totals[:0], a.hashes[:0], a.created[:0], a.received[:0]
	a.args = a.args[:0]
}
