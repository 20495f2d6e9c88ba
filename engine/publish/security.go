package publish

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/orderflow/orderflow/internal/conf"
)

// SASL mechanisms Security.SASLMechanism accepts.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// Flag names of the Security settings; the password's environment variable
// is conf.EnvName(FlagSASLPassword), ORDERFLOW_KAFKA_SASL_PASSWORD.
const (
	FlagTLS              = "kafka.tls"
	FlagTLSCAFile        = "kafka.tls-ca-file"
	FlagTLSCertFile      = "kafka.tls-cert-file"
	FlagTLSKeyFile       = "kafka.tls-key-file"
	FlagTLSServerName    = "kafka.tls-server-name"
	FlagSASLMechanism    = "kafka.sasl-mechanism"
	FlagSASLUsername     = "kafka.sasl-username"
	FlagSASLPassword     = "kafka.sasl-password"
	FlagSASLPasswordFile = "kafka.sasl-password-file"
)

// settings lists s's settings bound to its fields; the password is
// environment-only.
func (s *Security) settings() []conf.Setting {
	return []conf.Setting{
		conf.Bool(&s.TLS, FlagTLS, "dial the brokers with TLS (1.2 or later), checking their certificates against -"+FlagTLSCAFile+" or the system roots"),
		conf.String(&s.TLSCAFile, FlagTLSCAFile, "PEM file of the CAs the brokers' certificates must chain to (needs -"+FlagTLS+"); empty: the system roots"),
		conf.String(&s.TLSCertFile, FlagTLSCertFile, "PEM client certificate for mutual TLS, with -"+FlagTLSKeyFile+" (needs -"+FlagTLS+"); empty: none"),
		conf.String(&s.TLSKeyFile, FlagTLSKeyFile, "PEM key of -"+FlagTLSCertFile+"; empty: none"),
		conf.String(&s.TLSServerName, FlagTLSServerName, "name the brokers' certificates must carry (needs -"+FlagTLS+"); empty: each broker's host as dialled"),
		conf.String(&s.SASLMechanism, FlagSASLMechanism, "SASL mechanism: PLAIN (only with -"+FlagTLS+": it sends the password as is), SCRAM-SHA-256 or SCRAM-SHA-512; empty: no SASL"),
		conf.String(&s.SASLUsername, FlagSASLUsername, "SASL user (required with -"+FlagSASLMechanism+"); empty: none"),
		conf.String(&s.SASLPassword, FlagSASLPassword, "SASL password, environment only (a command line shows in ps); or -"+FlagSASLPasswordFile+"; empty: none").Secret(),
		conf.String(&s.SASLPasswordFile, FlagSASLPasswordFile, "file holding the SASL password (trailing line break ignored), read at start; empty: the password comes from "+conf.EnvName(FlagSASLPassword)),
	}
}

// Security is how the publisher reaches the brokers: TLS (mutual when a
// client certificate is given) and SASL authentication. The zero value is
// plaintext without authentication, which only a broker on a trusted network
// (or the embedded development broker) should accept.
//
// SASLPassword is a secret: String and GoString leave it out, the settings
// read it only from the environment, and no log line carries it.
type Security struct {
	// TLS dials the brokers with TLS 1.2 or later, flag -kafka.tls. The
	// brokers' certificates are checked against TLSCAFile, or against the
	// system roots when it is empty. Default: off.
	TLS bool

	// TLSCAFile is a PEM file of the certificate authorities the brokers'
	// certificates must chain to, flag -kafka.tls-ca-file. Needs TLS.
	// Default: the system roots.
	TLSCAFile string

	// TLSCertFile and TLSKeyFile are the PEM client certificate and its key
	// for mutual TLS, flags -kafka.tls-cert-file and -kafka.tls-key-file:
	// both or neither. Need TLS. Default: none.
	TLSCertFile, TLSKeyFile string

	// TLSServerName is the name the brokers' certificates must carry, flag
	// -kafka.tls-server-name. Needs TLS. Default: the host of each broker
	// address as dialled.
	TLSServerName string

	// SASLMechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, flag
	// -kafka.sasl-mechanism. PLAIN sends the password as is: use it only
	// with TLS. Default: "" (no SASL).
	SASLMechanism string

	// SASLUsername is the SASL user, flag -kafka.sasl-username; required
	// with a mechanism.
	SASLUsername string

	// SASLPassword is the SASL password, from ORDERFLOW_KAFKA_SASL_PASSWORD
	// only (never a flag: a command line shows in ps). Exactly one of it
	// and SASLPasswordFile is required with a mechanism.
	SASLPassword string

	// SASLPasswordFile is a file holding the SASL password (trailing line
	// breaks dropped), flag -kafka.sasl-password-file; read once, by New.
	SASLPasswordFile string
}

