package order

import "time"

// FNV-1a, 64 bit.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// hashTag starts every hashed input; a deliberate change of the hash's
// inputs must change it (and migrate stored hashes).
const hashTag = "orderflow.order.v1"

// Seal finishes an order after Price: it sets Status=created, Version=1,
// UpdatedAt=ReceivedAt, computes Hash and appends the order.created event
// value {"order":<GET body>} into the batch arena (o.Event is a view into
// it, valid until the batch is reset). o must belong to b. It does not
// allocate unless the arena needs a new chunk.
//
// Hash is a content hash that is the same for a retry of the same order and
// stable across processes and versions (it is stored): 64-bit FNV-1a over
//
//	"orderflow.order.v1"
//	str(ID) str(UserID) str(Currency)
//	0x00, or 0x01 u64(CreatedAt.UnixMicro()) when the client sent created_at
//	u32(len(Items)), then per item: str(SKU) u64(Qty)
//
// where str(s) = u32(len(s)) followed by the bytes of s, and u32/u64 are
// little-endian. Currency is the effective one ("EUR" when absent). The
// idempotency key, prices and the receive time are not part of it.
func (b *Batch) Seal(o *Order) {
	o.Status = StatusCreated
	o.Version = 1
	o.UpdatedAt = o.ReceivedAt
	o.Hash = contentHash(o)
	o.Event = b.arena.Append(func(dst []byte) []byte {
		dst = append(dst, `{"order":`...)
		dst = o.AppendJSON(dst)
		return append(dst, '}')
	})
}

type fnvHash uint64

func (h *fnvHash) byte(c byte) { *h = (*h ^ fnvHash(c)) * fnvPrime }

func (h *fnvHash) u32(v uint32) {
	for i := 0; i < 4; i++ {
		h.byte(byte(v >> (8 * i)))
	}
}

func (h *fnvHash) u64(v uint64) {
	for i := 0; i < 8; i++ {
		h.byte(byte(v >> (8 * i)))
	}
}

func (h *fnvHash) str(s string) {
	h.u32(uint32(len(s)))
	for i := 0; i < len(s); i++ {
		h.byte(s[i])
	}
}

func contentHash(o *Order) uint64 {
	h := fnvHash(fnvOffset)
	for i := 0; i < len(hashTag); i++ {
		h.byte(hashTag[i])
	}
	h.str(o.ID)
	h.str(o.UserID)
	h.str(o.Currency)
	if o.HasCreatedAt {
		h.byte(1)
		h.u64(uint64(o.CreatedAt.Truncate(time.Microsecond).UnixMicro()))
	} else {
		h.byte(0)
	}
	h.u32(uint32(len(o.Items)))
	for i := range o.Items {
		h.str(o.Items[i].SKU)
		h.u64(uint64(o.Items[i].Qty))
	}
	return uint64(h)
}
