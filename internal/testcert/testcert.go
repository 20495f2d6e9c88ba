// Package testcert makes throwaway certificate authorities and certificates
// for tests of orderflow's TLS connections (Kafka, PostgreSQL, the public
// listener): an ECDSA P-256 CA, and leaf certificates it signs for server and
// client use, written as PEM files into the test's temporary directory.
// Only tests import it.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// CA is a certificate authority made for one test.
type CA struct {
	// File is the PEM file of the CA certificate (for -kafka.tls-ca-file,
	// sslrootcert, curl --cacert).
	File string
	// Pool holds the CA certificate, for a tls.Config's RootCAs or ClientCAs.
	Pool *x509.CertPool

	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
}

// Pair is a certificate signed by a CA with its key.
type Pair struct {
	// CertFile and KeyFile are the PEM certificate and its PKCS#8 key (mode
	// 0600, as PostgreSQL requires of a server key).
	CertFile, KeyFile string
	// Cert is the pair loaded for a tls.Config.
	Cert tls.Certificate
}

var serial atomic.Int64

// NewCA makes a CA valid from an hour ago for a day, named name, and writes
// its certificate to <t.TempDir()>/<name>-ca.pem. It fails the test on any
// error.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	tmpl := template(name + " test CA")
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	key, der := create(t, tmpl, nil, nil)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testcert: CA: %v", err)
	}
	ca := &CA{cert: cert, key: key, dir: t.TempDir(), Pool: x509.NewCertPool()}
	ca.Pool.AddCert(cert)
	ca.File = filepath.Join(ca.dir, name+"-ca.pem")
	write(t, ca.File, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	return ca
}

// Issue signs a certificate for server and client use with common name cn,
// valid for hosts (DNS names or IP addresses; cn is also a DNS name when
// hosts is empty), and writes it to <dir>/<cn>.pem and <cn>-key.pem in the
// CA's directory. Issuing the same cn again overwrites the files (a
// rotation).
func (ca *CA) Issue(t testing.TB, cn string, hosts ...string) Pair {
	t.Helper()
	tmpl := template(cn)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	if len(hosts) == 0 {
		hosts = []string{cn}
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	key, der := create(t, tmpl, ca.cert, ca.key)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("testcert: %v", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	p := Pair{CertFile: filepath.Join(ca.dir, cn+".pem"), KeyFile: filepath.Join(ca.dir, cn+"-key.pem")}
	write(t, p.CertFile, certPEM, 0o644)
	write(t, p.KeyFile, keyPEM, 0o600)
	if p.Cert, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatalf("testcert: %v", err)
	}
	return p
}

// template is a certificate named cn, valid from an hour ago for a day.
func template(cn string) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
}

// create makes a new key and the DER certificate of tmpl for it, signed by
// parent's key (self-signed when parent is nil).
func create(t testing.TB, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testcert: %v", err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatalf("testcert: certificate for %s: %v", tmpl.Subject.CommonName, err)
	}
	return key, der
}

// write replaces path with data atomically (a reader never sees half a
// file), with mode perm.
func write(t testing.TB, path string, data []byte, perm os.FileMode) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		t.Fatalf("testcert: %v", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatalf("testcert: %v", err)
	}
}
