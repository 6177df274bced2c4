package auth

import "net/netip"

// AddrKey is the key limits count a client address under: IPv6 addresses
// are grouped by their /64, the block one subscriber usually gets, so that
// rotating through it does not escape a limit; IPv4-mapped addresses count
// as IPv4. A port, if present, is dropped. Anything else is used as given.
func AddrKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			return addr
		}
		ip = ap.Addr()
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		return netip.PrefixFrom(ip, 64).Masked().String()
	}
	return ip.String()
}
