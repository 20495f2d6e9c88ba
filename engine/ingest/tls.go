package ingest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orderflow/orderflow/internal/conf"
)

// Flag names of the public listener's TLS settings (process-wide, like
// -listen).
const (
	FlagTLSCertFile = "tls-cert-file"
	FlagTLSKeyFile  = "tls-key-file"
)

// TLSConfig turns on TLS on the public listener. Both files empty: plain
// HTTP (a balancer in front terminates TLS).
type TLSConfig struct {
	// CertFile is the PEM certificate chain, flag -tls-cert-file; KeyFile
	// its key, flag -tls-key-file: both or neither. They are read at start
	// and again within a second of a change, for new connections
	// (rotation without restart). Default: none.
	CertFile, KeyFile string
}

// tlsSettings lists the TLS settings bound to c's fields.
func (c *TLSConfig) tlsSettings() []conf.Setting {
	return []conf.Setting{
		conf.String(&c.CertFile, FlagTLSCertFile, "PEM certificate (chain) for HTTPS on -listen, with -"+FlagTLSKeyFile+"; reloaded within 1s when the file changes; empty: plain HTTP"),
		conf.String(&c.KeyFile, FlagTLSKeyFile, "PEM key of -"+FlagTLSCertFile+"; empty: plain HTTP"),
	}
}

// validate checks that the files come in pairs; it reads neither.
func (c TLSConfig) validate() error {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("-" + FlagTLSCertFile + " and -" + FlagTLSKeyFile + " go together: give both or neither")
	}
	return nil
}

// certCheckEvery is how often, at most, a handshake looks at the files for
// a change.
const certCheckEvery = time.Second

// certReloader serves the certificate of a pair of files to TLS
// handshakes and reloads it when a handshake finds the files changed (size
// or modification time), at most once per certCheckEvery. A pair that does
// not load (half written, key and certificate from different rotations)
// keeps the previous certificate, with one warning per change seen. Safe
// for concurrent use.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	cert              atomic.Pointer[tls.Certificate]
	nextCheck         atomic.Int64 // unix nanos

	mu    sync.Mutex // held while checking the files
	stamp string     // size and mtime of both files as last seen
}

// newCertReloader loads the pair once; an error names the flags.
func newCertReloader(c TLSConfig, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: c.CertFile, keyFile: c.KeyFile, log: log}
	r.stamp = r.fileStamp()
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("-%s %s / -%s %s: %w", FlagTLSCertFile, c.CertFile, FlagTLSKeyFile, c.KeyFile, err)
	}
	r.cert.Store(&cert)
	r.nextCheck.Store(time.Now().Add(certCheckEvery).UnixNano())
	return r, nil
}

// fileStamp describes both files' size and modification time ("" parts
// for a file that cannot be read).
func (r *certReloader) fileStamp() string {
	s := ""
	for _, f := range []string{r.certFile, r.keyFile} {
		if fi, err := os.Stat(f); err == nil {
			s += fmt.Sprintf("%d/%d;", fi.Size(), fi.ModTime().UnixNano())
		} else {
			s += "?;"
		}
	}
	return s
}

// getCertificate is tls.Config.GetCertificate.
func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if now := time.Now().UnixNano(); now >= r.nextCheck.Load() && r.mu.TryLock() {
		r.nextCheck.Store(now + int64(certCheckEvery))
		r.reloadIfChanged()
		r.mu.Unlock()
	}
	return r.cert.Load(), nil
}

// reloadIfChanged reloads the pair if its stamp changed. Call with mu held.
func (r *certReloader) reloadIfChanged() {
	st := r.fileStamp()
	if st == r.stamp {
		return
	}
	r.stamp = st
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		r.log.Warn("TLS certificate files changed but do not load; still serving the previous certificate",
			"cert_file", r.certFile, "key_file", r.keyFile, "err", err.Error())
		return
	}
	r.cert.Store(&cert)
	r.log.Info("TLS certificate reloaded", "cert_file", r.certFile)
}

// tlsListener wraps ln with TLS 1.2 or later serving r's certificate.
func tlsListener(ln net.Listener, r *certReloader) net.Listener {
	return tls.NewListener(ln, &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.getCertificate,
		NextProtos:     []string{"http/1.1"},
	})
}
