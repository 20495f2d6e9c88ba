package conf

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// Section is a heading of the -h text: the settings whose names start with
// Name and a dot (Name "" holds the process-wide ones).
type Section struct {
	Name  string
	Title string
}

// Flags turns settings into a flag.FlagSet plus environment variables:
// flags win over the environment, and deprecated names (flags and their
// old variables) still work and are reported by Parse.
type Flags struct {
	FlagSet  *flag.FlagSet
	settings []Setting
	old      map[string]string // deprecated flag name -> current name
	defaults map[string]string // setting name -> its value when added
	sections []Section
}

// NewFlags returns an empty set for the program name; -h writes to out.
func NewFlags(name string, out io.Writer, sections []Section) *Flags {
	f := &Flags{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), old: map[string]string{}, defaults: map[string]string{}, sections: sections}
	f.FlagSet.SetOutput(out)
	return f
}

// Add registers settings as flags, in -h order within their sections.
// Environment-only settings get no flag.
func (f *Flags) Add(settings ...Setting) {
	for _, s := range settings {
		f.settings = append(f.settings, s)
		f.defaults[s.Name] = s.String()
		if s.EnvOnly {
			continue
		}
		f.FlagSet.Var(s.Value(), s.Name, s.Usage)
		for _, o := range s.Deprecated {
			f.FlagSet.Var(s.Value(), o, "deprecated: use -"+s.Name)
			f.old[o] = s.Name
		}
	}
}

// Settings returns every setting added, in order.
func (f *Flags) Settings() []Setting { return f.settings }

// Default returns a setting's value when it was added: its default.
func (f *Flags) Default(name string) string { return f.defaults[name] }

// Deprecated reports whether name is a deprecated spelling and, if so, the
// current name.
func (f *Flags) Deprecated(name string) (string, bool) {
	n, ok := f.old[name]
	return n, ok
}

// Parse parses args, then sets every setting not given as a flag from its
// environment variable (or, failing that, a deprecated one). It returns a
// warning per deprecated name used. Errors name the flag or variable.
func (f *Flags) Parse(args []string, getenv func(string) string) (warnings []string, err error) {
	if err := f.FlagSet.Parse(args); err != nil {
		return nil, err
	}
	set := map[string]bool{}
	f.FlagSet.Visit(func(fl *flag.Flag) {
		name := fl.Name
		if cur, ok := f.old[name]; ok {
			warnings = append(warnings, fmt.Sprintf("flag -%s is deprecated: use -%s", name, cur))
			name = cur
		}
		set[name] = true
	})
	for _, s := range f.settings {
		if set[s.Name] {
			continue
		}
		env, v := s.EnvVar(), getenv(s.EnvVar())
		for _, o := range s.Deprecated {
			if v != "" || s.Env != "" {
				break // a variable fixed by the contract never changed
			}
			if oe := EnvName(o); oe != env {
				if v = getenv(oe); v != "" {
					warnings = append(warnings, fmt.Sprintf("environment variable %s is deprecated: use %s", oe, env))
					env = oe
				}
			}
		}
		if v == "" {
			continue
		}
		if err := s.Value().Set(v); err != nil {
			if s.EnvOnly {
				return warnings, fmt.Errorf("%s: %w", env, err)
			}
			return warnings, fmt.Errorf("%s=%q (for -%s): %w", env, v, s.Name, err)
		}
	}
	return warnings, nil
}

// Usage writes the -h text: settings grouped by section, each with its
// default and environment variable. Deprecated names are not listed.
func (f *Flags) Usage(w io.Writer) {
	for _, sec := range f.sections {
		first := true
		for _, s := range f.settings {
			if s.Section() != sec.Name {
				continue
			}
			if first {
				fmt.Fprintf(w, "\n%s:\n", sec.Title)
				first = false
			}
			if s.EnvOnly {
				fmt.Fprintf(w, "  [%s] (environment only)\n    \t%s\n", s.EnvVar(), s.Usage)
				continue
			}
			fmt.Fprintf(w, "  -%s (default %q) [%s]\n    \t%s\n", s.Name, f.defaults[s.Name], s.EnvVar(), s.Usage)
		}
	}
}

// CheckSections reports a setting whose group has no section (it would be
// missing from -h).
func (f *Flags) CheckSections() error {
	known := map[string]bool{}
	for _, s := range f.sections {
		known[s.Name] = true
	}
	var errs []error
	for _, s := range f.settings {
		if !known[s.Section()] {
			errs = append(errs, fmt.Errorf("-%s: no -h section %q", s.Name, s.Section()))
		}
	}
	return errors.Join(errs...)
}
