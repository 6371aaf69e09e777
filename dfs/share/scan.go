package share

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rads-lang/constellation/dfs"
)

// tempPrefix starts the names of the runner's own temporary files (never synced).
const tempPrefix = ".constellation-share-"

// MarkerName is the file a share keeps at the root of its directory (never synced). A
// round without it does nothing and reports an error: a directory whose disk is not
// mounted, or that was emptied and recreated, would otherwise look like every file was
// deleted, and the deletions would reach the DFS and every other node.
const MarkerName = ".constellation-share"

// IgnoredName reports whether a file name is never synced: the runner's temporary files
// and the usual editor leftovers (vim swap files and its 4913 probe, emacs lock and backup
// files, GNOME's .goutputstream-*). Editors that save by writing a temp file and renaming
// it over the original are seen as one change of the original once the burst settles.
func IgnoredName(name string) bool {
	switch {
	case strings.HasPrefix(name, tempPrefix), name == MarkerName,
		strings.HasPrefix(name, ".#"),
		strings.HasPrefix(name, ".goutputstream-"),
		strings.HasSuffix(name, "~"),
		strings.HasSuffix(name, ".swp"), strings.HasSuffix(name, ".swx"), strings.HasSuffix(name, ".swpx"),
		name == "4913":
		return true
	}
	return false
}

// ignoredRel reports whether any component of a relative path is ignored.
func ignoredRel(rel string) bool {
	for _, c := range strings.Split(rel, "/") {
		if IgnoredName(c) {
			return true
		}
	}
	return false
}

// hashCache remembers the hash of a file by size and mtime, so a scan reads only files
// that changed.
type hashCache map[string]cachedHash

type cachedHash struct {
	size  int64
	mtime int64
	hash  string
}

// racyWindow: a file modified this recently is hashed again even when size and mtime
// match (a second write within the same mtime tick would otherwise go unseen).
const racyWindow = 2 * time.Second

// scanLocal lists the regular files under root with their hashes. Links, special files,
// files over maxSize and names the DFS refuses are left out and reported in skip.
func scanLocal(root, prefix string, maxSize int64, cache hashCache, now time.Time) (files map[string]Local, skip map[string]string, err error) {
	files, skip = map[string]Local{}, map[string]string{}
	seen := map[string]bool{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, werr error) error {
		if werr != nil {
			if p == root {
				return werr
			}
			rel := relOf(root, p)
			skip[rel] = fmt.Sprintf("cannot read: %v", werr)
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if p == root {
			return nil
		}
		rel := relOf(root, p)
		if IgnoredName(d.Name()) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if err := dfs.CheckPath(prefix + "/" + rel); err != nil {
			skip[rel] = err.Error()
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		switch t := d.Type(); {
		case d.IsDir():
			return nil
		case t&fs.ModeSymlink != 0:
			skip[rel] = linkReason(root, p)
			return nil
		case !t.IsRegular():
			skip[rel] = "special file (" + t.String() + "), not a regular file"
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			skip[rel] = fmt.Sprintf("cannot stat: %v", err)
			return nil
		}
		if fi.Size() > maxSize {
			skip[rel] = fmt.Sprintf("%d bytes, more than the share's file size limit of %d", fi.Size(), maxSize)
			return nil
		}
		seen[rel] = true
		l := Local{Size: fi.Size(), MTime: fi.ModTime(), Mode: uint32(fi.Mode().Perm())}
		if c, ok := cache[rel]; ok && c.size == l.Size && c.mtime == l.MTime.UnixNano() && now.Sub(l.MTime) > racyWindow {
			l.Hash = c.hash
		} else {
			h, err := hashFile(p)
			if err != nil {
				skip[rel] = fmt.Sprintf("cannot read: %v", err)
				return nil
			}
			l.Hash = h
			cache[rel] = cachedHash{size: l.Size, mtime: l.MTime.UnixNano(), hash: h}
		}
		files[rel] = l
		return nil
	})
	for rel := range cache {
		if !seen[rel] {
			delete(cache, rel)
		}
	}
	return files, skip, err
}

// linkReason says why a symbolic link is not synced.
func linkReason(root, p string) string {
	target, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "symbolic link (dangling), not followed"
	}
	if !within(target, root) {
		return "symbolic link escaping the shared directory (to " + target + "), not followed"
	}
	return "symbolic link, not followed (links are not synced; their target is, under its own name)"
}

func relOf(root, p string) string {
	r, _ := filepath.Rel(root, p)
	return filepath.ToSlash(r)
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
