package engine_test

import (
	"testing"

	"github.com/orderflow/orderflow/internal/apitest"
)

// TestMain fails the package when any exchange with the public listener
// broke api/openapi.yaml (every request goes through client's checking
// transport).
func TestMain(m *testing.M) { apitest.Main(m) }
