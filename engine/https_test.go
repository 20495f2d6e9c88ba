package engine_test

import (
	"bytes"
	"crypto/tls"
	"io"
	"math/big"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/enginetest"
	"github.com/orderflow/orderflow/internal/testcert"
)

// httpsClient trusts ca only and speaks at most TLS version max (0: Go's
// default); with keepAlive false every request opens a new connection.
func httpsClient(ca *testcert.CA, max uint16, keepAlive bool) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.Pool, MaxVersion: max},
		DisableKeepAlives: !keepAlive,
	}}
}

// postVia posts one order with c and returns the status code and the
// serial number of the certificate the server presented.
func postVia(t *testing.T, c *http.Client, url, id string) (int, *big.Int) {
	t.Helper()
	resp, err := c.Post(url+"/v1/orders", "application/json", strings.NewReader(orderJSON(id)))
	if err != nil {
		t.Fatalf("POST %s: %v", id, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		t.Fatalf("POST %s: not over TLS", id)
	}
	if resp.TLS.Version < tls.VersionTLS12 {
		t.Errorf("POST %s: TLS version %x; want 1.2 or later", id, resp.TLS.Version)
	}
	return resp.StatusCode, resp.TLS.PeerCertificates[0].SerialNumber
}

// The public listener serves HTTPS with -tls-cert-file/-tls-key-file to Go's
// client and to curl, refuses TLS 1.1, and serves a rotated certificate to
// new connections within seconds, without a restart, while a connection
// opened before the rotation keeps working.
func TestPublicListenerTLS(t *testing.T) {
	ca := testcert.NewCA(t, "public")
	pair := ca.Issue(t, "orderflow", "127.0.0.1")
	in := enginetest.Start(t, enginetest.WithConfig(func(c *engine.Config) {
		c.Ingest.TLS.CertFile, c.Ingest.TLS.KeyFile = pair.CertFile, pair.KeyFile
	}))
	if !strings.HasPrefix(in.URL, "https://") {
		t.Fatalf("URL %s; want https", in.URL)
	}
	kept := httpsClient(ca, 0, true)
	code, first := postVia(t, kept, in.URL, "ord_tls1")
	if code != http.StatusCreated {
		t.Fatalf("POST over HTTPS: %d; want 201", code)
	}

	if _, err := httpsClient(ca, tls.VersionTLS11, false).Get(in.URL + "/v1/orders/ord_tls1"); err == nil {
		t.Errorf("a TLS 1.1 client was served; want the handshake refused")
	}
	if _, err := (&http.Client{Timeout: 10 * time.Second}).Get(in.URL + "/v1/orders/ord_tls1"); err == nil {
		t.Errorf("a client that does not trust the CA was served")
	}

	var out bytes.Buffer
	curl := exec.Command("curl", "-sS", "--cacert", ca.File, "-o", "/dev/null", "-w", "%{http_code}",
		"-H", "Content-Type: application/json", "--data-binary", orderJSON("ord_tls_curl"), in.URL+"/v1/orders")
	curl.Stdout, curl.Stderr = &out, &out
	if err := curl.Run(); err != nil || out.String() != "201" {
		t.Errorf("curl over HTTPS: %v, %q; want 201", err, out.String())
	}

	ca.Issue(t, "orderflow", "127.0.0.1") // rotation: the same files, a new certificate
	fresh := httpsClient(ca, 0, false)
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		code, serial := postVia(t, fresh, in.URL, "ord_tls_rot")
		if code != http.StatusCreated && code != http.StatusOK {
			t.Fatalf("POST during rotation: %d", code)
		}
		if serial.Cmp(first) != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still the old certificate %v after %d new connections in 20s", first, i+1)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, serial := postVia(t, kept, in.URL, "ord_tls2"); code != http.StatusCreated || serial.Cmp(first) != 0 {
		t.Errorf("the connection opened before the rotation: %d with serial %v; want 201 on the old certificate %v", code, serial, first)
	}
}
