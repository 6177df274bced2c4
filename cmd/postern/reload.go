package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// reloadable is a part of the gateway whose files are re-read while it
// runs: the TLS certificate and key, the htpasswd file.
type reloadable struct {
	// setting names the files in messages, e.g. "htpasswd_file".
	setting string
	files   []string
	// reload re-reads the files; on an error the part keeps what it had.
	// The summary (e.g. "3 users") goes to the log.
	reload func() (summary string, err error)
}

// startReloader re-reads every part on SIGHUP, and a part whose files
// changed on disk once they have settled. SIGHUP never stops the gateway.
// A file that cannot be used is logged and the previous one kept. It
// returns a function that stops it and waits until it has.
func startReloader(ctx context.Context, logger *slog.Logger, parts []reloadable) func() {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})

	var files []string
	for _, p := range parts {
		files = append(files, p.files...)
	}
	var fw *fileWatcher
	if len(files) > 0 {
		var err error
		if fw, err = newFileWatcher(files); err != nil {
			// SIGHUP still works; say why changes are not picked up alone.
			logger.Warn("file changes are not watched; send SIGHUP to reload", "err", err)
			fw = nil
		}
	}

	go func() {
		defer close(done)
		defer signal.Stop(hup)
		if fw != nil {
			defer fw.Close()
		}
		var events <-chan fsnotify.Event
		var errs <-chan error
		if fw != nil {
			events, errs = fw.w.Events, fw.w.Errors
		}
		settle := time.NewTimer(time.Hour)
		settle.Stop()
		defer settle.Stop()
		pending := map[string]bool{}
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				logger.Info("SIGHUP: reloading files")
				for _, p := range parts {
					reloadPart(logger, p, "SIGHUP")
				}
				if fw != nil {
					fw.seenAll()
				}
			case ev, ok := <-events:
				if !ok {
					events = nil
					continue
				}
				if fw.event(ev, pending) {
					settle.Reset(settleDelay)
				}
			case err, ok := <-errs:
				if !ok {
					errs = nil
					continue
				}
				logger.Warn("watching files", "err", err)
			case <-settle.C:
				changed := fw.changed(pending)
				for _, p := range parts {
					if slices.ContainsFunc(p.files, func(f string) bool {
						abs, _ := filepath.Abs(f)
						return slices.Contains(changed, abs)
					}) {
						reloadPart(logger, p, "file changed")
					}
				}
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

func reloadPart(logger *slog.Logger, p reloadable, why string) {
	summary, err := p.reload()
	if err != nil {
		logger.Error("reload failed, keeping the previous "+p.setting, "setting", p.setting, "trigger", why, "err", err)
		return
	}
	logger.Info("reloaded "+p.setting, "setting", p.setting, "trigger", why, "result", summary)
}
