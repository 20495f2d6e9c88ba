package publish

import (
	"fmt"
	"strings"
	"testing"
)

func TestSecurityValidate(t *testing.T) {
	f := func(s Security, wantErr string) {
		t.Helper()
		err := s.validate()
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("validate(%v) = %v; want nil", s, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("validate(%v) = %v; want an error with %q", s, err, wantErr)
		}
	}
	f(Security{}, "")
	f(Security{TLS: true, TLSCAFile: "ca.pem", TLSCertFile: "c.pem", TLSKeyFile: "k.pem", TLSServerName: "kafka"}, "")
	f(Security{SASLMechanism: SASLScramSHA512, SASLUsername: "u", SASLPassword: "p"}, "")
	f(Security{SASLMechanism: SASLPlain, SASLUsername: "u", SASLPasswordFile: "pw"}, "")
	f(Security{TLSCAFile: "ca.pem"}, "-kafka.tls-ca-file needs -kafka.tls")
	f(Security{TLSCertFile: "c.pem", TLSKeyFile: "k.pem"}, "need -kafka.tls")
	f(Security{TLSServerName: "kafka"}, "-kafka.tls-server-name needs -kafka.tls")
	f(Security{TLS: true, TLSCertFile: "c.pem"}, "give both or neither")
	f(Security{SASLMechanism: "GSSAPI", SASLUsername: "u", SASLPassword: "p"}, `-kafka.sasl-mechanism: "GSSAPI"`)
	f(Security{SASLUsername: "u"}, "need -kafka.sasl-mechanism")
	f(Security{SASLMechanism: SASLPlain, SASLPassword: "p"}, "-kafka.sasl-username: empty")
	f(Security{SASLMechanism: SASLPlain, SASLUsername: "u"}, "no SASL password")
	f(Security{SASLMechanism: SASLPlain, SASLUsername: "u", SASLPassword: "p", SASLPasswordFile: "pw"}, "not both")
}

// A printed Config (or Security) never shows the SASL password, whatever
// the verb.
func TestSecurityStringHidesPassword(t *testing.T) {
	const pw = "hunter2-very-secret"
	c := Config{Security: Security{SASLMechanism: SASLPlain, SASLUsername: "u", SASLPassword: pw}}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(verb, c); strings.Contains(out, pw) {
			t.Errorf("Sprintf(%q, Config) shows the password: %s", verb, out)
		}
	}
	// An error about the password file names the file, not its content.
	s := Security{SASLMechanism: SASLPlain, SASLUsername: "u", SASLPasswordFile: "/nonexistent/pw"}
	if _, err := s.kgoOpts(); err == nil || !strings.Contains(err.Error(), "-kafka.sasl-password-file") {
		t.Errorf("kgoOpts with a missing password file: %v; want an error naming -kafka.sasl-password-file", err)
	}
}
