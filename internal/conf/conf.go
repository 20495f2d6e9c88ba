// Package conf describes orderflow's settings once. Each package that has
// settings lists them (flag name, help text, the Config field each one
// sets, its bounds) as a []Setting; the package's Validate checks the
// bounds from that list, and cmd/orderflow builds its flags, environment
// variables and -h text from the same lists. An error that names a flag
// therefore names one that exists.
//
// A Setting's name is "group.name" (the group is the -h section), or a bare
// name for the few process-wide settings. Its environment variable is
// EnvName(name) unless Env overrides it.
package conf

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Setting is one tunable. Build it with Int, Duration, String, Bool, List or
// Var, then add bounds with Min, Max or OneOf.
type Setting struct {
	// Name is the flag name without the dash: "ingest.max-body-bytes".
	Name string
	// Usage is the help text: what it does, its unit, what 0 or empty means.
	Usage string
	// Env overrides the environment variable (only for names fixed by the
	// public contract, such as DATABASE_URL). Empty: EnvName(Name).
	Env string
	// Deprecated lists old flag names still accepted (each with its old
	// environment variable); using one logs a deprecation warning.
	Deprecated []string
	// EnvOnly marks a secret that is read only from the environment, never
	// from a flag (a command line shows in ps).
	EnvOnly bool

	value    value
	min, max *int64
	oneOf    []string
}

// value is a flag.Value bound to a Config field.
type value interface {
	flag.Value
	// num returns the current value as an int64 for bounds (ok false for
	// non-numeric values) and formats a bound in the value's unit.
	num() (n int64, ok bool)
	format(n int64) string
}

// Int binds an integer field (int, int32, int64).
func Int[T ~int | ~int32 | ~int64](p *T, name, usage string) Setting {
	return Setting{Name: name, Usage: usage, value: intValue[T]{p}}
}

// Duration binds a time.Duration field ("250ms", "1m30s").
func Duration(p *time.Duration, name, usage string) Setting {
	return Setting{Name: name, Usage: usage, value: durationValue{p}}
}

// String binds a string field.
func String(p *string, name, usage string) Setting {
	return Setting{Name: name, Usage: usage, value: stringValue{p}}
}

// Bool binds a bool field; the flag may be given without a value.
func Bool(p *bool, name, usage string) Setting {
	return Setting{Name: name, Usage: usage, value: boolValue{p}}
}

// List binds a []string field written as a comma-separated list (spaces
// around items and empty items are dropped).
func List(p *[]string, name, usage string) Setting {
	return Setting{Name: name, Usage: usage, value: listValue{p}}
}

// Var binds a field through its own flag.Value (for types such as a rate
// limit written RATE[,BURST]); its Set does its own checking.
func Var(v flag.Value, name, usage string) Setting {
	return Setting{Name: name, Usage: usage, value: varValue{v}}
}

// Min sets the lowest value (for durations, in nanoseconds).
func (s Setting) Min(n int64) Setting { s.min = &n; return s }

// Max sets the highest value (for durations, in nanoseconds).
func (s Setting) Max(n int64) Setting { s.max = &n; return s }

// OneOf restricts a string to the given values.
func (s Setting) OneOf(vals ...string) Setting { s.oneOf = vals; return s }

// DeprecatedNames adds old flag names that still set this one.
func (s Setting) DeprecatedNames(old ...string) Setting {
	s.Deprecated = append(slices.Clip(s.Deprecated), old...)
	return s
}

// WithEnv sets the environment variable fixed by the contract.
func (s Setting) WithEnv(env string) Setting { s.Env = env; return s }

// Secret makes the setting environment-only (see EnvOnly).
func (s Setting) Secret() Setting { s.EnvOnly = true; return s }

// EnvVar returns the setting's environment variable.
func (s Setting) EnvVar() string {
	if s.Env != "" {
		return s.Env
	}
	return EnvName(s.Name)
}

// Section returns the group of the name ("ingest" for
// "ingest.max-body-bytes"), or "" for a process-wide setting.
func (s Setting) Section() string {
	g, _, ok := strings.Cut(s.Name, ".")
	if !ok {
		return ""
	}
	return g
}

