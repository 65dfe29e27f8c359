// Package wasmcache chooses where go-graphviz keeps the native code its
// WebAssembly compiles to, before go-graphviz initialises.
//
// go-graphviz v0.2.10 compiles Graphviz's WebAssembly in its package
// initialisation and caches the result (wazero's compilation cache) in
// os.TempDir()/go-graphviz, created 0755 by whoever runs first. In a shared
// /tmp that directory belongs to the first user: any other user's run then
// panics before main (permission denied), and a user who creates it first
// can plant compiled code that the next user's process loads and runs.
//
// Importing this package (the renderer's graphviz package does, and
// nothing in the lockscope binary) sets TMPDIR, which os.TempDir reads,
// before go-graphviz's initialisation runs: Go initialises packages in the
// order of their import paths, each after its own imports, so this one
// (github.com/lockscope/…, importing only the standard library and
// report/render/trust) is initialised before wazero (github.com/tetratelabs/…),
// which go-graphviz's internal/wasm needs first. TMPDIR becomes
//
//   - the user's private cache directory, os.UserCacheDir()/lockscope
//     ($XDG_CACHE_HOME or ~/.cache), created 0700 and used only when it is
//     the user's own, not writable by anyone else, under directories only
//     the user or root can write (trust.PrivateDir); or
//   - /dev/null, when that check fails or LOCKSCOPE_RENDER_CACHE=off: not a
//     directory, so go-graphviz finds no cache and creates none (its
//     Mkdir fails with ENOTDIR) and compiles in memory.
//
// Nothing is then read from or written to a directory another user can
// write. The renderer uses TMPDIR for nothing else.
package wasmcache

import (
	"os"

	"github.com/lockscope/lockscope/report/render/trust"
)

// NoCache is the TMPDIR that leaves go-graphviz without a cache.
const NoCache = "/dev/null"

// Dir is the directory the cache was given (TMPDIR), or NoCache; Reason
// says why there is none.
var Dir, Reason string

func init() {
	Dir, Reason = choose()
	os.Setenv("TMPDIR", Dir)
}

func choose() (dir, reason string) {
	if os.Getenv("LOCKSCOPE_RENDER_CACHE") == "off" {
		return NoCache, "LOCKSCOPE_RENDER_CACHE=off"
	}
	dir, err := trust.CacheDir()
	if err != nil {
		return NoCache, err.Error()
	}
	return dir, ""
}
