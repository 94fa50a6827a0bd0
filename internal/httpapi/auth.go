package httpapi

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
)

// Role is what a token may do.
type Role string

// Roles: viewers read, operators also create instances and send events.
const (
	RoleViewer   Role = "viewer"
	RoleOperator Role = "operator"
)

// Tokens maps each role to its bearer tokens. Empty: the API is open.
type Tokens map[Role][]string

// ParseTokens reads "role=token" pairs separated by commas, e.g.
// "operator=T1,viewer=T2,operator=T3". Roles are viewer and operator.
//
// An empty string gives no tokens (auth off); a string that is not empty must hold at least
// one pair: " , " is refused rather than silently leaving the API open.
func ParseTokens(s string) (Tokens, error) {
	t := Tokens{}
	if s == "" {
		return t, nil
	}
	n := 0
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if err := t.add(part); err != nil {
			return nil, err
		}
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("no role=token pair in a value of %d characters (blank or only commas): want e.g. operator=T1,viewer=T2, or nothing to leave auth off", len(s))
	}
	return t, nil
}

// MinTokenLength is the shortest token the command line accepts: a shorter one is guessable.
const MinTokenLength = 16

// CheckStrength refuses tokens shorter than MinTokenLength, naming the role, never the token.
func (t Tokens) CheckStrength() error {
	for _, r := range []Role{RoleOperator, RoleViewer} {
		for i, tok := range t[r] {
			if len(tok) < MinTokenLength {
				return fmt.Errorf("%s token #%d is %d characters long: tokens need at least %d (e.g. openssl rand -hex 16)", r, i+1, len(tok), MinTokenLength)
			}
		}
	}
	return nil
}

// LoadTokensFile reads a token file: one "role=token" per line; blank lines and lines
// starting with # are ignored. Errors name the line, never the token.
func LoadTokensFile(path string) (Tokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	t := Tokens{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := t.add(line); err != nil {
			return nil, fmt.Errorf("token file %s:%d: %w", path, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("token file %s: %w", path, err)
	}
	return t, nil
}

// Merge returns the tokens of t and o together.
func (t Tokens) Merge(o Tokens) Tokens {
	out := Tokens{}
	for _, src := range []Tokens{t, o} {
		for r, toks := range src {
			out[r] = append(out[r], toks...)
		}
	}
	return out
}

func (t Tokens) add(pair string) error {
	role, tok, ok := strings.Cut(pair, "=")
	role, tok = strings.TrimSpace(role), strings.TrimSpace(tok)
	if !ok || tok == "" {
		return fmt.Errorf("want role=token, e.g. operator=s3cret (got %d characters without a token)", len(pair))
	}
	r := Role(strings.ToLower(role))
	if r != RoleViewer && r != RoleOperator {
		return fmt.Errorf("unknown role %q: want viewer or operator", role)
	}
	if strings.ContainsAny(tok, " \t,") {
		return fmt.Errorf("a %s token contains a space or a comma", r)
	}
	t[r] = append(t[r], tok)
	return nil
}

// principal is who is calling: a role and the actor name recorded in the audit trail.
type principal struct {
	role  Role
	actor string
	// scope is the caller's space of idempotency keys: its token's whole SHA-256 (the actor
	// shows 6 digits of it only), "anonymous" when auth is off.
	scope string
}

var anonymous = principal{role: RoleOperator, actor: "anonymous", scope: "anonymous"}

// authenticator checks bearer tokens against the configured ones, comparing SHA-256 digests in
// constant time, without stopping at the first match.
type authenticator struct {
	entries []tokenEntry
}

type tokenEntry struct {
	sum [sha256.Size]byte
	who principal
}

func newAuthenticator(t Tokens) *authenticator {
	a := &authenticator{}
	roles := make([]Role, 0, len(t))
	for r := range t {
		roles = append(roles, r)
	}
	slices.Sort(roles)
	for _, r := range roles {
		for _, tok := range t[r] {
			sum := sha256.Sum256([]byte(tok))
			digest := hex.EncodeToString(sum[:])
			a.entries = append(a.entries, tokenEntry{sum: sum,
				who: principal{role: r, actor: string(r) + ":" + digest[:6], scope: "token:" + digest}})
		}
	}
	return a
}

func (a *authenticator) open() bool { return len(a.entries) == 0 }

// check returns the principal of a token; ok is false for an unknown token.
func (a *authenticator) check(token string) (principal, bool) {
	if a.open() {
		return anonymous, true
	}
	sum := sha256.Sum256([]byte(token))
	idx, match := 0, 0
	for i := range a.entries {
		eq := subtle.ConstantTimeCompare(sum[:], a.entries[i].sum[:])
		idx = subtle.ConstantTimeSelect(eq&(1^match), i, idx)
		match |= eq
	}
	if match == 0 || token == "" {
		return principal{}, false
	}
	return a.entries[idx].who, true
}

// bearer extracts the token of an "Authorization: Bearer …" header.
func bearer(h string) string {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}