// Value returns the flag.Value bound to the field; its Set parses and checks
// the bounds.
func (s Setting) Value() flag.Value { return checked{s} }

// String returns the field's current value as text (before parsing: its
// default).
func (s Setting) String() string { return s.value.String() }

// EnvName maps a flag name to its environment variable: ORDERFLOW_ and the
// name in upper case with dots and dashes as underscores
// (ingest.max-body-bytes: ORDERFLOW_INGEST_MAX_BODY_BYTES).
func EnvName(name string) string {
	return "ORDERFLOW_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(name))
}

// Validate checks the bounds of every setting against the fields' current
// values; the first error names the flag ("-store.max-conns must be ≥ 1,
// got 0").
func Validate(settings []Setting) error {
	for _, s := range settings {
		if err := s.check(); err != nil {
			return fmt.Errorf("-%s %w", s.Name, err)
		}
	}
	return nil
}

// check reports a value out of bounds, without the flag name.
func (s Setting) check() error {
	if n, ok := s.value.num(); ok {
		if s.min != nil && n < *s.min {
			return fmt.Errorf("must be ≥ %s, got %s", s.value.format(*s.min), s.value.format(n))
		}
		if s.max != nil && n > *s.max {
			return fmt.Errorf("must be ≤ %s, got %s", s.value.format(*s.max), s.value.format(n))
		}
	}
	if s.oneOf != nil && !slices.Contains(s.oneOf, s.value.String()) {
		return fmt.Errorf("must be one of %s, got %q", strings.Join(s.oneOf, ", "), s.value.String())
	}
	return nil
}

// checked is the flag.Value cmd/orderflow registers: Set parses, then
// checks the bounds, so that an explicit value out of range (0 where 0 would
// otherwise mean "the default") is an error, not a silent default.
type checked struct{ s Setting }

func (c checked) String() string {
	if c.s.value == nil {
		return ""
	}
	return c.s.value.String()
}

func (c checked) Set(v string) error {
	if err := c.s.value.Set(v); err != nil {
		return err
	}
	return c.s.check()
}

func (c checked) IsBoolFlag() bool { _, ok := c.s.value.(boolValue); return ok }

type intValue[T ~int | ~int32 | ~int64] struct{ p *T }

func (v intValue[T]) String() string { return strconv.FormatInt(int64(*v.p), 10) }

func (v intValue[T]) Set(s string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 0, 64)
	if err != nil || int64(T(n)) != n {
		return errors.New("not an integer in range")
	}
	*v.p = T(n)
	return nil
}

func (v intValue[T]) num() (int64, bool)    { return int64(*v.p), true }
func (v intValue[T]) format(n int64) string { return strconv.FormatInt(n, 10) }

type durationValue struct{ p *time.Duration }

func (v durationValue) String() string { return v.p.String() }

func (v durationValue) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return errors.New("not a duration (e.g. 250ms, 10s, 1m30s)")
	}
	*v.p = d
	return nil
}

func (v durationValue) num() (int64, bool)    { return int64(*v.p), true }
func (v durationValue) format(n int64) string { return time.Duration(n).String() }

type stringValue struct{ p *string }

func (v stringValue) String() string        { return *v.p }
func (v stringValue) Set(s string) error    { *v.p = s; return nil }
func (v stringValue) num() (int64, bool)    { return 0, false }
func (v stringValue) format(n int64) string { return "" }

type boolValue struct{ p *bool }

func (v boolValue) String() string { return strconv.FormatBool(*v.p) }

func (v boolValue) Set(s string) error {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return errors.New("not true or false")
	}
	*v.p = b
	return nil
}

func (v boolValue) num() (int64, bool)    { return 0, false }
func (v boolValue) format(n int64) string { return "" }

type listValue struct{ p *[]string }

func (v listValue) String() string { return strings.Join(*v.p, ",") }

func (v listValue) Set(s string) error {
	var l []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			l = append(l, e)
		}
	}
	*v.p = l
	return nil
}

func (v listValue) num() (int64, bool)    { return 0, false }
func (v listValue) format(n int64) string { return "" }

type varValue struct{ flag.Value }

func (v varValue) num() (int64, bool)    { return 0, false }
func (v varValue) format(n int64) string { return "" }
