package gateway

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the gateway's Prometheus metrics, in a registry of its own
// (no global state).
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	stashes  *prometheus.CounterVec
	replays  *prometheus.CounterVec
	results  *prometheus.CounterVec
	logins   *prometheus.CounterVec
	refused  *prometheus.CounterVec // requests refused by an abuse defence, by reason
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_requests_total",
			Help: "Requests for upstreams, by outcome (proxied, stashed, login, unauthenticated, forbidden, ...)."}, []string{"outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "postern_request_duration_seconds",
			Help: "Time to answer requests for upstreams, by outcome.", Buckets: prometheus.DefBuckets}, []string{"outcome"}),
		stashes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_stashes_total",
			Help: "Submissions arriving without a session, by result (kept, too_large, cross_site, too_many, store_full, stash_address_count, stash_address_bytes, stash_budget)."}, []string{"result"}),
		replays: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_replays_total",
			Help: "Stash completions after login, by result (replayed, already_taken, expired, refused_kept, failed, ambiguous, resent, discarded, forbidden, no_route)."}, []string{"result"}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_results_total",
			Help: "Visits of a submitted URL with a kept submission, by result (shown, sending, recovered)."}, []string{"result"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_logins_total",
			Help: "Login attempts, by method and result."}, []string{"method", "result"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_refused_total",
			Help: "Requests refused by an abuse defence, by reason (stash_address_count, stash_address_bytes, stash_budget, " +
				"login_limited, forward_auth_untrusted, websocket_origin)."}, []string{"reason"}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.stashes, m.replays, m.results, m.logins, m.refused,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
