package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/postern/postern/session"
)

// Recovery: what the person's next step finds after a send was cut (a
// gateway crash, a lost connection, a double click). Each case ends on a
// page that tells the truth and offers the next step.

// sendingRefresh is how often the "being sent" page reloads itself.
const sendingRefresh = 2 * time.Second

// sentData is what the ambiguous page says of a submission.
type sentData struct {
	Method   string
	Path     string
	At       string // when it was handed to the app, UTC
	Ago      string // how long ago, as people say it
	Attempts int
}

// sending renders the page for a submission that is being sent right now
// (its lease is live): it reloads itself until the send has settled.
func (p *pages) sending(w http.ResponseWriter, ck *session.Cookie, id, rd string) {
	w.Header().Set("Refresh", strconv.Itoa(int(sendingRefresh/time.Second)))
	p.render(w, http.StatusAccepted, "sending", pageData{CSRF: ck.CSRF, Stash: id, Return: rd})
}

// ambiguous renders the page for a submission that may have reached the
// app, whose sender is gone: when it was handed to the app, what it was,
// and two buttons, "Send it again" (same Idempotency-Key) and "Discard".
func (p *pages) ambiguous(w http.ResponseWriter, r *http.Request, status int, ck *session.Cookie, id, rd string, stored session.Stored, rep session.Replay, why string) {
	sd := &sentData{Method: stored.Method, Path: stored.URL, Attempts: rep.Attempts}
	if u, err := url.ParseRequestURI(stored.URL); err == nil {
		sd.Path = u.Path // the query may carry secrets; the path says enough
	}
	if !rep.SentAt.IsZero() {
		sd.At = rep.SentAt.UTC().Format("2006-01-02 15:04:05 UTC")
		sd.Ago = formatDuration(max(time.Since(rep.SentAt).Round(time.Second), time.Second))
	}
	p.render(w, status, "ambiguous", pageData{CSRF: ck.CSRF, Stash: id, Return: rd, Sent: sd, Error: why})
}

// recover answers a completion whose stash could not be leased because it
// is past pending: being sent, ambiguous, answered or settled.
func (p *replayer) recover(w http.ResponseWriter, r *http.Request, ck *session.Cookie, who *principal, id, rd string) error {
	ctx := r.Context()
	var (
		stored session.Stored
		rep    session.Replay
	)
	err := asOwner(ctx, p.store, ck, func(o string) error {
		var err error
		stored, rep, err = p.store.ReplayOf(ctx, id, o)
		return err
	})
	if err != nil {
		return p.notLeased(w, r, ck, who, id, rd, session.Replay{}, err)
	}
	now := p.now()
	switch {
	case rep.Ambiguous(now):
		if p.idempotent(stored) && who != nil {
			return p.resend(w, r, ck, who, id, rd)
		}
		if err := saveCookie(p.cookies, w, r, ck); err != nil {
			return err
		}
		p.metrics.replays.WithLabelValues("ambiguous").Inc()
		p.pages.ambiguous(w, r, http.StatusConflict, ck, id, rd, stored, rep,
			"Your submission was handed to the application, and the gateway did not hear back: it may or may not have arrived.")
		return nil
	case rep.State == session.StatePending:
		// Given back in the meantime: send it now.
		return p.replay(w, r, ck, who, id, rd)
	case rep.State == session.StateSettled:
		// Done with (a login form sent again after the answer was shown):
		// say so at once.
		dropRef(ck, id)
		if err := saveCookie(p.cookies, w, r, ck); err != nil {
			return err
		}
		return settledError(rep.Outcome, rd)
	}
	// Being sent by another completion (a double click, another replica),
	// answered, or settled: the answer, if any, waits at the submitted URL.
	p.metrics.replays.WithLabelValues("already_taken").Inc()
	keepRef(ck, stored.URL, id)
	if err := saveCookie(p.cookies, w, r, ck); err != nil {
		return err
	}
	seeOther(w, rd)
	return nil
}

// notLeased answers a completion whose stash could not be leased.
func (p *replayer) notLeased(w http.ResponseWriter, r *http.Request, ck *session.Cookie, who *principal, id, rd string, _ session.Replay, err error) error {
	switch {
	case errors.Is(err, session.ErrState):
		return p.recover(w, r, ck, who, id, rd)
	case errors.Is(err, session.ErrNotOwner):
		return &httpError{Status: http.StatusForbidden, Code: "stash_foreign", Title: "Not your submission",
			Message: "This pending submission was made in another browser, so it will not be sent from this one."}
	case errors.Is(err, session.ErrNotFound), errors.Is(err, session.ErrCorrupt):
		p.metrics.replays.WithLabelValues("expired").Inc()
		if err := saveCookie(p.cookies, w, r, ck); err != nil {
			return err
		}
		return &httpError{Status: http.StatusGone, Code: "stash_expired",
			Title: "Your submission has expired", BackURL: rd,
			Message: "You are logged in now, but the submission made before the login was kept for " +
				formatDuration(p.stashTTL) + " only, or is unknown. It was not sent. Please go back and submit it again."}
	}
	return storeError(err)
}

// waiting reports whether the stash id waits for a send: pending, or its
// sender died before sending anything (a lapsed lease).
func (p *replayer) waiting(ctx context.Context, ck *session.Cookie, id string) bool {
	var rep session.Replay
	err := asOwner(ctx, p.store, ck, func(o string) error {
		var err error
		_, rep, err = p.store.ReplayOf(ctx, id, o)
		return err
	})
	if err != nil {
		return errors.Is(err, session.ErrNotFound) // the login page says it expired
	}
	return rep.State == session.StatePending || (rep.State == session.StateLeased && !rep.LeaseLive(p.now()))
}

