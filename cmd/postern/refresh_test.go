package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/auth/oidc/oidctest"
	"github.com/postern/postern/gateway/gatewaytest"
	"github.com/postern/postern/session/redisstore/redistest"
)

// TestReplicasRefreshTokenSpentOnce: two gateway processes on one Redis,
// logged in at a real OIDC provider that rotates refresh tokens and revokes
// the session when one is used twice. With the access token due, 40
// requests of the session race over both replicas: the refresh token is
// spent exactly once (one replica refreshes, through the refresh lease in
// the store; the other reuses its new tokens), and the person stays logged
// in on both.
func TestReplicasRefreshTokenSpentOnce(t *testing.T) {
	up := newRecorder(t)
	idp := oidctest.Start(t, oidctest.Options{RedirectURL: testPublicURL + "/.postern/callback"})
	s := newSetup(t, up.URL, redistest.URLForTest(t))
	s.extraArgs = []string{"--oidc-issuer", idp.Issuer, "--oidc-client-id", idp.ClientID,
		"--oidc-client-secret", idp.ClientSecret, "--oidc-scopes", "openid email profile offline_access",
		"--pass-access-token"}
	a, b := s.start(t), s.start(t)

	// Log in through replica A with tokens that are due for refresh at once
	// (they expire within the gateway's refresh margin of a minute); the
	// refreshed ones last an hour, so one refresh is all this test needs.
	idp.SetAccessTokenLifetime(30 * time.Second)
	// One browser (one cookie jar) at the public URL, its requests going to
	// replica A or B as a load balancer would send them.
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	atA, atB := replicaBrowser(t, jar, a), replicaBrowser(t, jar, b)
	resp := atA.Do(http.MethodGet, "/.postern/login?sso=1", "", nil)
	if page := gatewaytest.ReadBody(t, resp); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("start of the OIDC login: status %d, want 303 to the provider:\n%.600s", resp.StatusCode, page)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var cb *url.URL
	cb, err = idp.Login(ctx, nil, resp.Header.Get("Location"), "alice", oidctest.Alice().Password)
	if err != nil {
		t.Fatal(err)
	}
	resp = atA.Do(http.MethodGet, cb.RequestURI(), "", nil)
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("callback: status %d, want 303", resp.StatusCode)
	}
	idp.SetAccessTokenLifetime(time.Hour)
	if grants, _ := idp.RefreshStats(); grants != 0 {
		t.Fatalf("%d refreshes before any request", grants)
	}

	const n = 40
	statuses := make([]int, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		br := []*gatewaytest.Browser{atA, atB}[i%2]
		wg.Go(func() {
			<-start
			resp, err := br.Send(ctx, http.MethodGet, fmt.Sprintf("/page/%d", i), "", nil, 0)
			if err != nil {
				errs[i] = err
				return
			}
			gatewaytest.ReadBody(t, resp)
			statuses[i] = resp.StatusCode
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || statuses[i] != http.StatusOK {
			t.Errorf("request %d (replica %c): status %d, err %v; want 200", i, "AB"[i%2], statuses[i], errs[i])
		}
	}
	grants, reuses := idp.RefreshStats()
	if grants != 1 || reuses != 0 {
		t.Fatalf("the provider saw %d refresh grants and %d reused refresh tokens; want 1 and 0\nreplica A:\n%s\nreplica B:\n%s",
			grants, reuses, a.out.String(), b.out.String())
	}

	// Still logged in on both, now with the refreshed access token.
	before := len(up.Requests())
	for _, br := range []*gatewaytest.Browser{atA, atB} {
		gatewaytest.ExpectStatus(t, br.Do(http.MethodGet, "/after", "", nil), http.StatusOK)
	}
	reqs := up.Requests()[before:]
	if len(reqs) != 2 {
		t.Fatalf("%d requests reached the app after the burst, want 2", len(reqs))
	}
	tokA, tokB := reqs[0].Header.Get("X-Forwarded-Access-Token"), reqs[1].Header.Get("X-Forwarded-Access-Token")
	if tokA == "" || tokA != tokB || reqs[0].Header.Get("X-Forwarded-User") != "alice" {
		t.Errorf("after the refresh the replicas pass different access tokens (%t) or no identity (%q)",
			tokA != tokB, reqs[0].Header.Get("X-Forwarded-User"))
	}
	for _, p := range []*gatewayProc{a, b} {
		if strings.Contains(p.out.String(), "session ended") {
			t.Errorf("a replica ended the session:\n%s", p.out.String())
		}
	}
}

// replicaBrowser is a browser at testPublicURL with cookie jar jar whose
// connections all go to gateway process p.
func replicaBrowser(t *testing.T, jar http.CookieJar, p *gatewayProc) *gatewaytest.Browser {
	b := gatewaytest.NewBrowser(t, testPublicURL)
	addr := strings.TrimPrefix(p.base, "http://")
	b.Client.Jar = jar
	b.Client.Transport = &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	return b
}
