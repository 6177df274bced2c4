package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/postern/postern/cmd/postern/internal/config"
)

// No Docker engine runs here, so docker-compose.yml and the Dockerfile are
// kept honest by other means: every postern service's settings load and
// validate with the real configuration code (container paths mapped back to
// the files the compose file mounts), the nginx configuration passes
// "nginx -t", and the Dockerfile's build command builds.
func TestComposeFileIsValid(t *testing.T) {
	root := filepath.Join("..", "..")
	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Build       string            `yaml:"build"`
			Image       string            `yaml:"image"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
			Secrets     []string          `yaml:"secrets"`
		} `yaml:"services"`
		Secrets map[string]struct {
			File string `yaml:"file"`
		} `yaml:"secrets"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	postern := 0
	for name, svc := range compose.Services {
		if svc.Build != "." {
			continue
		}
		postern++
		// Where each container path comes from on this machine.
		mounts := map[string]string{}
		for _, v := range svc.Volumes {
			parts := strings.Split(v, ":")
			mounts[parts[1]] = filepath.Join(root, parts[0])
		}
		for _, s := range svc.Secrets {
			mounts["/run/secrets/"+s] = filepath.Join(root, compose.Secrets[s].File)
		}
		env := map[string]string{}
		for k, v := range svc.Environment {
			if !strings.HasPrefix(k, "POSTERN_") {
				t.Errorf("%s: %s is not a postern setting", name, k)
			}
			if host, ok := mounts[v]; ok {
				v = host
			}
			env[k] = v
		}
		cfg, err := config.Load(nil, func(k string) string { return env[k] })
		if err != nil {
			t.Fatalf("%s: settings do not load: %v", name, err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%s: settings do not validate: %v", name, err)
		}
		for path, host := range mounts {
			if _, err := os.Stat(host); err != nil {
				t.Errorf("%s: %s is mounted from %s, which is missing", name, path, host)
			}
		}
	}
	if postern < 2 {
		t.Fatalf("docker-compose.yml runs %d postern services, want the two replicas", postern)
	}

	nginx, err := exec.LookPath("nginx")
	if err != nil {
		nginx = "/usr/sbin/nginx"
	}
	if _, err := os.Stat(nginx); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("nginx is not installed; CI must check the compose file's nginx.conf (apt-get install nginx-light)")
		}
		t.Skip("nginx is not installed: skipping the nginx.conf check")
	}
	conf, err := os.ReadFile(filepath.Join(root, "testdata", "compose", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	// The service names resolve only inside compose's network.
	conf = regexp.MustCompile(`server postern-[ab]:8080;`).ReplaceAll(conf, []byte("server 127.0.0.1:8080;"))
	dir := t.TempDir()
	conf = bytes.Replace(conf, []byte("events {}"), []byte("pid "+dir+"/nginx.pid;\nerror_log "+dir+"/error.log;\nevents {}"), 1)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), conf, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(nginx, "-t", "-p", dir, "-c", filepath.Join(dir, "nginx.conf")).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

func TestDockerfileBuildCommandBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	root := filepath.Join("..", "..")
	df, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^RUN CGO_ENABLED=0 (go build .*) -o /out/postern (\./cmd/postern)$`).FindSubmatch(df)
	if m == nil {
		t.Fatal("the Dockerfile has no static go build of ./cmd/postern")
	}
	out := filepath.Join(t.TempDir(), "postern")
	// Run the Dockerfile's own command line, as its RUN would (sh -c).
	line := "CGO_ENABLED=0 " + string(m[1]) + " -o " + out + " " + string(m[2])
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, b)
	}
	v, err := exec.Command(out, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(v), "postern") {
		t.Fatalf("the built binary does not run: %v %s", err, v)
	}
}
