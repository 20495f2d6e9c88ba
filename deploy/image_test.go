package deploy

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestImage builds the container image with `make image`'s script (docker
// when a daemon answers, else buildah with chroot isolation on vfs storage),
// runs the image's server on the host's network against a fresh database
// on the local PostgreSQL with the embedded broker, and expects /readyz 200
// and 201 for an order. It logs the image size.
func TestImage(t *testing.T) {
	tag := fmt.Sprintf("test-%d", time.Now().UnixNano())
	cmd := exec.Command("bash", "scripts/image.sh")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "IMAGE=orderflow", "IMAGE_TAG="+tag)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("scripts/image.sh: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.Bytes(), stderr.Bytes())
	}
	m := regexp.MustCompile(`(?m)^image (\S+) size (\d+) bytes \(([^)]+)\) built by (docker|buildah)$`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("scripts/image.sh printed %q; want a last line `image NAME:TAG size N bytes (… MB) built by docker|buildah`", stdout.String())
	}
	ref, size, builder := m[1], m[3], m[4]
	if ref != "orderflow:"+tag {
		t.Fatalf("image %s; want orderflow:%s", ref, tag)
	}
	t.Logf("RESULT image %s: %s built by %s in %v", ref, size, builder, time.Since(start).Round(time.Second))

	var storage []string // buildah's storage flags
	if builder == "buildah" {
		storage = []string{"--storage-driver", "vfs"}
	}
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	t.Cleanup(func() {
		if builder == "docker" {
			_ = exec.Command("docker", "rmi", "-f", ref).Run()
		} else {
			_ = exec.Command("buildah", append(storage, "rmi", "-f", ref)...).Run()
		}
	})

	// What the image holds: the user, the entrypoint, both ports.
	var inspect string
	if builder == "docker" {
		inspect = run("docker", "image", "inspect", "--format", "{{.Config.User}} {{.Config.Entrypoint}} {{.Config.ExposedPorts}}", ref)
	} else {
		inspect = run("buildah", append(storage, "inspect", "--type", "image", "--format", "{{.OCIv1.Config.User}} {{.OCIv1.Config.Entrypoint}} {{.OCIv1.Config.ExposedPorts}}", ref)...)
	}
	for _, want := range []string{"65532:65532 ", "[/orderflow]", "8080/tcp", "6060/tcp"} {
		if !strings.Contains(inspect, want) {
			t.Errorf("image config %q lacks %q (numeric non-root user, /orderflow entrypoint, both ports)", inspect, want)
		}
	}

	db := testDB(t)
	env, base, admin := serverEnv(t, db)
	// runImage runs the image's entrypoint with env and args on the host network.
	runImage := func(args ...string) *exec.Cmd {
		if builder == "docker" {
			a := []string{"run", "--rm", "--network", "host"}
			for _, e := range env {
				a = append(a, "-e", e)
			}
			return exec.Command("docker", append(append(a, ref), args...)...)
		}
		ctr := run("buildah", append(storage, "from", ref)...)
		t.Cleanup(func() { _ = exec.Command("buildah", append(storage, "rm", ctr)...).Run() })
		a := append(storage, "run", "--isolation", "chroot", "--network", "host")
		for _, e := range env {
			if !strings.HasPrefix(e, "PATH=") && !strings.HasPrefix(e, "HOME=") {
				a = append(a, "--env", e)
			}
		}
		return exec.Command("buildah", append(append(a, ctr, "--", "/orderflow"), args...)...)
	}
	srv := startProcess(t, runImage(), base, admin)
	if code, body := get(admin + "/readyz"); code != http.StatusOK {
		t.Fatalf("GET /readyz of the image's server: %d %s; want 200", code, body)
	}
	code, body := do(http.MethodPost, base+"/v1/orders", "application/json", orderJSON("img_1"))
	if code != http.StatusCreated {
		t.Fatalf("POST /v1/orders to the image's server: %d %s; want 201", code, body)
	}
	if l := srv.logText(); !strings.Contains(l, `"version":"`) || strings.Contains(l, `"version":"dev"`) {
		t.Errorf("the image's server did not log a stamped version; log:\n%s", l)
	}
	srv.stop()
}
