//go:build !race

package ingest

import "testing"

// The guard allocates nothing per request with local limits, and nothing at
// all when off (the Server then holds no guard). Made to fail once by
// building the per-IP Redis key string before checking that Redis is
// configured: ip-limit went to 1 alloc/op.
func TestGuardAllocs(t *testing.T) {
	for _, gc := range guardConfigs {
		t.Run("guard="+gc.name, func(t *testing.T) {
			ts := newTestServer(t, gc.cfg, nil)
			ctx := benchCtx("GET", "/nope", "Bearer "+keyB, nil)
			for range 10 { // warm pools and the per-IP bucket
				ctx.Response.Reset()
				ts.s.handle(ctx)
			}
			got := testing.AllocsPerRun(200, func() {
				ctx.Response.Reset()
				ts.s.handle(ctx)
			})
			if got != 0 {
				t.Errorf("handle(GET /nope) allocates %v/op with guard=%s; want 0", got, gc.name)
			}
		})
	}
}
