package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/orderflow/orderflow/engine"
)

// keysCheckEvery is how often the keys file is looked at for a change.
const keysCheckEvery = time.Second

// watchKeys reloads the API keys (the keys file again, plus
// ORDERFLOW_API_KEYS as read at start) on SIGHUP and when the keys file's
// size or modification time changes, checked every `every`, until ctx
// ends. A reload that fails (unreadable file, bad entry, no key left)
// keeps the previous keys and logs why, never a key.
func watchKeys(ctx context.Context, o options, e *engine.Engine, log *slog.Logger, every time.Duration) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	t := time.NewTicker(every)
	defer t.Stop()
	stamp := fileStamp(o.keysFile)
	for {
		var reason string
		select {
		case <-ctx.Done():
			return
		case <-hup:
			reason = "SIGHUP"
		case <-t.C:
			if o.keysFile == "" || fileStamp(o.keysFile) == stamp {
				continue
			}
			reason = "keys file changed"
		}
		stamp = fileStamp(o.keysFile)
		keys, err := loadAPIKeys(o.keysFile, o.apiKeys)
		if err == nil {
			err = e.SetAPIKeys(keys)
		}
		if err != nil {
			log.Error("API keys not reloaded; the previous keys stay in force", "reason", reason, "err", err.Error())
			continue
		}
		log.Info("API keys reloaded", "reason", reason, "api_keys", len(keys))
	}
}

// fileStamp is a file's size and modification time ("" without a file,
// "missing" when it cannot be read).
func fileStamp(path string) string {
	if path == "" {
		return ""
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "missing"
	}
	return fmt.Sprintf("%d/%d", fi.Size(), fi.ModTime().UnixNano())
}
