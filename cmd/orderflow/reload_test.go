package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/enginetest"
)

// The server reloads its API keys when the keys file changes and on SIGHUP
// (here with the file's size and time unchanged, so only the signal can
// have triggered it); a removed key gets 401.
func TestKeysReloadOnFileChangeAndSIGHUP(t *testing.T) {
	// Keep SIGHUP from ending the test binary whatever the server's state.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	const keyA, keyB, keyC = "first-key-0123456789abcd", "second-key-0123456789abc", "third-key-0123456789abcd"
	file := filepath.Join(t.TempDir(), "keys")
	write := func(content string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if !mtime.IsZero() {
			if err := os.Chtimes(file, mtime, mtime); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("svc:"+keyA+"\n", time.Time{})
	broker := enginetest.NewBroker(t)
	getenv := env("DATABASE_URL", enginetest.NewDatabase(t), "KAFKA_BROKERS", broker.ListenAddrs()[0])
	var logs enginetest.LogBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-listen=127.0.0.1:0", "-admin-listen=127.0.0.1:0", "-auth.keys-file=" + file}, getenv, &logs)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		for _, k := range []string{keyA, keyB, keyC} {
			if strings.Contains(logs.String(), k) {
				t.Errorf("an API key appears in the log")
			}
		}
	}()
	listen := ""
	for deadline := time.Now().Add(60 * time.Second); listen == ""; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("server not started:\n%s", logs.String())
		}
		for _, line := range strings.Split(logs.String(), "\n") {
			var l struct{ Msg, Listen string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "orderflow started" {
				listen = l.Listen
			}
		}
	}
	status := func(key string) int {
		req, _ := http.NewRequest(http.MethodGet, "http://"+listen+"/v1/orders/ord_none", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitKeys := func(what, good, gone string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); status(good) == http.StatusUnauthorized || status(gone) != http.StatusUnauthorized; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: keys not reloaded within 20s:\n%s", what, logs.String())
			}
		}
	}
	if status(keyA) == http.StatusUnauthorized {
		t.Fatalf("the key of the file at start gets 401")
	}
	write("svc:"+keyB+"\n", time.Time{})
	waitKeys("file changed", keyB, keyA)

	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	write("svc:"+keyC+"\n", fi.ModTime()) // same size, same time: the poll sees no change
	time.Sleep(2 * keysCheckEvery)
	if status(keyC) != http.StatusUnauthorized {
		t.Fatalf("reloaded without a change the poll can see; the SIGHUP case would prove nothing")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitKeys("SIGHUP", keyC, keyB)
}
