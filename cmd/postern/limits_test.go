package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/gateway/gatewaytest"
	"github.com/postern/postern/session/redisstore/redistest"
)

// TestReplicasShareLoginLimits: failed logins for one user from one
// address, spread over two replicas on one Redis, are refused at the same
// count as on one replica (the counts live in Redis); meanwhile the person
// logs in from another address, as the limit is per (user, address).
func TestReplicasShareLoginLimits(t *testing.T) {
	// A Redis of its own: the counts outlive the test (15 minutes), and a
	// shared one would carry them into the next run.
	s := newSetup(t, newRecorder(t).URL, redistest.Start(t).URL())
	a, b := s.start(t), s.start(t)
	attacker := newBrowser(t) // from 127.0.0.1
	fields := gatewaytest.HiddenFields(gatewaytest.ExpectStatus(t, attacker.At(a.base).Do(http.MethodGet, "/.postern/login", "", nil), http.StatusOK))
	budget := int(auth.DefaultLoginLimits.PerPair)
	refusedAt := 0
	for i := range 2 * budget {
		base := a.base
		if i%2 == 1 {
			base = b.base
		}
		resp := attacker.At(base).Login(fields, procUser, "wrong password")
		gatewaytest.ReadBody(t, resp)
		if resp.StatusCode == http.StatusTooManyRequests {
			if resp.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
			refusedAt = i + 1
			break
		}
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d: status %d, want 401", i+1, resp.StatusCode)
		}
	}
	if refusedAt != budget+1 {
		t.Fatalf("failed logins spread over two replicas were refused at attempt %d, want %d (the budget of one replica: %d)", refusedAt, budget+1, budget)
	}
	// Both replicas refuse now, even the right password from that address.
	for _, base := range []string{a.base, b.base} {
		resp := attacker.At(base).Login(fields, procUser, procPassword)
		gatewaytest.ReadBody(t, resp)
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("replica %s let the limited address try again: %d", base, resp.StatusCode)
		}
	}

	person := newBrowser(t).From("127.0.0.2")
	pf := gatewaytest.HiddenFields(gatewaytest.ExpectStatus(t, person.At(b.base).Do(http.MethodGet, "/.postern/login", "", nil), http.StatusOK))
	resp := person.At(b.base).Login(pf, procUser, procPassword)
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the person logging in from 127.0.0.2 while the attacker is limited: status %d, want 303", resp.StatusCode)
	}
	ctx := t.Context()
	var refused float64
	for _, p := range []*gatewayProc{a, b} {
		n, err := p.metric(ctx, `postern_refused_total{reason="login_limited"}`)
		if err != nil {
			t.Fatal(err)
		}
		refused += n
	}
	if refused != 3 {
		t.Errorf("postern_refused_total{reason=\"login_limited\"} over both replicas = %v, want 3", refused)
	}
	if logs := a.out.String() + b.out.String(); !strings.Contains(logs, `msg="login refused: too many failed attempts" limit=user_address user=alice addr=127.0.0.1`) {
		t.Error("no log line for the refused login with the client address")
	}
}
