// Package e2e holds postern's end-to-end tests: the gateway with its real
// parts (file store, sealed cookies, htpasswd users) in front of a real
// upstream, driven by a real browser (Debian's Chromium, through chromedp) and
// placed behind a real nginx (as a reverse proxy, and with auth_request
// against /.postern/auth).
//
// It has no code of its own outside tests. The tests skip when Chromium or
// nginx is not installed, and fail instead when the environment variable CI
// is "true". Set POSTERN_E2E_SCREENSHOTS to a folder to keep the browser
// tests' screenshots. The nginx configuration templates are in
// testdata/e2e.
package e2e
