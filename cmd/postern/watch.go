package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// settleDelay is how long the watcher waits after the last change in a
// folder before it reads the files again: an editor or a certificate
// renewer writes in several steps, and the gateway reads the result once.
const settleDelay = 250 * time.Millisecond

// fileWatcher reports which of a set of files have changed on disk. It
// watches their folders rather than the files, so a file replaced by a
// rename (what editors, certbot and Kubernetes secret mounts do) is still
// seen, and it compares contents, so an event that changed nothing (a
// touch, another file in the same folder) reports nothing.
type fileWatcher struct {
	w     *fsnotify.Watcher
	files map[string][32]byte // absolute path -> hash of its last contents
	dirs  map[string][]string // folder -> absolute paths of watched files in it
}

// newFileWatcher watches files; close it with Close.
func newFileWatcher(files []string) (*fileWatcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch files: %w", err)
	}
	fw := &fileWatcher{w: w, files: map[string][32]byte{}, dirs: map[string][]string{}}
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("watch %s: %w", f, err)
		}
		if _, ok := fw.files[abs]; ok {
			continue
		}
		fw.files[abs] = contentHash(abs)
		dir := filepath.Dir(abs)
		if _, ok := fw.dirs[dir]; !ok {
			if err := w.Add(dir); err != nil {
				w.Close()
				return nil, fmt.Errorf("watch %s: %w", dir, err)
			}
		}
		fw.dirs[dir] = append(fw.dirs[dir], abs)
	}
	return fw, nil
}

// Close stops watching.
func (fw *fileWatcher) Close() error { return fw.w.Close() }

// event reports that something happened in a watched folder; changed
// then says which files differ. Call both from one goroutine.
func (fw *fileWatcher) event(ev fsnotify.Event, pending map[string]bool) bool {
	dir := filepath.Dir(ev.Name)
	if fw.dirs[dir] == nil {
		return false
	}
	pending[dir] = true
	return true
}

// changed returns the files in the pending folders whose contents differ
// from when they were last seen, and clears pending.
func (fw *fileWatcher) changed(pending map[string]bool) []string {
	var paths []string
	for dir := range pending {
		for _, f := range fw.dirs[dir] {
			if h := contentHash(f); h != fw.files[f] {
				fw.files[f] = h
				paths = append(paths, f)
			}
		}
	}
	clear(pending)
	return paths
}

// seenAll records the current contents of every file as known, after a
// reload of everything (SIGHUP).
func (fw *fileWatcher) seenAll() {
	for f := range fw.files {
		fw.files[f] = contentHash(f)
	}
}

// contentHash hashes a file's contents; a file that cannot be read hashes
// as empty, so its reappearance counts as a change.
func contentHash(path string) [32]byte {
	b, err := os.ReadFile(path)
	if err != nil {
		b = nil
	}
	return sha256.Sum256(b)
}
