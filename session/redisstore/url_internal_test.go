package redisstore

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	cases := []struct {
		url   string
		check func(t *testing.T, c clientConfig)
	}{
		{"redis://127.0.0.1:6380/2", func(t *testing.T, c clientConfig) {
			o := c.single
			if c.kind != kindSingle || o.Addr != "127.0.0.1:6380" || o.DB != 2 || o.TLSConfig != nil {
				t.Fatalf("%+v", o)
			}
		}},
		{"redis://cache", func(t *testing.T, c clientConfig) {
			if c.single.Addr != "cache:6379" || c.single.DB != 0 {
				t.Fatalf("defaults: %s db %d", c.single.Addr, c.single.DB)
			}
		}},
		{"rediss://u:p%40ss@cache.example:6390/1?dial_timeout=2s", func(t *testing.T, c clientConfig) {
			o := c.single
			if o.Username != "u" || o.Password != "p@ss" || o.TLSConfig == nil || o.TLSConfig.ServerName != "cache.example" || o.DialTimeout != 2*time.Second {
				t.Fatalf("%+v", o)
			}
		}},
		{"redis://:secret@[::1]:7000/3", func(t *testing.T, c clientConfig) {
			if c.single.Addr != "[::1]:7000" || c.single.Password != "secret" || c.single.DB != 3 {
				t.Fatalf("%+v", c.single)
			}
		}},
		{"redis-sentinel://:mpw@s1,s2:26380,[::1]/4?master=main&sentinel_password=spw&read_timeout=1s", func(t *testing.T, c clientConfig) {
			o := c.sentinel
			if c.kind != kindSentinel || o.MasterName != "main" || o.DB != 4 || o.Password != "mpw" || o.SentinelPassword != "spw" || o.SentinelUsername != "" || o.ReadTimeout != time.Second || o.TLSConfig != nil {
				t.Fatalf("%+v", o)
			}
			if want := []string{"s1:26379", "s2:26380", "[::1]:26379"}; !slices.Equal(o.SentinelAddrs, want) {
				t.Fatalf("sentinels %v, want %v", o.SentinelAddrs, want)
			}
		}},
		{"rediss-sentinel://s1/0?master=m", func(t *testing.T, c clientConfig) {
			if c.sentinel.TLSConfig == nil || c.sentinel.Password != "" {
				t.Fatalf("%+v", c.sentinel)
			}
		}},
		{"redis-cluster://user:pw@n1:7000,n2:7001,n3", func(t *testing.T, c clientConfig) {
			o := c.cluster
			if c.kind != kindCluster || o.Username != "user" || o.Password != "pw" || o.TLSConfig != nil {
				t.Fatalf("%+v", o)
			}
			if want := []string{"n1:7000", "n2:7001", "n3:6379"}; !slices.Equal(o.Addrs, want) {
				t.Fatalf("seeds %v, want %v", o.Addrs, want)
			}
		}},
		{"rediss-cluster://n1:7000/?pool_size=7", func(t *testing.T, c clientConfig) {
			if c.cluster.TLSConfig == nil || c.cluster.PoolSize != 7 {
				t.Fatalf("%+v", c.cluster)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.url, func(t *testing.T) {
			cfg, err := parseURL(c.url)
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, cfg)
		})
	}
}

func TestParseURLErrors(t *testing.T) {
	cases := []struct{ url, mention string }{
		{"localhost:6379", "redis://"},
		{"http://:hunter2@h/0", `"http"`},
		{"redis://", "no host"},
		{"redis://:hunter2@/0", "no host"},
		{"redis://a:1,b:2", "redis-cluster"},
		{"redis://h:0", "port"},
		{"redis://h:99999", "port"},
		{"redis://h:x", "port"},
		{"redis://::1:6379", "brackets"},
		{"redis://[::1:6379", "]"},
		{"redis://h,", "host 2"},
		{"redis://:hunter2@h/x", "database"},
		{"redis://:hunter2@h/0?bogus=1", "bogus"},
		{"redis://h/0#frag", "fragment"},
		{"redis-sentinel://:hunter2@s1/0", "master"},
		{"redis-sentinel://s1/0?master=m&addr=s2:1", "addr"},
		{"redis-cluster://:hunter2@n1/2", "path"},
		{"redis-cluster://n1?addr=n2:1", "addr"},
		{"redis-cluster://n1?max_redirects=x", "max_redirects"},
	}
	for _, c := range cases {
		t.Run(c.url, func(t *testing.T) {
			_, err := parseURL(c.url)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.mention) {
				t.Fatalf("error %q does not name %q", err, c.mention)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error %q reveals the password", err)
			}
		})
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"redis://h:1/0", "rediss://u:p@h", "redis-sentinel://:p@a,b:2/1?master=m",
		"redis-cluster://a:1,[::1]:2?pool_size=3", "redis://[::1", "redis://a@b@c/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cfg, err := parseURL(s)
		if err != nil {
			return
		}
		switch cfg.kind {
		case kindSingle:
			if cfg.single == nil {
				t.Fatal("single without options")
			}
		case kindSentinel:
			if cfg.sentinel == nil || cfg.sentinel.MasterName == "" || len(cfg.sentinel.SentinelAddrs) == 0 {
				t.Fatal("sentinel without master or sentinels")
			}
		case kindCluster:
			if cfg.cluster == nil || len(cfg.cluster.Addrs) == 0 {
				t.Fatal("cluster without seeds")
			}
		}
	})
}
