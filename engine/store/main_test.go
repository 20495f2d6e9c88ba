package store

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves a goroutine behind (a pool not
// closed, a sweep still holding its transaction).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
