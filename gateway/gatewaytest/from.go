package gatewaytest

import (
	"net"
	"net/http"
	"time"
)

// From returns the same browser (same cookies) connecting from the local
// address ip, e.g. "127.0.0.2": a second client address on loopback, for
// limits that count per client address.
func (b *Browser) From(ip string) *Browser {
	c := *b
	cl := *b.Client
	cl.Transport = &http.Transport{
		Proxy:       nil,
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}).DialContext,
	}
	c.Client = &cl
	return &c
}
