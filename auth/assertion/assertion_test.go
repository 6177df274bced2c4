package assertion_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/auth/assertion"
)

const (
	gateway  = "https://gw.example"
	upstream = "http://orders.internal:8080"
)

// parse verifies raw the way an upstream would: jwt/v5 with the published
// key set, ES256 only, iss, aud and exp required.
func parse(t *testing.T, jwks []byte, raw string, now time.Time) (*assertion.Claims, error) {
	t.Helper()
	kf, err := keyfunc.NewJWKSetJSON(jwks)
	if err != nil {
		t.Fatalf("published JWKS does not load: %v", err)
	}
	var c assertion.Claims
	_, err = jwt.ParseWithClaims(raw, &c, kf.Keyfunc,
		jwt.WithValidMethods([]string{"ES256"}),
		jwt.WithIssuer(gateway),
		jwt.WithAudience(upstream),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }))
	return &c, err
}

func TestAssertionVerifiesWithPublishedKeys(t *testing.T) {
	now := time.Now()
	s, err := assertion.NewSigner(gateway, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	id := auth.Identity{User: "alice", Email: "alice@example.com", Groups: []string{"staff", "admins"}, Subject: "id-alice"}
	raw, err := s.Sign(id, upstream)
	if err != nil {
		t.Fatal(err)
	}
	c, err := parse(t, s.JWKS(), raw, now)
	if err != nil {
		t.Fatalf("upstream cannot verify the assertion: %v", err)
	}
	if c.Subject != "id-alice" || c.User != "alice" || c.Email != "alice@example.com" || !slices.Equal(c.Groups, id.Groups) {
		t.Errorf("claims = %+v", c)
	}
	if got := c.ExpiresAt.Sub(c.IssuedAt.Time); got != assertion.TTL {
		t.Errorf("lifetime = %v, want %v", got, assertion.TTL)
	}
	if c.ID == "" {
		t.Error("no jti")
	}
	other, _ := s.Sign(id, upstream)
	if oc, err := parse(t, s.JWKS(), other, now); err != nil || oc.ID == c.ID {
		t.Errorf("two assertions share a jti (%v)", err)
	}

	// The set is public only: no private scalar.
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(s.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 || set.Keys[0]["d"] != nil || set.Keys[0]["alg"] != "ES256" || set.Keys[0]["kid"] == "" || set.Keys[0]["use"] != "sig" {
		t.Errorf("JWKS = %s", s.JWKS())
	}
}

func TestAssertionRefusals(t *testing.T) {
	now := time.Now()
	s, err := assertion.NewSigner(gateway, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	id := auth.Identity{User: "alice", Subject: "id-alice"}
	raw, err := s.Sign(id, upstream)
	if err != nil {
		t.Fatal(err)
	}
	toOther, _ := s.Sign(id, "http://billing.internal")
	stranger, err := assertion.NewSigner(gateway, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := stranger.Sign(id, upstream)
	parts := strings.Split(raw, ".")
	tampered := parts[0] + "." + strings.TrimRight(parts[1], "A") + "B." + parts[2]

	tests := []struct {
		name string
		raw  string
		at   time.Time
		want error
	}{
		{"expired after TTL", raw, now.Add(assertion.TTL + time.Second), jwt.ErrTokenExpired},
		{"meant for another upstream", toOther, now, jwt.ErrTokenInvalidAudience},
		{"signed by another gateway", forged, now, jwt.ErrTokenUnverifiable},
		{"tampered", tampered, now, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, s.JWKS(), tt.raw, tt.at)
			if err == nil {
				t.Fatal("accepted")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSignNeedsSubjectAndAudience(t *testing.T) {
	s, err := assertion.NewSigner(gateway, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sign(auth.Identity{}, upstream); err == nil {
		t.Error("signed an empty identity")
	}
	if _, err := s.Sign(auth.Identity{User: "a"}, ""); err == nil {
		t.Error("signed without audience")
	}
	if _, err := assertion.NewSigner("", nil); err == nil {
		t.Error("NewSigner without issuer")
	}
}

func BenchmarkSign(b *testing.B) {
	s, err := assertion.NewSigner(gateway, nil)
	if err != nil {
		b.Fatal(err)
	}
	id := auth.Identity{User: "alice", Email: "alice@example.com", Groups: []string{"staff"}, Subject: "id-alice"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(id, upstream); err != nil {
			b.Fatal(err)
		}
	}
}
