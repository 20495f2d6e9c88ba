package store

import "math"

// qty32 narrows an item quantity for the int column: a quantity outside
// int32 becomes 0, which the qty CHECK refuses: a data error that rejects
// this order alone, never a silent truncation.
func qty32(q int64) int32 {
	if q >= math.MinInt32 && q <= math.MaxInt32 {
		return int32(q)
	}
	return 0
}
