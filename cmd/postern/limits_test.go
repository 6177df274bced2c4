package main

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
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

// TestReplicasLimitSubmissionsPerAddress is the flood of issue 10: one
// address sends 100 cookie-less submissions of 512 KiB (every third one
// chunked) to two replicas on one Redis. It is refused with 429 once it
// holds its share, on both replicas alike; a person at 127.0.0.2 can still
// submit and have it replayed once; and a chunked body over the address's
// share is cut at the limit, not read to its end.
func TestReplicasLimitSubmissionsPerAddress(t *testing.T) {
	up := newRecorder(t)
	s := newSetup(t, up.URL, redistest.Start(t).URL())
	s.extraArgs = []string{"--stash-max-body", "100MiB", "--stash-max-bytes-per-address", "3MiB"}
	a, b := s.start(t), s.start(t)
	ctx := t.Context()

	body := bytes.Repeat([]byte("x"), 512<<10)
	const share = 6 // 6 × 512 KiB = 3 MiB
	for i := range 100 {
		base := a.base
		if i%2 == 1 {
			base = b.base
		}
		size := int64(len(body))
		if i%3 == 2 {
			size = -1 // chunked
		}
		resp, err := newBrowser(t).Send(ctx, http.MethodPost, base+"/upload", "application/octet-stream", bytes.NewReader(body), size)
		if err != nil {
			t.Fatalf("submission %d: %v", i+1, err)
		}
		page := gatewaytest.ReadBody(t, resp)
		want := http.StatusTemporaryRedirect
		if i >= share {
			want = http.StatusTooManyRequests
		}
		if resp.StatusCode != want {
			t.Fatalf("submission %d (size %d): status %d, want %d:\n%.400s", i+1, size, resp.StatusCode, want, page)
		}
		if want == http.StatusTooManyRequests && (resp.Header.Get("Retry-After") == "" || !strings.Contains(page, "your network address")) {
			t.Fatalf("the 429 lacks Retry-After or does not say why:\n%.600s", page)
		}
	}

	person := newBrowser(t).From("127.0.0.2")
	f := person.At(a.base).SubmitWhileLoggedOut(http.MethodPost, "/order", formType, []byte("item=mug"))
	resp := person.At(b.base).Login(f, procUser, procPassword)
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the person's login: %d, want 303", resp.StatusCode)
	}
	if n := countByURI(up)["/order"]; n != 1 {
		t.Fatalf("the person's submission reached the app %d times, want once", n)
	}

	// A fresh address sends a chunked body far over its share: it is cut
	// near the 3 MiB, not read to its 64 MiB.
	src := &countingReader{left: 64 << 20}
	resp, err := newBrowser(t).From("127.0.0.3").Send(ctx, http.MethodPost, a.base+"/upload", "application/octet-stream", src, -1)
	if err != nil {
		t.Fatalf("the chunked flood: %v", err)
	}
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a chunked 64 MiB body over the address's 3 MiB: status %d, want 429", resp.StatusCode)
	}
	if read := src.read.Load(); read >= 32<<20 {
		t.Errorf("%d bytes of the over-limit chunked body were read, want it cut near 3 MiB", read)
	}

	var refused float64
	for _, p := range []*gatewayProc{a, b} {
		n, err := p.metric(ctx, `postern_refused_total{reason="stash_address_bytes"}`)
		if err != nil {
			t.Fatal(err)
		}
		refused += n
	}
	if refused != 100-share+1 {
		t.Errorf("postern_refused_total{reason=\"stash_address_bytes\"} over both replicas = %v, want %d", refused, 100-share+1)
	}
	if logs := a.out.String() + b.out.String(); !strings.Contains(logs, `msg="submission not kept: limit reached" limit=stash_address_bytes addr=127.0.0.1`) {
		t.Error("no log line for a refused submission with its client address")
	}
}

// countingReader yields left bytes of 'x', counting what was read.
type countingReader struct {
	left int64
	read atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.left == 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), c.left))
	for i := range p[:n] {
		p[i] = 'x'
	}
	c.left -= int64(n)
	c.read.Add(int64(n))
	return n, nil
}