// idempotent reports whether the app of stored's route honours
// Idempotency-Key (Route.IdempotentResend), so an ambiguous submission is
// sent again without asking.
func (p *replayer) idempotent(stored session.Stored) bool {
	u, err := url.ParseRequestURI(stored.URL)
	if err != nil {
		return false
	}
	rt, _, ok := p.routes.routeFor(stored.Host, u.Path)
	return ok && rt.IdempotentResend
}

// ownerStore says which browser ids' stashes a browser owns (its own,
// unless a login retired it, and those it took over at logins).
type ownerStore interface {
	Owners(ctx context.Context, browser string) ([]string, error)
}

// asOwner runs f, a state machine call that checks the stash's owner, for
// each browser id ck's browser owns until one is the owner: the browser
// id changes at a login, and what was kept before it carries over.
func asOwner(ctx context.Context, st ownerStore, ck *session.Cookie, f func(owner string) error) error {
	owners, err := st.Owners(ctx, ck.BrowserID)
	if err != nil {
		return err
	}
	err = session.ErrNotOwner
	for _, o := range owners {
		if err = f(o); !errors.Is(err, session.ErrNotOwner) {
			return err
		}
	}
	return err
}

// keepRef makes sure the cookie points at the stash id's answer at url.
func keepRef(ck *session.Cookie, url, id string) {
	for _, ref := range ck.Results {
		if ref.ID == id {
			return
		}
	}
	_ = ck.AddResult(session.ResultRef{URL: url, ID: id})
}

// hasRef reports whether the cookie points at the stash id's answer.
func hasRef(ck *session.Cookie, id string) bool {
	for _, ref := range ck.Results {
		if ref.ID == id {
			return true
		}
	}
	return false
}

// dropRef forgets the cookie's pointer at the stash id.
func dropRef(ck *session.Cookie, id string) {
	kept := ck.Results[:0]
	for _, ref := range ck.Results {
		if ref.ID != id {
			kept = append(kept, ref)
		}
	}
	ck.Results = kept
}

// resendForm is POST /.postern/resend: the person chose "Send it again"
// for an ambiguous submission. It is sent with its Idempotency-Key.
func (g *Gateway) resendForm(w http.ResponseWriter, r *http.Request) error {
	ck := cookieFrom(r.Context())
	form, err := g.parseForm(w, r, ck)
	if err != nil {
		return err
	}
	if form.stash == "" {
		return badRecovery()
	}
	who, err := g.identify(r.Context(), r, ck)
	if err != nil {
		return err
	}
	if who == nil {
		http.Redirect(w, r, loginURL(form.stash, form.rd), http.StatusSeeOther)
		return nil
	}
	return g.replayer.resend(w, r, ck, who, form.stash, form.rd)
}

// discardForm is POST /.postern/discard: the person chose not to send a
// kept submission (pending, or ambiguous). Its body is freed at once.
func (g *Gateway) discardForm(w http.ResponseWriter, r *http.Request) error {
	ck := cookieFrom(r.Context())
	form, err := g.parseForm(w, r, ck)
	if err != nil {
		return err
	}
	if form.stash == "" {
		return badRecovery()
	}
	err = asOwner(r.Context(), g.store, ck, func(o string) error { return g.store.Discard(r.Context(), form.stash, o) })
	switch {
	case err == nil:
		g.metrics.replays.WithLabelValues("discarded").Inc()
		dropRef(ck, form.stash)
		g.replayer.pending.release(r.Context(), ck.BrowserID, form.stash)
		if err := g.saveCookie(w, r, ck); err != nil {
			return err
		}
		g.pages.render(w, http.StatusOK, "discarded", pageData{Return: form.rd})
		return nil
	case errors.Is(err, session.ErrNotOwner):
		return &httpError{Status: http.StatusForbidden, Code: "stash_foreign", Title: "Not your submission",
			Message: "This submission was made in another browser; it was left as it is."}
	case errors.Is(err, session.ErrNotFound), errors.Is(err, session.ErrCorrupt):
		return &httpError{Status: http.StatusGone, Code: "stash_expired", Title: "Nothing to discard", BackURL: form.rd,
			Message: "This submission is no longer kept (its time ran out, or it was discarded already). Nothing will be sent."}
	case errors.Is(err, session.ErrState):
		return &httpError{Status: http.StatusConflict, Code: "stash_busy", Title: "Not discarded", BackURL: form.rd,
			Message: "This submission is being sent right now, or was answered already, so it cannot be discarded. Go back to see its result."}
	}
	return storeError(err)
}

// settledError says what became of a settled submission.
func settledError(outcome, rd string) *httpError {
	he := &httpError{Status: http.StatusGone, Code: "result_gone", Title: "Your submission was sent", BackURL: rd,
		Message: "Your submission reached the application once. Its answer is no longer available here; it will not be sent again."}
	switch outcome {
	case session.OutcomeDiscarded:
		he.Code, he.Title, he.Message = "stash_discarded", "Your submission was discarded", "You chose to discard this submission. The gateway will not send it."
	case "no_route", "forbidden":
		he.Code, he.Title, he.Message = "stash_dropped", "Your submission was not sent", "This submission could not be sent (its application is not configured, or you may not use it) and was discarded."
	}
	return he
}

func badRecovery() *httpError {
	return &httpError{Status: http.StatusBadRequest, Code: "bad_form", Title: "Form not understood",
		Message: "The form does not name a submission. Please go back and try again."}
}