// String describes s without the password, so that a logged Config does not
// leak it.
func (s Security) String() string {
	pw := "none"
	switch {
	case s.SASLPassword != "":
		pw = "<redacted>"
	case s.SASLPasswordFile != "":
		pw = "file " + s.SASLPasswordFile
	}
	return fmt.Sprintf("{tls:%t ca:%q cert:%q key:%q server-name:%q sasl:%q user:%q password:%s}",
		s.TLS, s.TLSCAFile, s.TLSCertFile, s.TLSKeyFile, s.TLSServerName, s.SASLMechanism, s.SASLUsername, pw)
}

// GoString is String, for %#v.
func (s Security) GoString() string { return s.String() }

// validate reports the first setting that does not go with another, naming
// its flag. It reads no file.
func (s Security) validate() error {
	switch {
	case !s.TLS && s.TLSCAFile != "":
		return errors.New("-kafka.tls-ca-file needs -kafka.tls")
	case !s.TLS && (s.TLSCertFile != "" || s.TLSKeyFile != ""):
		return errors.New("-kafka.tls-cert-file and -kafka.tls-key-file need -kafka.tls")
	case !s.TLS && s.TLSServerName != "":
		return errors.New("-kafka.tls-server-name needs -kafka.tls")
	case (s.TLSCertFile == "") != (s.TLSKeyFile == ""):
		return errors.New("-kafka.tls-cert-file and -kafka.tls-key-file go together (mutual TLS): give both or neither")
	}
	switch s.SASLMechanism {
	case "":
		if s.SASLUsername != "" || s.SASLPassword != "" || s.SASLPasswordFile != "" {
			return errors.New("-kafka.sasl-username and the SASL password need -kafka.sasl-mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")
		}
		return nil
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
	default:
		return fmt.Errorf("-kafka.sasl-mechanism: %q, want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.SASLMechanism)
	}
	switch {
	case s.SASLUsername == "":
		return fmt.Errorf("-kafka.sasl-username: empty, required with -kafka.sasl-mechanism %s", s.SASLMechanism)
	case s.SASLPassword != "" && s.SASLPasswordFile != "":
		return errors.New("SASL password given twice: set ORDERFLOW_KAFKA_SASL_PASSWORD or -kafka.sasl-password-file, not both")
	case s.SASLPassword == "" && s.SASLPasswordFile == "":
		return fmt.Errorf("no SASL password for -kafka.sasl-mechanism %s: set ORDERFLOW_KAFKA_SASL_PASSWORD or -kafka.sasl-password-file", s.SASLMechanism)
	}
	return nil
}

// kgoOpts reads the files s names and returns the franz-go options for TLS
// and SASL (none for the zero Security). Errors name the flag and the file,
// never the password.
func (s Security) kgoOpts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if s.TLS {
		tc, err := s.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if s.SASLMechanism != "" {
		m, err := s.mechanism()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

// tlsConfig builds the client TLS configuration: TLS 1.2 at least, the CA
// file's pool (system roots without one), the client certificate.
func (s Security) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.TLSServerName}
	if s.TLSCAFile != "" {
		pem, err := os.ReadFile(s.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("-kafka.tls-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-kafka.tls-ca-file %s: no PEM certificate in it", s.TLSCAFile)
		}
		tc.RootCAs = pool
	}
	if s.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.TLSCertFile, s.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("-kafka.tls-cert-file %s / -kafka.tls-key-file %s: %w", s.TLSCertFile, s.TLSKeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// mechanism returns franz-go's own SASL mechanism for s, with the password
// from the environment or the password file.
func (s Security) mechanism() (sasl.Mechanism, error) {
	pw := s.SASLPassword
	if s.SASLPasswordFile != "" {
		b, err := os.ReadFile(s.SASLPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("-kafka.sasl-password-file: %w", err)
		}
		pw = strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return nil, fmt.Errorf("-kafka.sasl-password-file %s is empty", s.SASLPasswordFile)
		}
	}
	switch s.SASLMechanism {
	case SASLPlain:
		return plain.Auth{User: s.SASLUsername, Pass: pw}.AsMechanism(), nil
	case SASLScramSHA256:
		return scram.Auth{User: s.SASLUsername, Pass: pw}.AsSha256Mechanism(), nil
	case SASLScramSHA512:
		return scram.Auth{User: s.SASLUsername, Pass: pw}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("-kafka.sasl-mechanism: %q, want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.SASLMechanism)
}

// Connection failures the operator has to fix (credentials, certificates)
// rather than wait out, by the kind the metric counts them under.
const (
	authKindSASL = "sasl"
	authKindTLS  = "tls"
)

// authKind classifies err as a SASL or TLS failure, or "" for anything else
// (a broker away, a timeout).
func authKind(err error) string {
	var (
		recErr   tls.RecordHeaderError
		alertErr tls.AlertError
		verErr   *tls.CertificateVerificationError
		unkCA    x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		invErr   x509.CertificateInvalidError
		opErr    *net.OpError
	)
	switch {
	case err == nil:
		return ""
	case errors.As(err, new(saslRefusedError)),
		errors.Is(err, kerr.SaslAuthenticationFailed), errors.Is(err, kerr.UnsupportedSaslMechanism),
		errors.Is(err, kerr.IllegalSaslState):
		return authKindSASL
	case errors.As(err, &recErr), errors.As(err, &alertErr), errors.As(err, &verErr), errors.As(err, &unkCA),
		errors.As(err, &hostErr), errors.As(err, &invErr):
		return authKindTLS
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		return authKindTLS
	}
	return ""
}

// saslRefusedError is a connection the broker closed while the client was
// authenticating: how a broker refuses credentials when it does not answer
// with an error code.
type saslRefusedError struct{ err error }

func (e saslRefusedError) Error() string {
	return "the broker closed the connection during SASL authentication (credentials refused): " + e.err.Error()
}

func (e saslRefusedError) Unwrap() error { return e.err }

// authLogEvery is the least time between two log lines about failing
// authentication; the metric counts every failure.
const authLogEvery = 5 * time.Second

// kgoLogger passes the client's warnings and errors to slog. Failures to
// authenticate (SASL refused, TLS handshake refused) are logged once per
// authLogEvery with what to check, and counted in
// orderflow_kafka_auth_failures_total: the client retries them for ever, and
// each retry would otherwise log a line.
type kgoLogger struct {
	l       *slog.Logger
	failSec prometheus.Counter // kind sasl
	failTLS prometheus.Counter // kind tls
	sec     Security
	lastLog atomic.Int64 // unix nanos of the last auth log line
	quiet   atomic.Int64 // auth failures not logged since
	seen    atomic.Bool  // an auth failure happened
}

// OnBrokerRead implements kgo.HookBrokerRead: a failed read of a
// SASLAuthenticate response is a refusal of the credentials (see
// saslRefusedError). A refusal with an error code reaches Log instead.
func (k *kgoLogger) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == int16(kmsg.SASLAuthenticate) && err != nil && !errors.Is(err, kgo.ErrClientClosed) && !errors.Is(err, context.Canceled) {
		k.authFailed(saslRefusedError{err})
	}
}

// newKgoLogger returns the client's logger; failures counts authentication
// failures by kind (sasl, tls).
func newKgoLogger(l *slog.Logger, failures *prometheus.CounterVec, sec Security) *kgoLogger {
	return &kgoLogger{l: l, failSec: failures.WithLabelValues(authKindSASL), failTLS: failures.WithLabelValues(authKindTLS), sec: sec}
}

func (*kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (k *kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	for i := 1; i < len(keyvals); i += 2 {
		if err, ok := keyvals[i].(error); ok && k.authFailed(err) {
			return
		}
	}
	lvl := slog.LevelInfo
	switch level {
	case kgo.LogLevelError:
		lvl = slog.LevelError
	case kgo.LogLevelWarn:
		lvl = slog.LevelWarn
	case kgo.LogLevelDebug:
		lvl = slog.LevelDebug
	}
	k.l.Log(context.Background(), lvl, "kafka client: "+msg, keyvals...)
}

// authFailed counts err and logs it (rate-limited) if it is an
// authentication failure, and reports whether it was one.
func (k *kgoLogger) authFailed(err error) bool {
	kind := authKind(err)
	if kind == "" {
		return false
	}
	k.seen.Store(true)
	if kind == authKindSASL {
		k.failSec.Inc()
	} else {
		k.failTLS.Inc()
	}
	now := time.Now().UnixNano()
	last := k.lastLog.Load()
	if now-last < int64(authLogEvery) || !k.lastLog.CompareAndSwap(last, now) {
		k.quiet.Add(1)
		return true
	}
	hint := "check -kafka.tls-ca-file, -kafka.tls-server-name and the client certificate (-kafka.tls-cert-file, -kafka.tls-key-file) against the brokers' TLS setup"
	if kind == authKindSASL {
		hint = fmt.Sprintf("check -kafka.sasl-username (%q), the password (ORDERFLOW_KAFKA_SASL_PASSWORD or -kafka.sasl-password-file) and -kafka.sasl-mechanism (%q)",
			k.sec.SASLUsername, k.sec.SASLMechanism)
	}
	k.l.Error("kafka authentication failed: events stay in the outbox until it succeeds; "+hint,
		"kind", kind, "err", err.Error(), "failures_not_logged", k.quiet.Swap(0))
	return true
}

// probeTimeout bounds the connection check at start.
const probeTimeout = 10 * time.Second

// probe connects to the brokers once at start, so that wrong credentials or
// certificates are logged (by the client's logger, see kgoLogger) at once
// rather than with the first event. Other failures are logged as a warning:
// the publisher retries for ever and orders are taken meanwhile.
// Authentication failures are logged by the client's logger alone.
func (p *Publisher) probe(stop context.Context) {
	ctx, cancel := context.WithTimeout(stop, probeTimeout)
	defer cancel()
	err := p.cl.Ping(ctx)
	if err != nil && stop.Err() == nil && authKind(err) == "" && !p.klog.seen.Load() {
		p.log.Warn("kafka not reachable at start; events wait in the outbox", "brokers", p.cfg.Brokers, "err", err.Error())
	}
}
