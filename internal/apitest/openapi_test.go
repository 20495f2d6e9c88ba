package apitest

import (
	"testing"

	"github.com/orderflow/orderflow/api"
)

// TestSpecValidates loads api/openapi.yaml and runs kin-openapi's Validate
// on it (Load does), and checks that it lists the five public operations.
func TestSpecValidates(t *testing.T) {
	s, err := Load(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]bool{}
	for _, p := range s.Pairs() {
		ops[p.Op] = true
	}
	for _, op := range []string{"createOrder", "getOrder", "setStatus", "createOrders", "setStatuses"} {
		if !ops[op] {
			t.Errorf("operation %s missing from the spec; have %v", op, ops)
		}
	}
}
