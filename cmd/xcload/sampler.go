package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// watched is one local server process whose figures are sampled during the run.
type watched struct {
	pid     int
	name    string // command name
	metrics string // its /metrics URL ("": goroutines unknown)
}

// sampler reads the watched processes every interval: one sample at the start, one per
// interval, one at the end. Samples go to memory (for the report) and, when out is set, to out
// as JSON lines as they are taken (a soak interrupted halfway keeps what it saw).
type sampler struct {
	proc  procFS
	hc    *http.Client
	token string
	procs []watched
	every time.Duration
	begin time.Time
	out   io.Writer

	mu      sync.Mutex
	samples []ProcSample
	last    []ProcSample
	errs    map[int]string // first read error per process
}

func newSampler(proc procFS, hc *http.Client, token string, procs []watched, every time.Duration, begin time.Time, out io.Writer) *sampler {
	return &sampler{proc: proc, hc: hc, token: token, procs: procs, every: every, begin: begin, out: out, errs: map[int]string{}}
}

// discover finds each process's /metrics: the first of its listening ports that answers with
// go_goroutines (the server of --url is tried at --url first).
func (s *sampler) discover(ctx context.Context, base string, basePID int) {
	for i := range s.procs {
		p := &s.procs[i]
		p.name = s.proc.comm(p.pid)
		var cands []string
		if p.pid == basePID {
			cands = append(cands, base+"/metrics")
		}
		ports, _ := s.proc.listenPorts(p.pid)
		for _, port := range ports {
			cands = append(cands, "http://127.0.0.1:"+strconv.Itoa(port)+"/metrics")
		}
		for _, u := range cands {
			if _, err := readGoMetrics(ctx, s.hc, u, s.token); err == nil {
				p.metrics = u
				break
			}
		}
	}
}

// once takes one sample of every process.
func (s *sampler) once(ctx context.Context) {
	t := time.Since(s.begin).Seconds()
	batch := make([]ProcSample, 0, len(s.procs))
	for _, p := range s.procs {
		smp, err := s.proc.sample(p.pid)
		if err == nil && p.metrics != "" {
			var m goMetrics
			m, err = readGoMetrics(ctx, s.hc, p.metrics, s.token)
			smp.Goroutines, smp.HeapObjects = m.goroutines, m.heapObjects
			if smp.HeapInuseKiB = -1; m.heapInuse >= 0 {
				smp.HeapInuseKiB = m.heapInuse / 1024
			}
		}
		smp.T = math.Round(t*1000) / 1000
		if err != nil {
			s.mu.Lock()
			if _, seen := s.errs[p.pid]; !seen {
				s.errs[p.pid] = err.Error()
			}
			s.mu.Unlock()
			if smp.RSSKiB == 0 {
				continue // the process is gone
			}
		}
		batch = append(batch, smp)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples = append(s.samples, batch...)
	s.last = batch
	if s.out != nil {
		for _, smp := range batch {
			if b, err := json.Marshal(smp); err == nil {
				_, _ = s.out.Write(append(b, '\n'))
			}
		}
	}
}

// run samples until ctx ends, then takes the last sample. A sample is taken with final (not
// cancelled by ctx: one under way when the run ends is completed; each read has its timeout).
func (s *sampler) run(ctx, final context.Context) {
	s.once(final)
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.once(final)
			return
		case <-t.C:
			s.once(final)
		}
	}
}

func (s *sampler) latest() []ProcSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ProcSample(nil), s.last...)
}

// ServerReport is what the run did to one watched server process.
type ServerReport struct {
	PID         int     `json:"pid"`
	Name        string  `json:"name,omitempty"`
	MetricsURL  string  `json:"metricsUrl,omitempty"`
	RSSStartMiB float64 `json:"rssStartMiB"` // before the instances were created
	RSSPeakMiB  float64 `json:"rssPeakMiB"`
	RSSEndMiB   float64 `json:"rssEndMiB"`
	CPUSeconds  float64 `json:"cpuSeconds"` // used during the run
	// CPUMsPerEvent is the CPU the process used in the measured period (between the first
	// sample in it and the last sample) per acknowledged event: the figure to compare servers
	// on a loaded machine, where a starved process waits but does not spend CPU. 0: unknown.
	CPUMsPerEvent float64    `json:"cpuMsPerEvent"`
	Samples       int        `json:"samples"`
	Flatness      []Flatness `json:"flatness,omitempty"` // --sample runs
	Error         string     `json:"error,omitempty"`    // first read error
	series        []ProcSample
}

