package capture

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// backendCPU reads the CPU time of a server backend from
// /proc/PID/schedstat, when the server runs on the recorder's host. It
// measures what the recorder costs the server.
type backendCPU struct {
	path string
}

// newBackendCPU returns a reader for pid's CPU time, or nil unless the
// server is on this host (local) and pid is a postgres process here.
func newBackendCPU(pid int32, local bool) *backendCPU {
	if !local {
		return nil
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || !bytes.HasPrefix(comm, []byte("postgres")) {
		return nil
	}
	b := &backendCPU{path: fmt.Sprintf("/proc/%d/schedstat", pid)}
	if _, ok := b.read(); !ok {
		return nil
	}
	return b
}

// read returns the backend's CPU time so far, in microseconds.
func (b *backendCPU) read() (int64, bool) {
	if b == nil {
		return 0, false
	}
	data, err := os.ReadFile(b.path)
	if err != nil {
		return 0, false
	}
	f := bytes.Fields(data)
	if len(f) == 0 {
		return 0, false
	}
	ns, err := strconv.ParseInt(string(f[0]), 10, 64)
	if err != nil {
		return 0, false
	}
	return ns / 1000, true
}

// processCPU returns the recorder's own CPU time (user + system) in
// microseconds.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano()/1000 + ru.Stime.Nano()/1000
}

// peakRSS returns the recorder's peak resident memory in KiB (VmHWM), or 0
// where /proc does not tell.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if f := bytes.Fields(line); len(f) >= 2 && string(f[0]) == "VmHWM:" {
			n, _ := strconv.ParseInt(string(f[1]), 10, 64)
			return n
		}
	}
	return 0
}
