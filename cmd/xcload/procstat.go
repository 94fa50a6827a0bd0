package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Process figures read from /proc (Linux). A server is "local" when its process can be read
// there: given with --server-pid, or found as the process that listens on --url's port.

// procFS is the root of the proc file system (a field, not a global, so tests can point it
// elsewhere; "/proc" in the command).
type procFS string

// ProcSample is one reading of one process.
type ProcSample struct {
	PID            int     `json:"pid"`
	T              float64 `json:"t"`            // seconds since the start of the run (creation included)
	RSSKiB         int64   `json:"rssKiB"`       // VmRSS
	Goroutines     int64   `json:"goroutines"`   // go_goroutines from the process's /metrics; -1 when unknown
	HeapObjects    int64   `json:"heapObjects"`  // go_memstats_heap_objects (live and not yet swept); -1 when unknown
	HeapInuseKiB   int64   `json:"heapInuseKiB"` // go_memstats_heap_inuse_bytes / 1024; -1 when unknown
	FDs            int     `json:"fds"`          // entries of /proc/PID/fd
	TCP            int     `json:"tcp"`          // TCP sockets of the process that are not listening (any state)
	TCPEstablished int     `json:"tcpEstablished"`
	CPUSeconds     float64 `json:"cpuSeconds"` // user + system since the process started
}

// tcpSocket is one row of /proc/net/tcp or tcp6.
type tcpSocket struct {
	localPort int
	state     int // 1 ESTABLISHED, 10 LISTEN, …
	inode     uint64
}

const (
	tcpEstablished = 0x01
	tcpListen      = 0x0A
)

// tcpTable reads the TCP sockets of the network namespace of pid (0: of this process).
func (p procFS) tcpTable(pid int) ([]tcpSocket, error) {
	dir := string(p) + "/net"
	if pid > 0 {
		dir = filepath.Join(string(p), strconv.Itoa(pid), "net")
	}
	var out []tcpSocket
	for _, name := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // no IPv6
			}
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 0, 4096), 1<<20)
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …
			f := strings.Fields(sc.Text())
			if len(f) < 10 {
				continue
			}
			_, port, ok := strings.Cut(f[1], ":")
			if !ok {
				continue
			}
			lp, err1 := strconv.ParseInt(port, 16, 32)
			st, err2 := strconv.ParseInt(f[3], 16, 32)
			ino, err3 := strconv.ParseUint(f[9], 10, 64)
			if err1 != nil || err2 != nil || err3 != nil {
				continue
			}
			out = append(out, tcpSocket{localPort: int(lp), state: int(st), inode: ino})
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
	}
	return out, nil
}

// socketInodes returns the inodes of the sockets pid has open, and how many descriptors it has.
func (p procFS) socketInodes(pid int) (map[uint64]bool, int, error) {
	dir := filepath.Join(string(p), strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, fmt.Errorf("process %d: %w", pid, err)
	}
	inodes := make(map[uint64]bool)
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if s, ok := strings.CutPrefix(l, "socket:["); ok {
			if ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64); err == nil {
				inodes[ino] = true
			}
		}
	}
	return inodes, len(ents), nil
}

// listener returns the process that listens on TCP port (any address), or 0.
func (p procFS) listener(port int) (int, error) {
	tab, err := p.tcpTable(0)
	if err != nil {
		return 0, err
	}
	want := map[uint64]bool{}
	for _, s := range tab {
		if s.state == tcpListen && s.localPort == port {
			want[s.inode] = true
		}
	}
	if len(want) == 0 {
		return 0, nil
	}
	ents, err := os.ReadDir(string(p))
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", p, err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue // not a process; or this one (a server in the same process is not "local")
		}
		inodes, _, err := p.socketInodes(pid)
		if err != nil {
			continue // gone, or not ours to read
		}
		for ino := range want {
			if inodes[ino] {
				return pid, nil
			}
		}
	}
	return 0, nil
}

// listenPorts returns the TCP ports pid listens on.
func (p procFS) listenPorts(pid int) ([]int, error) {
	inodes, _, err := p.socketInodes(pid)
	if err != nil {
		return nil, err
	}
	tab, err := p.tcpTable(pid)
	if err != nil {
		return nil, err
	}
	var ports []int
	for _, s := range tab {
		if s.state == tcpListen && inodes[s.inode] {
			ports = append(ports, s.localPort)
		}
	}
	return ports, nil
}

// sample reads pid's memory, descriptors, connections and CPU time.
func (p procFS) sample(pid int) (ProcSample, error) {
	s := ProcSample{PID: pid, Goroutines: -1, HeapObjects: -1, HeapInuseKiB: -1}
	status, err := os.ReadFile(filepath.Join(string(p), strconv.Itoa(pid), "status"))
	if err != nil {
		return s, fmt.Errorf("process %d: %w", pid, err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			s.RSSKiB, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	stat, err := os.ReadFile(filepath.Join(string(p), strconv.Itoa(pid), "stat"))
	if err != nil {
		return s, fmt.Errorf("process %d: %w", pid, err)
	}
	// pid (comm) state ppid … utime(14) stime(15): fields counted after the comm's ")".
	if i := bytes.LastIndexByte(stat, ')'); i > 0 {
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 12 {
			ut, _ := strconv.ParseFloat(f[11], 64)
			st, _ := strconv.ParseFloat(f[12], 64)
			s.CPUSeconds = (ut + st) / 100 // USER_HZ is 100 on Linux
		}
	}
	inodes, fds, err := p.socketInodes(pid)
	if err != nil {
		return s, err
	}
	s.FDs = fds
	tab, err := p.tcpTable(pid)
	if err != nil {
		return s, err
	}
	// /proc/net/tcp is read a page at a time: a socket that changes between two reads can be
	// listed twice, so sockets are counted once per inode.
	seen := make(map[uint64]bool)
	for _, t := range tab {
		if !inodes[t.inode] || t.state == tcpListen || seen[t.inode] {
			continue
		}
		seen[t.inode] = true
		s.TCP++
		if t.state == tcpEstablished {
			s.TCPEstablished++
		}
	}
	return s, nil
}

// comm is the command name of pid ("" when unknown).
func (p procFS) comm(pid int) string {
	b, err := os.ReadFile(filepath.Join(string(p), strconv.Itoa(pid), "comm"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// goMetrics are the Go runtime figures read from a process's /metrics.
type goMetrics struct {
	goroutines, heapObjects, heapInuse int64 // -1: absent
}

// readGoMetrics reads go_goroutines, go_memstats_heap_objects and go_memstats_heap_inuse_bytes
// from a Prometheus text exposition; go_goroutines is required.
func readGoMetrics(ctx context.Context, hc *http.Client, metricsURL, token string) (goMetrics, error) {
	m := goMetrics{-1, -1, -1}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return m, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return m, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("metrics: HTTP %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 64<<20))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		var dst *int64
		switch name {
		case "go_goroutines":
			dst = &m.goroutines
		case "go_memstats_heap_objects":
			dst = &m.heapObjects
		case "go_memstats_heap_inuse_bytes":
			dst = &m.heapInuse
		}
		if !ok || dst == nil {
			continue
		}
		n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return m, fmt.Errorf("metrics: %s %q", name, v)
		}
		*dst = int64(n)
	}
	if err := sc.Err(); err != nil {
		return m, fmt.Errorf("metrics: %w", err)
	}
	if m.goroutines < 0 {
		return m, errors.New("metrics: no go_goroutines")
	}
	return m, nil
}
