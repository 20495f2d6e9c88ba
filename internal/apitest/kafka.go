package apitest

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// CheckRecord fails t when a consumed record breaks api/asyncapi.yaml or
// its value's schema in api/events (see EventSchemas.ValidateRecord).
func CheckRecord(t testing.TB, r *kgo.Record) {
	t.Helper()
	hs := make([]Header, len(r.Headers))
	for i, h := range r.Headers {
		hs[i] = Header{Key: h.Key, Value: h.Value}
	}
	if err := Events().ValidateRecord(r.Key, hs, r.Value); err != nil {
		t.Errorf("event contract: %v", err)
	}
}
