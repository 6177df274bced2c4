package gateway

import (
	"log/slog"
	"net/http"

	"github.com/postern/postern/auth"
)

// beginLogin counts a local login attempt against the failed-login limits
// shared by the replicas. A refused attempt is counted in the metrics and
// logged with the limit that holds; its password is never checked. A store
// that cannot count fails the login closed (503).
func (g *Gateway) beginLogin(r *http.Request, user, addr string) (*auth.LoginAttempt, error) {
	if g.logins.limiter == nil {
		return &auth.LoginAttempt{Allowed: true}, nil
	}
	a, err := g.logins.limiter.Begin(r.Context(), user, addr)
	if err != nil {
		return nil, storeError(err)
	}
	if !a.Allowed {
		g.metrics.logins.WithLabelValues("local", "rate_limited").Inc()
		g.metrics.refused.WithLabelValues("login_limited").Inc()
		g.log.LogAttrs(r.Context(), slog.LevelWarn, "login refused: too many failed attempts",
			slog.String("limit", a.Reason), slog.String("user", user), slog.String("addr", addr))
	}
	return a, nil
}
