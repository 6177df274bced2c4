package gateway_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/gateway"
	"github.com/postern/postern/gateway/gatewaytest"
	"github.com/postern/postern/session"
)

// replica is one of two gateways (replicas) on one Redis, with its own
// store and its own clock.
type replica struct {
	*env
	store *session.Store
	clk   *skewClock
}

// newReplicas starts two gateways in front of one upstream, each with its
// own session.Store (and clock) over the same Redis keys.
func newReplicas(t *testing.T, opts ...envOption) (a, b *replica) {
	t.Helper()
	open := redisOpener(t, "gw-"+session.NewID()[:8])
	up := gatewaytest.NewUpstream(t)
	start := func() *replica {
		r := &replica{clk: &skewClock{}}
		r.env = &env{t: t, up: up, storeDir: t.TempDir(), openBackend: open}
		r.parts = func(p *gateway.Parts, _ *gateway.Options) {
			sealer, err := session.NewSealer([][]byte{testSecret})
			if err != nil {
				t.Fatal(err)
			}
			r.store = session.NewStore(r.backend, sealer, session.WithStoreClock(r.clk.Now))
			p.Store, p.Now = r.store, r.clk.Now
		}
		r.start(opts...)
		return r
	}
	return start(), start()
}

// Replica A leases a submission and dies before writing anything upstream
// (its lease is never renewed, nothing is marked sent). The person's next
// step lands on replica B: while A's lease is live B says it is being sent
// and sends nothing; once it lapsed (B's clock moved past MaxLease) B
// takes it over and the app gets it once, with its Idempotency-Key.
func TestLeaseExpiryTakenOverBySecondReplica(t *testing.T) {
	a, b := newReplicas(t)
	br := a.browser()
	f := br.SubmitWhileLoggedOut(http.MethodPost, "/checkout", "application/x-www-form-urlencoded", []byte("order=7"))
	stored, body, _, err := a.store.Lease(context.Background(), f.Get("stash"), browserID(t, a.env, br), "replica-a", session.MaxLease)
	if err != nil {
		t.Fatal(err)
	}
	body.Close()
	br = br.At(b.gw.URL)
	br.Origin = b.gw.URL

	resp := br.Login(f, testUser, testPassword)
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/checkout" {
		t.Fatalf("login on B while A holds the lease: %d %q, want 303 /checkout", resp.StatusCode, resp.Header.Get("Location"))
	}
	sending := br.Do(http.MethodGet, "/checkout", "", nil)
	page := gatewaytest.ReadBody(t, sending)
	if sending.StatusCode != http.StatusAccepted || sending.Header.Get("Refresh") == "" || !strings.Contains(page, "being sent") {
		t.Fatalf("on B while A's lease is live: %d Refresh %q:\n%s", sending.StatusCode, sending.Header.Get("Refresh"), page)
	}
	// Reloading the login POST on B while the lease is live sends nothing either.
	gatewaytest.ReadBody(t, br.Login(f, testUser, testPassword))
	if n := len(a.up.Submissions()); n != 0 {
		t.Fatalf("the app got %d submissions while A's lease was live", n)
	}

	b.clk.Skip(session.MaxLease + time.Second)
	resp = br.Do(http.MethodGet, "/checkout", "", nil)
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/checkout" {
		t.Fatalf("reload on B after A's lease lapsed: %d %q, want 303 to the result", resp.StatusCode, resp.Header.Get("Location"))
	}
	if page := br.Follow(resp, http.StatusOK); !strings.Contains(page, "app answer #1: POST /checkout") {
		t.Fatalf("result on B after the takeover:\n%s", page)
	}
	// More steps on B (reload, the login POST again) send nothing more.
	gatewaytest.ReadBody(t, br.Do(http.MethodGet, "/checkout", "", nil))
	gatewaytest.ReadBody(t, br.Login(f, testUser, testPassword))
	subs := a.up.Submissions()
	if len(subs) != 1 {
		t.Fatalf("the app got %d submissions, want 1", len(subs))
	}
	if k := subs[0].Header.Get("Idempotency-Key"); stored.IdempotencyKey == "" || k != keyHeader(stored) {
		t.Errorf("Idempotency-Key of the takeover: %q, want the submission's %q", k, keyHeader(stored))
	}
}

