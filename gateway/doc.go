// Package gateway is postern's request path: it decides who a request comes
// from, whether it may pass, and then proxies it, or stashes it and sends the
// browser into the login with a 307; after login it consumes the stash once,
// replays it to the upstream and delivers the answer once at the original URL.
//
// It owns the endpoints under /.postern/ and the pages a person sees. It
// depends on package auth (who someone is) and package session (cookie and
// stores) through small interfaces, and owns no configuration parsing: the
// command in cmd/postern builds Options and Parts.
package gateway
