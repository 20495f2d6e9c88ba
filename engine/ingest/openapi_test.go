package ingest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/orderflow/orderflow/api"
	"github.com/orderflow/orderflow/engine/metrics"
	"github.com/orderflow/orderflow/internal/apitest"
)

// TestMain fails the package when any exchange a test made broke
// api/openapi.yaml, also one the test itself let pass.
func TestMain(m *testing.M) { apitest.Main(m) }

// TestAdminServesOpenAPI: GET /openapi.yaml on the admin handler returns
// the embedded document, and it is a valid OpenAPI document.
func TestAdminServesOpenAPI(t *testing.T) {
	srv := httptest.NewServer(AdminHandler(metrics.New(), func(context.Context) error { return nil }))
	defer srv.Close()
	res, err := http.Get(srv.URL + "/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/yaml" {
		t.Fatalf("GET /openapi.yaml: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if string(b) != string(api.OpenAPI) {
		t.Fatalf("GET /openapi.yaml served %d bytes; want the embedded %d", len(b), len(api.OpenAPI))
	}
	if _, err := apitest.Load(b); err != nil {
		t.Fatalf("served document: %v", err)
	}
}

func apiDoc() []byte { return api.OpenAPI }