// Replica A marks a submission sent and dies: it may have reached the app.
// On replica B, once A's lease lapsed, the person gets the ambiguous page
// and nothing is sent on its own, whatever they reload; "Send it again" on
// B sends it once, with the submission's Idempotency-Key. On a route with
// idempotent_resend B sends it again itself, once.
func TestAmbiguousSubmissionAcrossReplicas(t *testing.T) {
	for _, tc := range []struct {
		name       string
		idempotent bool
	}{{"ask", false}, {"idempotent_resend", true}} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newReplicas(t, func(o *gateway.Options) { o.Routes[0].IdempotentResend = tc.idempotent })
			br := a.browser()
			f := br.SubmitWhileLoggedOut(http.MethodPost, "/pay", "application/x-www-form-urlencoded", []byte("amount=100"))
			ctx := context.Background()
			stored, body, _, err := a.store.Lease(ctx, f.Get("stash"), browserID(t, a.env, br), "replica-a", session.MaxLease)
			if err != nil {
				t.Fatal(err)
			}
			body.Close()
			if err := a.store.MarkSent(ctx, f.Get("stash"), "replica-a"); err != nil {
				t.Fatal(err)
			}
			br = br.At(b.gw.URL)
			br.Origin = b.gw.URL

			sending := br.Login(f, testUser, testPassword)
			gatewaytest.ReadBody(t, sending)
			b.clk.Skip(session.MaxLease + time.Second)
			resp := br.Login(f, testUser, testPassword)
			if tc.idempotent {
				if page := br.Follow(resp, http.StatusOK); !strings.Contains(page, "app answer #1: POST /pay") {
					t.Fatalf("on an idempotent route B sends it again itself:\n%s", page)
				}
			} else {
				page := gatewaytest.ExpectStatus(t, resp, http.StatusConflict)
				if !strings.Contains(page, "may have been received") || !strings.Contains(page, "Send it again") {
					t.Fatalf("on B after A's lease lapsed:\n%s", page)
				}
				gatewaytest.ReadBody(t, br.Do(http.MethodGet, "/pay", "", nil))
				gatewaytest.ReadBody(t, br.Login(f, testUser, testPassword))
				if n := len(a.up.Submissions()); n != 0 {
					t.Fatalf("B sent an ambiguous submission on its own: %d submissions", n)
				}
				form := formFields(t, page, "/.postern/resend")
				resp = br.Do(http.MethodPost, "/.postern/resend", "application/x-www-form-urlencoded", []byte(form.Encode()))
				if got := br.Follow(resp, http.StatusOK); !strings.Contains(got, "app answer #1: POST /pay") {
					t.Fatalf("after Send it again on B:\n%s", got)
				}
				gatewaytest.ReadBody(t, br.Do(http.MethodPost, "/.postern/resend", "application/x-www-form-urlencoded", []byte(form.Encode())))
			}
			gatewaytest.ReadBody(t, br.Login(f, testUser, testPassword))
			subs := a.up.Submissions()
			if len(subs) != 1 {
				t.Fatalf("the app got %d submissions, want 1", len(subs))
			}
			if k := subs[0].Header.Get("Idempotency-Key"); stored.IdempotencyKey == "" || k != keyHeader(stored) {
				t.Errorf("Idempotency-Key of the send from B: %q, want the submission's %q", k, keyHeader(stored))
			}
		})
	}
}

// keyHeader is the Idempotency-Key header of the stored submission: a
// structured-field string, as the IETF draft defines it.
func keyHeader(s session.Stored) string { return `"` + s.IdempotencyKey + `"` }
