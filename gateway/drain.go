package gateway

// Drain tells load balancers the gateway is going away: from now on
// /.postern/readyz answers 503, while every other request is still served
// as before. Call it on SIGTERM, some time before closing the listener.
func (g *Gateway) Drain() { g.draining.Store(true) }
