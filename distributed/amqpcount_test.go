package distributed_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// frameCounter is a TCP proxy in front of the broker that counts the AMQP frames crossing it
// by direction and method (basic.publish, basic.deliver, basic.ack …): the load tool's
// "broker operations per command" (docs/benchmarks.md). It parses the frames and forwards
// the bytes unchanged.
type frameCounter struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	counts map[string]int64 // "c>s basic.publish", "s>c basic.ack" …
	wg     sync.WaitGroup
}

func newFrameCounter(t *testing.T, target string) *frameCounter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fc := &frameCounter{ln: ln, target: target, counts: map[string]int64{}}
	fc.wg.Add(1)
	go fc.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		fc.wg.Wait()
	})
	return fc
}

// url rewrites a broker URL to go through the proxy.
func (fc *frameCounter) url(u string) string {
	return strings.Replace(u, fc.target, fc.ln.Addr().String(), 1)
}

func (fc *frameCounter) accept() {
	defer fc.wg.Done()
	for {
		c, err := fc.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", fc.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		fc.wg.Add(2)
		go fc.pipe(c, s, "c>s", true)
		go fc.pipe(s, c, "s>c", false)
	}
}

// pipe copies src to dst, counting frames; the client side starts with the 8-byte protocol
// header.
func (fc *frameCounter) pipe(src, dst net.Conn, dir string, header bool) {
	defer fc.wg.Done()
	defer func() { _ = dst.Close(); _ = src.Close() }()
	r := bufio.NewReaderSize(src, 64<<10)
	w := bufio.NewWriterSize(dst, 64<<10)
	flush := func() bool { return w.Flush() == nil }
	if header {
		var h [8]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return
		}
		if _, err := w.Write(h[:]); err != nil || !flush() {
			return
		}
	}
	local := map[string]int64{}
	var hdr [7]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		size := binary.BigEndian.Uint32(hdr[3:])
		payload := make([]byte, int(size)+1) // + frame end
		if _, err := io.ReadFull(r, payload); err != nil {
			return
		}
		switch hdr[0] {
		case 1: // method
			if len(payload) >= 4 {
				local[dir+" "+methodName(binary.BigEndian.Uint16(payload), binary.BigEndian.Uint16(payload[2:]))]++
			}
		case 2:
			local[dir+" content-header"]++
		case 3:
			local[dir+" content-body"]++
		case 8:
			local[dir+" heartbeat"]++
		}
		local[dir+" bytes"] += int64(7 + len(payload))
		if _, err := w.Write(hdr[:]); err != nil {
			return
		}
		if _, err := w.Write(payload); err != nil {
			return
		}
		if r.Buffered() == 0 { // nothing more to read right now: send what we have
			if !flush() {
				return
			}
			fc.mu.Lock()
			for k, v := range local {
				fc.counts[k] += v
			}
			fc.mu.Unlock()
			clear(local)
		}
	}
}

func methodName(class, method uint16) string {
	switch class {
	case 60:
		if n, ok := map[uint16]string{10: "qos", 11: "qos-ok", 20: "consume", 21: "consume-ok", 30: "cancel", 31: "cancel-ok",
			40: "publish", 50: "return", 60: "deliver", 70: "get", 80: "ack", 90: "reject", 120: "nack"}[method]; ok {
			return "basic." + n
		}
	case 85:
		return "confirm." + strconv.Itoa(int(method))
	}
	return fmt.Sprintf("%d.%d", class, method)
}

func (fc *frameCounter) snapshot() map[string]int64 {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	out := make(map[string]int64, len(fc.counts))
	for k, v := range fc.counts {
		out[k] = v
	}
	return out
}

// perCommand formats the frames counted between two snapshots per command.
func perCommand(before, after map[string]int64, commands int) string {
	var keys []string
	for k := range after {
		if after[k] != before[k] && !strings.HasSuffix(k, "heartbeat") {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%.2f", k, float64(after[k]-before[k])/float64(commands))
	}
	return b.String()
}

// cpuClock reads the CPU time used so far by this process and by the broker (beam.smp) and
// the database (every postgres process) on this machine, from /proc. The broker and database
// are shared with whatever else runs on the machine: compare interleaved runs.
type cpuTimes struct {
	self       time.Duration
	broker, db map[string]time.Duration // by pid
}

// cpuSince is the CPU used since before by the processes of m alive at both readings: backends
// of other sessions come and go, and every rabbitmqctl is a short-lived beam.smp too.
func cpuSince(m, before map[string]time.Duration) time.Duration {
	var d time.Duration
	for pid, t := range m {
		if t0, ok := before[pid]; ok {
			d += t - t0
		}
	}
	return d
}

func readCPU() cpuTimes {
	c := cpuTimes{broker: map[string]time.Duration{}, db: map[string]time.Duration{}}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		c.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		comm, err := os.ReadFile(d + "/comm")
		if err != nil {
			continue
		}
		name := strings.TrimSpace(string(comm))
		if name != "beam.smp" && name != "postgres" {
			continue
		}
		stat, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		// Fields after the ")" ending the command: state is field 3, utime 14, stime 15.
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks := time.Duration(u+st) * time.Second / 100 // USER_HZ
		if name == "beam.smp" {
			c.broker[d] = ticks
		} else {
			c.db[d] = ticks
		}
	}
	return c
}