// Flatness compares a figure over the first and the last third of the measured period (the
// samples taken after the warm-up): a leak shows as a last third above the first.
type Flatness struct {
	Metric        string  `json:"metric"` // rssMiB, goroutines, heapInuseMiB, heapObjects, fds, tcp
	Min           float64 `json:"min"`
	FirstThirdMax float64 `json:"firstThirdMax"`
	LastThirdMax  float64 `json:"lastThirdMax"`
	Max           float64 `json:"max"`
	// SlopePerHour is the least-squares slope over the measured period, per hour.
	SlopePerHour float64 `json:"slopePerHour"`
}

// reports builds one ServerReport per watched process; measuredFrom is the start of the
// measured period, in seconds since begin (samples before it are warm-up and setup).
func (s *sampler) reports(measuredFrom float64, flatness bool, events int64) []ServerReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ServerReport
	for _, p := range s.procs {
		r := ServerReport{PID: p.pid, Name: p.name, MetricsURL: p.metrics, Error: s.errs[p.pid]}
		var first, last *ProcSample
		for i := range s.samples {
			smp := &s.samples[i]
			if smp.PID != p.pid {
				continue
			}
			r.Samples++
			if first == nil {
				first = smp
			}
			last = smp
			r.RSSPeakMiB = max(r.RSSPeakMiB, mib(smp.RSSKiB))
			if smp.T >= measuredFrom {
				r.series = append(r.series, *smp)
			}
		}
		if first != nil {
			r.RSSStartMiB, r.RSSEndMiB = mib(first.RSSKiB), mib(last.RSSKiB)
			r.CPUSeconds = math.Round((last.CPUSeconds-first.CPUSeconds)*100) / 100
		}
		if len(r.series) > 0 && last != nil && events > 0 {
			if cpu := last.CPUSeconds - r.series[0].CPUSeconds; cpu > 0 {
				r.CPUMsPerEvent = math.Round(cpu*1000/float64(events)*1000) / 1000
			}
		}
		if flatness && len(r.series) >= 3 {
			for _, m := range []struct {
				name string
				get  func(ProcSample) float64
			}{
				{"rssMiB", func(x ProcSample) float64 { return mib(x.RSSKiB) }},
				{"goroutines", func(x ProcSample) float64 { return float64(x.Goroutines) }},
				{"heapInuseMiB", func(x ProcSample) float64 {
					if x.HeapInuseKiB < 0 {
						return -1
					}
					return mib(x.HeapInuseKiB)
				}},
				{"heapObjects", func(x ProcSample) float64 { return float64(x.HeapObjects) }},
				{"fds", func(x ProcSample) float64 { return float64(x.FDs) }},
				{"tcp", func(x ProcSample) float64 { return float64(x.TCP) }},
			} {
				if f := flat(m.name, r.series, m.get); !math.IsInf(f.Max, 0) && f.Max >= 0 {
					r.Flatness = append(r.Flatness, f)
				}
			}
		}
		out = append(out, r)
	}
	return out
}

func mib(kib int64) float64 { return math.Round(float64(kib)/1024*10) / 10 }

func flat(name string, series []ProcSample, get func(ProcSample) float64) Flatness {
	type point struct{ t, v float64 }
	var pts []point
	for _, x := range series {
		if v := get(x); v >= 0 { // negative: unknown (a /metrics read failed)
			pts = append(pts, point{x.T, v})
		}
	}
	f := Flatness{Metric: name, Min: -1, Max: -1, FirstThirdMax: -1, LastThirdMax: -1}
	n := len(pts)
	if n == 0 {
		return f
	}
	third := max(1, n/3)
	f.Min, f.Max, f.FirstThirdMax, f.LastThirdMax = math.Inf(1), math.Inf(-1), math.Inf(-1), math.Inf(-1)
	var sx, sy, sxx, sxy float64
	for i, p := range pts {
		f.Min, f.Max = min(f.Min, p.v), max(f.Max, p.v)
		if i < third {
			f.FirstThirdMax = max(f.FirstThirdMax, p.v)
		}
		if i >= n-third {
			f.LastThirdMax = max(f.LastThirdMax, p.v)
		}
		sx += p.t
		sy += p.v
		sxx += p.t * p.t
		sxy += p.t * p.v
	}
	if d := float64(n)*sxx - sx*sx; d > 0 {
		f.SlopePerHour = math.Round((float64(n)*sxy-sx*sy)/d*3600*100) / 100
	}
	return f
}

func (f Flatness) String() string {
	return fmt.Sprintf("%-12s min %8.1f  first third max %8.1f  last third max %8.1f  max %8.1f  slope %+.1f/h",
		f.Metric, f.Min, f.FirstThirdMax, f.LastThirdMax, f.Max, f.SlopePerHour)
}
