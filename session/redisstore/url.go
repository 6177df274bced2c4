package redisstore

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// clientKind says which go-redis client a URL asks for.
type clientKind int

const (
	kindSingle clientKind = iota
	kindSentinel
	kindCluster
)

// clientConfig is a parsed store URL: exactly one of the option structs is
// set, according to kind.
type clientConfig struct {
	kind     clientKind
	wait     durability
	single   *redis.Options
	sentinel *redis.FailoverOptions
	cluster  *redis.ClusterOptions
}

// parseURL turns a store URL (see the package documentation) into go-redis
// options. Its errors name the part of the URL that is wrong and never
// contain the password.
func parseURL(raw string) (clientConfig, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return clientConfig{}, errors.New("url must start with redis://, rediss://, redis-sentinel:// or redis-cluster://")
	}
	var kind clientKind
	tls := false
	switch scheme {
	case "redis":
	case "rediss":
		tls = true
	case "redis-sentinel":
		kind = kindSentinel
	case "rediss-sentinel":
		kind, tls = kindSentinel, true
	case "redis-cluster":
		kind = kindCluster
	case "rediss-cluster":
		kind, tls = kindCluster, true
	default:
		return clientConfig{}, fmt.Errorf("unknown url scheme %q: use redis, rediss, redis-sentinel, rediss-sentinel, redis-cluster or rediss-cluster", scheme)
	}

	// Split the authority by hand: url.Parse rejects a comma-separated list
	// of bracketed IPv6 hosts.
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	userinfo, hostlist := "", authority
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo, hostlist = authority[:i+1], authority[i+1:]
	}
	defaultPort := "6379"
	if kind == kindSentinel {
		defaultPort = "26379"
	}
	addrs, err := parseHosts(hostlist, defaultPort)
	if err != nil {
		return clientConfig{}, err
	}
	if kind == kindSingle && len(addrs) > 1 {
		return clientConfig{}, fmt.Errorf("%s:// takes one host, the url names %d: use redis-cluster:// or redis-sentinel:// for several", scheme, len(addrs))
	}
	// Parse user, path and query with the standard parser, on one host.
	u, err := url.Parse("redis://" + userinfo + "placeholder" + tail)
	if err != nil {
		return clientConfig{}, fmt.Errorf("url credentials, path or query: %w", redactErr(err))
	}
	if u.Fragment != "" {
		return clientConfig{}, errors.New("url must not have a #fragment")
	}

	// Hand the rest to go-redis's own parsers, in the form they expect, so
	// every tuning option it knows works here too.
	inner := url.URL{Scheme: "redis", User: u.User, Host: addrs[0], Path: u.Path}
	if tls {
		inner.Scheme = "rediss"
	}
	q := u.Query()
	wait, err := parseDurability(q)
	if err != nil {
		return clientConfig{}, err
	}
	cfg, err := clientOptions(kind, addrs, u, inner, q)
	cfg.wait = wait
	return cfg, err
}

// clientOptions builds the go-redis options of one kind of client.
func clientOptions(kind clientKind, addrs []string, u *url.URL, inner url.URL, q url.Values) (clientConfig, error) {
	switch kind {
	case kindSingle:
		inner.RawQuery = q.Encode()
		o, err := redis.ParseURL(inner.String())
		if err != nil {
			return clientConfig{}, redactErr(err)
		}
		return clientConfig{kind: kind, single: o}, nil

	case kindSentinel:
		master := q.Get("master")
		if master == "" {
			return clientConfig{}, errors.New("redis-sentinel url needs ?master=NAME, the name sentinels monitor")
		}
		sentUser, sentPass := q.Get("sentinel_username"), q.Get("sentinel_password")
		for _, k := range []string{"master_name", "addr", "username", "password"} {
			if q.Has(k) {
				return clientConfig{}, fmt.Errorf("option %q is not supported in a redis-sentinel url: see the package documentation for its form", k)
			}
		}
		q.Del("master")
		q.Del("sentinel_username")
		q.Del("sentinel_password")
		// go-redis reads the master's credentials from the query and the
		// sentinels' from the user info; ours are the other way round.
		inner.User = nil
		if u.User != nil {
			if name := u.User.Username(); name != "" {
				q.Set("username", name)
			}
			if pw, ok := u.User.Password(); ok {
				q.Set("password", pw)
			}
		}
		q.Set("master_name", master)
		for _, a := range addrs[1:] {
			q.Add("addr", a)
		}
		inner.RawQuery = q.Encode()
		o, err := redis.ParseFailoverURL(inner.String())
		if err != nil {
			return clientConfig{}, redactErr(err)
		}
		o.SentinelUsername, o.SentinelPassword = sentUser, sentPass
		return clientConfig{kind: kind, sentinel: o}, nil

	default: // kindCluster
		if u.Path != "" && u.Path != "/" {
			return clientConfig{}, fmt.Errorf("redis-cluster url must not have a path (%q): a cluster has only database 0", u.Path)
		}
		inner.Path = ""
		if q.Has("addr") {
			return clientConfig{}, errors.New("option \"addr\" is not supported in a redis-cluster url: list the hosts before the path, separated by commas")
		}
		for _, a := range addrs[1:] {
			q.Add("addr", a)
		}
		inner.RawQuery = q.Encode()
		o, err := redis.ParseClusterURL(inner.String())
		if err != nil {
			return clientConfig{}, redactErr(err)
		}
		return clientConfig{kind: kind, cluster: o}, nil
	}
}

// parseHosts splits a comma-separated host list and gives each host a port.
func parseHosts(list, defaultPort string) ([]string, error) {
	if list == "" {
		return nil, errors.New("url names no host")
	}
	var addrs []string
	for i, h := range strings.Split(list, ",") {
		if h == "" {
			return nil, fmt.Errorf("host %d in the url is empty", i+1)
		}
		host, port := h, defaultPort
		if strings.HasPrefix(h, "[") {
			// [v6] or [v6]:port
			close := strings.Index(h, "]")
			if close < 0 {
				return nil, fmt.Errorf("host %q: missing ]", h)
			}
			host = h[1:close]
			switch after := h[close+1:]; {
			case after == "":
			case strings.HasPrefix(after, ":"):
				port = after[1:]
			default:
				return nil, fmt.Errorf("host %q: unexpected %q after ]", h, after)
			}
			if net.ParseIP(host) == nil {
				return nil, fmt.Errorf("host %q: not an IPv6 address in brackets", h)
			}
		} else if i := strings.LastIndex(h, ":"); i >= 0 {
			host, port = h[:i], h[i+1:]
			if strings.Contains(host, ":") {
				return nil, fmt.Errorf("host %q: write IPv6 addresses in brackets", h)
			}
		}
		if host == "" {
			return nil, fmt.Errorf("host %q: empty host name", h)
		}
		if !validPort(port) {
			return nil, fmt.Errorf("host %q: port %q is not a number from 1 to 65535", h, port)
		}
		addrs = append(addrs, net.JoinHostPort(host, port))
	}
	return addrs, nil
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n >= 1 && n <= 65535
}

// redactErr drops the URL from a *url.Error, which would otherwise print the
// whole URL, password included.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// CheckURL reports whether raw is a store URL Open would accept, without
// connecting (for configuration checks). Its error never holds the password.
func CheckURL(raw string) error {
	_, err := parseURL(raw)
	return err
}
