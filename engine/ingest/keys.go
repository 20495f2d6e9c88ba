package ingest

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/time/rate"
)

// ParseAPIKeys reads API keys: one entry per line (blank lines and lines
// starting with '#' are skipped) or, in one line, several entries separated
// by commas (the form of ORDERFLOW_API_KEYS). An entry is
//
//	KEY                       name defaults to "key<N>"
//	NAME:KEY
//	NAME:KEY:RATE             own limit, RATE requests/s, burst max(1, ceil(RATE))
//	NAME:KEY:RATE:BURST
//
// KEY is 16–256 visible ASCII characters without ',' or ':' (check it with
// ValidKey); NAME is what logs, metrics and Redis see. Errors name the entry
// by source and position, never by the key. It does not validate duplicates:
// Config.Validate does, across every source.
func ParseAPIKeys(r io.Reader, source string) ([]APIKey, error) {
	var out []APIKey
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		for j, e := range strings.Split(text, ",") {
			e = strings.TrimSpace(e)
			if e == "" {
				continue
			}
			k, err := parseAPIKey(e)
			if err != nil {
				return nil, fmt.Errorf("%s line %d entry %d: %w", source, line, j+1, err)
			}
			out = append(out, k)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return out, nil
}

func parseAPIKey(e string) (APIKey, error) {
	parts := strings.Split(e, ":")
	var k APIKey
	switch len(parts) {
	case 1:
		k.Key = parts[0]
	case 2, 3, 4:
		k.Name, k.Key = parts[0], parts[1]
		if k.Name == "" {
			return k, fmt.Errorf("empty key name")
		}
		if len(parts) >= 3 {
			r, err := strconv.ParseFloat(parts[2], 64)
			if err != nil || r < 0 {
				return k, fmt.Errorf("key %q: rate must be a number ≥ 0 of requests/s", k.Name)
			}
			k.Limit.Rate = r
		}
		if len(parts) == 4 {
			b, err := strconv.Atoi(parts[3])
			if err != nil || b < 0 {
				return k, fmt.Errorf("key %q: burst must be an integer ≥ 0", k.Name)
			}
			k.Limit.Burst = b
		}
	default:
		return k, fmt.Errorf("want KEY, NAME:KEY, NAME:KEY:RATE or NAME:KEY:RATE:BURST")
	}
	if err := ValidKey(k.Key); err != nil {
		if k.Name != "" {
			return k, fmt.Errorf("key %q: %w", k.Name, err)
		}
		return k, err
	}
	return k, nil
}

// ParseLimit parses a flag value "RATE[,BURST]" (requests/s, burst); "0" or
// "" turn the limit off.
func ParseLimit(v string) (Limit, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return Limit{}, nil
	}
	rs, bs, hasBurst := strings.Cut(v, ",")
	r, err := strconv.ParseFloat(strings.TrimSpace(rs), 64)
	if err != nil || r < 0 {
		return Limit{}, fmt.Errorf("want RATE[,BURST] with RATE ≥ 0 requests/s, got %q", v)
	}
	l := Limit{Rate: r}
	if hasBurst {
		b, err := strconv.Atoi(strings.TrimSpace(bs))
		if err != nil || b < 0 {
			return Limit{}, fmt.Errorf("want RATE[,BURST] with an integer BURST ≥ 0, got %q", v)
		}
		l.Burst = b
	}
	return l, nil
}

// String renders l as ParseLimit reads it.
func (l Limit) String() string {
	if !l.On() {
		return "0"
	}
	return strconv.FormatFloat(l.Rate, 'g', -1, 64) + "," + strconv.Itoa(l.Burst)
}

// String shows the key's name and limit, never the key, so a logged or
// printed Config does not leak it.
func (k APIKey) String() string {
	return "{" + k.Name + " <redacted> " + k.Limit.String() + "}"
}

// GoString is String for %#v.
func (k APIKey) GoString() string { return k.String() }

// keySet is the set of API keys a guard accepts. It is never modified once
// built: SetAPIKeys swaps in a new one, so a request that authenticated
// against the old set finishes with it.
type keySet struct{ keys []keyEntry }

// newKeySet builds the entries of keys (named, as Config.fill leaves them),
// each limited by its own limit or perKey. A key whose name and limit are
// unchanged from old keeps its local bucket, so a reload neither resets nor
// refills it.
func newKeySet(keys []APIKey, perKey Limit, old *keySet) *keySet {
	prev := map[string]*keyEntry{}
	if old != nil {
		for i := range old.keys {
			prev[old.keys[i].name] = &old.keys[i]
		}
	}
	ks := &keySet{keys: make([]keyEntry, 0, len(keys))}
	for _, k := range keys {
		e := keyEntry{digest: sha256.Sum256([]byte(k.Key)), name: k.Name, limit: perKey, redisKey: "orderflow:key:" + k.Name}
		if k.Limit.On() {
			e.limit = k.Limit
		}
		if p := prev[e.name]; p != nil && p.limit == e.limit {
			e.local = p.local
		} else if e.limit.On() {
			e.local = rate.NewLimiter(rate.Limit(e.limit.Rate), e.limit.Burst)
		}
		ks.keys = append(ks.keys, e)
	}
	return ks
}

// SetAPIKeys replaces the accepted API keys (a rotation): once it returns,
// every new request is checked against keys alone, so a removed key gets 401
// at once, while requests already admitted finish. keys are validated as
// Config.APIKeys are; on error nothing changes. Authentication cannot be
// turned on or off this way: a server started without keys refuses, and so
// does an empty keys. Shared (Redis) limits apply to the new keys only if
// some key had a limit at start. Safe for concurrent use.
func (s *Server) SetAPIKeys(keys []APIKey) error {
	if s.guard == nil || len(s.guard.keys.Load().keys) == 0 {
		return errors.New("authentication is off: API keys can be reloaded only when the server started with some")
	}
	if len(keys) == 0 {
		return errors.New("no API key: a reload cannot turn authentication off (restart without keys for that)")
	}
	c := s.cfg
	c.APIKeys = keys
	if err := c.Validate(); err != nil {
		return err
	}
	c.fill()
	s.guard.keys.Store(newKeySet(c.APIKeys, c.PerKeyLimit, s.guard.keys.Load()))
	return nil
}
